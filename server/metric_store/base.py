"""What a metric store is: the MetricStore protocol its implementations follow, the shapes they
return and the errors they raise.

A store reads one MLflow tracking store: metric keys, histories (whole, downsampled, or only the
points' times) and a run's info. server.metric_store.registry picks the implementation once, by
the tracking URI's scheme; server.metric_store.reader bounds every call.
"""

from __future__ import annotations

from typing import Protocol, TypedDict
from urllib.parse import urlsplit

import numpy as np

from server.downsample import downsample

History = tuple[np.ndarray, np.ndarray]  # steps (int64), values (float64, NaN kept), step order
Downsampled = tuple[list[int], list[float], int]  # steps, values, points in the full history
NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "ENDPOINT_NOT_FOUND")


class MlflowUnavailable(RuntimeError):
    """The tracking store could not be read."""


class ArtifactNotFound(LookupError):
    """No such artifact in the run."""


class ArtifactIsDirectory(ValueError):
    """The artifact path names a folder, not a file."""


class RunInfo(TypedDict):
    experiment_id: str
    start_time: int | None  # ms since the epoch


class Health(TypedDict):
    ok: bool
    detail: str


class MetricStore(Protocol):
    """Read-only access to the metrics of one tracking store; safe to share between threads.
    Every method raises MlflowUnavailable when the store cannot be read."""

    tracking_uri: str

    def metric_keys(self, run_id: str) -> list[str]:
        """Sorted metric keys of the run ([] when the run has none or does not exist)."""
        ...

    def metric_history(
        self, run_id: str, key: str, after_step: int | None = None
    ) -> History | None:
        """(steps, values) of one metric in step order, NaN where MLflow stored NaN; None when
        the run has no such metric (or, with after_step, no point after that step)."""
        ...

    def metric_downsampled(
        self, run_id: str, key: str, max_points: int, after_step: int | None = None
    ) -> Downsampled | None:
        """server.downsample.downsample of metric_history, and the points in the full history;
        None as metric_history."""
        ...

    def metric_times(self, run_id: str, key: str, last_only: bool = False) -> list[tuple[int, int]]:
        """(step, timestamp in ms) of the points of one metric in step order, or with last_only
        its last point alone: what a chart's wall-time axis is built from."""
        ...

    def run_info(self, run_id: str) -> RunInfo | None:
        """The run's MLflow experiment id and start time; None when the run is unknown."""
        ...

    def check(self) -> Health:
        """Whether the store answers, for GET /health (it may raise: the caller reports it)."""
        ...

    def close(self) -> None: ...


def scheme_of(uri: str) -> str:
    """The URI's scheme without its driver ("postgresql+psycopg" -> "postgresql"); "" for a path."""
    return urlsplit(uri).scheme.split("+", 1)[0].lower()


def redact(uri: str) -> str:
    """The URI without its user and password."""
    parts = urlsplit(uri)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def downsampled(history: History | None, max_points: int) -> Downsampled | None:
    """server.downsample.downsample of a whole history read into this process."""
    if history is None:
        return None
    return (*downsample(*history, max_points), len(history[0]))


def after(history: History | None, after_step: int | None) -> History | None:
    """The points of `history` after `after_step` (all of them without it); None when none."""
    if history is None or after_step is None:
        return history
    newer = history[0] > after_step
    return (history[0][newer], history[1][newer]) if newer.any() else None


def is_not_found(exc: Exception) -> bool:
    """An MLflow error that says the run (or artifact) does not exist."""
    return getattr(exc, "error_code", None) in NOT_FOUND_CODES
