"""Request and response models of the HTTP API (the "Public" families of the FastAPI template).

Also the sweep request, which knows how to expand itself into override points: the cartesian
product of its grid times its seeded random samples.
"""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from server.models import Experiment

TAG_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_TAGS = 20
TRACEBACK_TAIL = 4000
DOTTED_KEY = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"

Tag = Annotated[str, Field(pattern=TAG_PATTERN)]
GridKey = Annotated[str, Field(pattern=DOTTED_KEY, max_length=256)]
Priority = Annotated[int, Field(ge=0, le=9, description="0..9; higher runs first")]


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# ----------------------------------------------------------------------------- experiments


class ExperimentSummaryPublic(BaseModel):
    """A list item: everything but the spec and the traceback."""

    id: str
    name: str
    status: str
    method: str
    dataset: str
    tags: list[str]
    priority: int
    queue: str
    sweep_id: str | None
    attempts: int
    progress: dict[str, Any] | None = Field(
        description="as the worker last wrote it: stage, n_stages, epoch, epochs, step, "
        "total_steps, fraction, eta_s (seconds left), val_acc, ..."
    )
    summary: dict[str, Any] | None = Field(description="test metrics of a finished run")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    _utc = field_validator("created_at", "started_at", "finished_at")(_aware)

    @classmethod
    def from_row(cls, exp: Experiment, **extra: Any) -> ExperimentSummaryPublic:
        fields = {name: getattr(exp, name) for name in cls.model_fields if hasattr(exp, name)}
        fields.update(tags=sorted(exp.tag_names), **extra)
        return cls.model_validate(fields)


class ExperimentPublic(ExperimentSummaryPublic):
    spec: dict[str, Any] = Field(description="the resolved spec, every default filled in")
    spec_hash: str
    twins: list[str] = Field(description="other experiments with the same resolved spec")
    max_attempts: int
    worker: str | None
    cancel_requested: bool
    error: str | None
    traceback_tail: str | None = Field(description=f"last {TRACEBACK_TAIL} chars of the traceback")
    mlflow_run_id: str | None
    heartbeat_at: datetime | None

    _utc_hb = field_validator("heartbeat_at")(_aware)

    @classmethod
    def from_row(cls, exp: Experiment, **extra: Any) -> ExperimentPublic:  # type: ignore[override]
        tail = exp.traceback[-TRACEBACK_TAIL:] if exp.traceback else None
        return super().from_row(exp, traceback_tail=tail, **extra)  # type: ignore[return-value]


class ExperimentCreated(ExperimentPublic):
    warning: str | None = Field(None, description="set when the task could not be enqueued")


class ExperimentsPublic(BaseModel):
    data: list[ExperimentSummaryPublic]
    count: int = Field(description="matching experiments in all, before limit and offset")


# ----------------------------------------------------------------------------- sweeps


class Distribution(BaseModel):
    """Exactly one of the four ways to draw a value."""

    model_config = ConfigDict(extra="forbid")

    uniform: tuple[float, float] | None = None
    log_uniform: tuple[float, float] | None = None
    int_uniform: tuple[int, int] | None = None
    choice: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> Distribution:
        given = [k for k, v in self.__dict__.items() if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of uniform, log_uniform, int_uniform, choice")
        lo_hi = self.uniform or self.log_uniform or self.int_uniform
        if lo_hi is not None:
            lo, hi = lo_hi
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"need finite bounds with lo <= hi, got [{lo}, {hi}]")
            if self.log_uniform is not None and lo <= 0:
                raise ValueError("log_uniform bounds must be positive")
        return self

    def draw(self, rng: random.Random) -> Any:
        if self.uniform is not None:
            return rng.uniform(*self.uniform)
        if self.log_uniform is not None:
            lo, hi = self.log_uniform
            return math.exp(rng.uniform(math.log(lo), math.log(hi)))
        if self.int_uniform is not None:
            return rng.randint(*self.int_uniform)
        return rng.choice(self.choice)


class RandomSearch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    samples: int = Field(..., ge=1, le=100_000)
    seed: int = 0
    params: dict[GridKey, Distribution] = Field(min_length=1)

    def draws(self) -> list[dict[str, Any]]:
        """`samples` override sets; the same seed gives the same draws."""
        rng = random.Random(self.seed)
        return [{k: d.draw(rng) for k, d in self.params.items()} for _ in range(self.samples)]


class SweepCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any] = Field(description="a spec mapping every point starts from")
    grid: dict[GridKey, Annotated[list[Any], Field(min_length=1)]] = Field(
        default_factory=dict, description='{"dotted.key": [values...]}: the cartesian product'
    )
    random: RandomSearch | None = None
    name: str | None = Field(None, min_length=1, max_length=128)
    priority: Priority = 5
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    queue: str | None = None

    @model_validator(mode="after")
    def _disjoint(self) -> SweepCreate:
        both = sorted(set(self.grid) & set(self.random.params if self.random else ()))
        if both:
            raise ValueError(f"keys in both grid and random: {', '.join(both)}")
        return self

    def size(self) -> int:
        return math.prod(len(v) for v in self.grid.values()) * (
            self.random.samples if self.random else 1
        )

    def points(self) -> list[dict[str, Any]]:
        """Override sets, one per experiment: each grid point with each random draw."""
        keys = list(self.grid)
        grid = [
            dict(zip(keys, combo, strict=True)) for combo in itertools.product(*self.grid.values())
        ]
        draws = self.random.draws() if self.random else [{}]
        return [{**g, **r} for g in grid for r in draws]


class SweepPublic(BaseModel):
    sweep_id: str
    count: int
    data: list[ExperimentPublic]
    warning: str | None = None


# ----------------------------------------------------------------------------- the rest


class MetricKeysPublic(BaseModel):
    keys: list[str]


class MetricSeries(BaseModel):
    steps: list[int]
    values: list[float | None] = Field(description="null where the value is not finite")
    total: int = Field(description="points in the full history")


class MetricsPublic(BaseModel):
    metrics: dict[str, MetricSeries]


class ArtifactPublic(BaseModel):
    path: str
    size: int | None
    is_dir: bool
    url: str


class ArtifactsPublic(BaseModel):
    artifacts: list[ArtifactPublic]


class RegistryEntryPublic(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    description: str
    params: dict[str, Any] = Field(description="JSON schema of the entry's parameters")
    kind: str | None = Field(None, description="methods: joint, unimodal or alternating")


class CheckPublic(BaseModel):
    ok: bool
    detail: str


class HealthPublic(BaseModel):
    status: str = Field(description="ok or degraded")
    database: CheckPublic
    broker: CheckPublic
    mlflow: CheckPublic
