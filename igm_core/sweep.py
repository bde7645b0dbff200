"""Sweeps: many specs from one base spec, a grid and seeded random samples.

Torch-free; the API (`POST /experiments/sweep`) and the `igm sweep` command both expand sweeps
here. A point is a mapping of dotted keys to values ({"method.params.tau": 0.3}); `apply_values`
writes one into a copy of a spec mapping. Grid and random search combine as a product: every grid
point is paired with every random draw, so a grid of 3 x 2 with 4 samples gives 24 points, and
the same seed always gives the same draws.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from igm_core.errors import SpecError
from igm_core.names import named_pattern

DOTTED_KEY = named_pattern(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$",
    "a dotted key path of the spec such as method.params.tau (letters, digits and _ "
    "between the dots)",
)
GridKey = Annotated[str, Field(pattern=DOTTED_KEY, max_length=256)]
Grid = dict[GridKey, Annotated[list[Any], Field(min_length=1)]]


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
        """`samples` value sets; the same seed gives the same draws."""
        rng = random.Random(self.seed)
        return [{k: d.draw(rng) for k, d in self.params.items()} for _ in range(self.samples)]


def size(grid: dict[str, list[Any]], search: RandomSearch | None = None) -> int:
    """How many points `points` gives, computed without drawing them."""
    return math.prod(len(v) for v in grid.values()) * (search.samples if search else 1)


def points(grid: dict[str, list[Any]], search: RandomSearch | None = None) -> list[dict[str, Any]]:
    """One value set per experiment: each grid point (cartesian product) with each random draw."""
    both = sorted(set(grid) & set(search.params if search else ()))
    if both:
        raise SpecError([("grid", f"keys in both grid and random: {', '.join(both)}")])
    keys = list(grid)
    combos = [dict(zip(keys, c, strict=True)) for c in itertools.product(*grid.values())]
    draws = search.draws() if search else [{}]
    return [{**g, **r} for g in combos for r in draws]


def apply_values(spec: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the spec mapping with each dotted key set to its value (missing mappings are
    created); SpecError when a key runs through something that is not a mapping."""
    out = copy.deepcopy(spec)
    for key, value in values.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise SpecError([(key, f"{part!r} is not a mapping")])
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return out


def expand(
    base: dict[str, Any],
    grid: dict[str, list[Any]],
    search: RandomSearch | None = None,
    name: str | None = None,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(values, spec mapping) per point; point i is named "<base name or `name`>-<i>"."""
    out = []
    for i, values in enumerate(points(grid, search)):
        raw = apply_values(base, values)
        if isinstance(raw.get("name"), str):
            raw["name"] = f"{raw['name']}-{i}"
        elif name and "name" not in raw:
            raw["name"] = f"{name}-{i}"
        out.append((values, raw))
    return out
