"""Request and response models of the HTTP API (the "Public" families of the FastAPI template).

The sweep request holds a grid and seeded random samples (igm_core.sweep models and expands them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from igm_core import summary as run_summary
from igm_core import sweep
from igm_core.names import named_pattern
from igm_core.sweep import Grid, RandomSearch

TAG_PATTERN = named_pattern(r"^[A-Za-z0-9_.:-]{1,64}$", "1-64 of A-Z a-z 0-9 _ . : -")
MAX_TAGS = 20
TRACEBACK_TAIL = 4000
ERROR_EXCERPT = 200

Tag = Annotated[str, Field(pattern=TAG_PATTERN)]
Priority = Annotated[int, Field(ge=0, le=9, description="0..9; higher runs first")]


def error_excerpt(error: str | None) -> str | None:
    """The first line of an error that has text, cut to ERROR_EXCERPT characters."""
    line = next((ln.strip() for ln in (error or "").splitlines() if ln.strip()), None)
    if line is None or len(line) <= ERROR_EXCERPT:
        return line
    return line[: ERROR_EXCERPT - 1] + "…"


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# ----------------------------------------------------------------------------- experiments


# The fields of these two are what the API reads (server.crud.reads: the column of each field's
# name) and writes (server.fastjson); their docstrings are the API schema's descriptions.
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
    sweep_values: dict[str, Any] | None = Field(
        None, description="for a sweep's experiment: the swept keys and their values"
    )
    attempts: int
    submitted_by: str | None = Field(
        None, description='the API token\'s name, or "local" on a server without tokens'
    )
    progress: dict[str, Any] | None = Field(
        description="as the worker last wrote it: stage, n_stages, epoch, epochs, step, "
        "total_steps, fraction, eta_s (seconds left), val_acc, ..."
    )
    summary: dict[str, Any] | None = Field(description=run_summary.DESCRIPTION)
    error_excerpt: str | None = Field(
        None, description=f"the error's first line (at most {ERROR_EXCERPT} characters)"
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None = Field(None, description="the row's last change")

    _utc = field_validator("created_at", "started_at", "finished_at", "updated_at")(_aware)


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


class ExperimentCreated(ExperimentPublic):
    warning: str | None = Field(None, description="set when the task could not be enqueued")


class ExperimentRowPublic(ExperimentSummaryPublic):
    """A list item with the columns asked for."""

    values: dict[str, Any] = Field(
        default_factory=dict,
        description="the value at each key of `columns`: a spec value or a result metric as "
        "JSON (null where the experiment has none)",
    )


class ExperimentsPublic(BaseModel):
    data: list[ExperimentRowPublic]
    count: int = Field(description="matching experiments in all, before limit and offset")
    columns: list[str] = Field(
        default_factory=list, description="the keys of `columns`, in order, without repeats"
    )


# ----------------------------------------------------------------------------- sweeps


class SweepCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any] = Field(description="a spec mapping every point starts from")
    grid: Grid = Field(
        default_factory=dict, description='{"dotted.key": [values...]}: the cartesian product'
    )
    random: RandomSearch | None = Field(
        None, description="seeded samples; each is combined with every grid point"
    )
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
        return sweep.size(self.grid, self.random)


class SweepPoint(BaseModel):
    name: str
    values: dict[str, Any] = Field(description="the swept keys and their values at this point")
    spec_hash: str


class SweepPreview(BaseModel):
    count: int
    points: list[SweepPoint]


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


# ----------------------------------------------------------------------------- dashboard feeds


class ChangesPublic(BaseModel):
    """What changed since a cursor: poll with the `cursor` of the previous answer."""

    cursor: str = Field(description="pass it back as `since`: the newest change seen")
    count: int = Field(description="experiments matching the filters now (deletions lower it)")
    data: list[ExperimentRowPublic] = Field(
        description="matching experiments written since the cursor (minus a few seconds of "
        "overlap, so a write committed late is never missed), oldest change first"
    )
    truncated: bool = Field(description="more changed than `limit`: reload the page instead")


class StagePublic(BaseModel):
    stage: int
    modalities: list[str] = Field(description="the modalities this stage trains")
    epochs: int
    start_step: int | None
    end_step: int | None = Field(description="estimated from the steps per epoch until reached")
    reached: bool


class ClockPublic(BaseModel):
    steps: list[int]
    seconds: list[float] = Field(description="wall time since the run's first logged point")


class TimelinePublic(BaseModel):
    """Stage boundaries, epoch ends and the run's clock: what an experiment's charts annotate."""

    stages: list[StagePublic]
    epoch_end_steps: list[int]
    epochs_logged: int
    steps_per_epoch: float | None
    clock: ClockPublic
    mlflow_run_id: str | None
    mlflow_url: str | None = Field(description="the run in MLflow's UI, when one is configured")


class CurveBand(BaseModel):
    steps: list[int]
    mean: list[float | None] = Field(
        description="null at a break: a stretch where the runs logged no point"
    )
    lo: list[float | None] = Field(
        description="95% t-interval over the runs, clipped to [0, 1] for an accuracy; null "
        "where n < 3"
    )
    hi: list[float | None]
    n: list[int] = Field(description="runs with a point in this step's bin (0 at a break)")


class CurveRun(BaseModel):
    id: str
    name: str
    status: str
    seed: int | None
    group: str


class CurveGroup(BaseModel):
    label: str
    color_index: int = Field(
        description="the group's position among every group of the selection, sorted by label: "
        "the same in GET /compare, so a page colours a group alike in both"
    )
    method: str | None
    dataset: str | None
    ids: list[str]
    seeds: list[int]
    curves: dict[str, CurveBand] = Field(description="metric key -> the group's band")


class CurvesPublic(BaseModel):
    """Seed groups of the chosen experiments, each drawn as its mean with a 95% band per step."""

    keys: list[str] = Field(description="every metric key the runs logged")
    shown: list[str] = Field(description="the keys computed here")
    max_points: int
    runs: list[CurveRun]
    groups: list[CurveGroup]
    matched: int
    spec_differences: dict[str, list[str | None]] = Field(
        description="dotted spec keys whose values differ between the runs: each run's value "
        "as JSON text, in the order of `runs`"
    )
