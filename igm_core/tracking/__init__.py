"""Experiment tracking: the `Tracker` protocol the trainer reports through, and three trackers.

`NullTracker` records nothing; `JsonlTracker` appends JSON lines to a local file
(`read_jsonl_metrics` reads the metric history back); `MlflowTracker` reports to an MLflow store
from a background thread. Torch-free; mlflow is imported only when an `MlflowTracker` is created.
"""

from igm_core.tracking.base import (
    RUN_STATUSES,
    NullTracker,
    Tracker,
    TrackerError,
    flatten_params,
)
from igm_core.tracking.jsonl import JsonlTracker, read_jsonl_metrics
from igm_core.tracking.mlflow import MlflowTracker, mlflow_key

__all__ = [
    "RUN_STATUSES",
    "JsonlTracker",
    "MlflowTracker",
    "NullTracker",
    "Tracker",
    "TrackerError",
    "flatten_params",
    "mlflow_key",
    "read_jsonl_metrics",
]
