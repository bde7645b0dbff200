"""The `Tracker` protocol the trainer reports through, and the tracker that records nothing.

Implementations: NullTracker (here), JsonlTracker (jsonl.py), MlflowTracker (mlflow.py). Nothing
here reads environment variables: the caller passes every setting.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")


class TrackerError(RuntimeError):
    """A tracker could not be started (for example, the tracking store is unreachable)."""


@runtime_checkable
class Tracker(Protocol):
    """What the trainer reports through. Implementations must not raise from the log methods."""

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


def flatten_params(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings/lists to {"a.b.c": "text"}.

    Lists of scalars become JSON text; lists holding mappings or lists are indexed ("a.0.b").
    None becomes "null", booleans "true"/"false"; an empty mapping is kept as "{}".
    """
    flat: dict[str, str] = {}
    for key, value in d.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, name) if value else {name: "{}"})
        elif isinstance(value, list | tuple):
            if any(isinstance(v, Mapping | list | tuple) for v in value):
                flat.update(flatten_params({str(i): v for i, v in enumerate(value)}, name))
            else:
                flat[name] = json.dumps(list(value), default=str)
        elif value is None or isinstance(value, bool):
            flat[name] = json.dumps(value)
        else:
            flat[name] = str(value)
    return flat


def to_float(value: Any) -> float:
    """`value` as a float; NaN when it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class NullTracker:
    """A tracker that records nothing."""

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...
