"""The metric store of an MLflow server (http, https) or a file store: MlflowClient's public
API, which every tracking store answers. mlflow is imported on first use: `import mlflow` costs
about a second and most requests never need it.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx
import numpy as np

from server.metric_store.base import (
    Downsampled,
    Health,
    History,
    MlflowUnavailable,
    RunInfo,
    after,
    downsampled,
    is_not_found,
    redact,
    scheme_of,
)

CHECK_TIMEOUT_S = 2.0
HTTP_SCHEMES = ("http", "https")


class LazyClient:
    """One MlflowClient of a tracking URI, made on first use; HTTP calls bounded."""

    def __init__(self, tracking_uri: str, timeout_s: float) -> None:
        self.tracking_uri, self.timeout_s = tracking_uri, timeout_s
        self._lock = threading.Lock()
        self._client: Any = None

    def __call__(self) -> Any:
        with self._lock:
            if self._client is None:
                if scheme_of(self.tracking_uri) in HTTP_SCHEMES:
                    # read at every request by MlflowClient; this process only reads from the
                    # server: one try per call, bounded, rather than 7 retries over minutes
                    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, round(self.timeout_s)))
                    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
                from mlflow.tracking import MlflowClient

                self._client = MlflowClient(self.tracking_uri)
            return self._client


def unavailable(exc: Exception, what: str = "the MLflow store cannot be read") -> MlflowUnavailable:
    return MlflowUnavailable(f"{what}: {exc}")


class ClientStore:
    """Reads runs through MlflowClient."""

    def __init__(self, tracking_uri: str, *, timeout_s: float = 10.0) -> None:
        self.tracking_uri = tracking_uri
        self.client = LazyClient(tracking_uri, timeout_s)

    def _run(self, run_id: str) -> Any | None:
        try:
            return self.client().get_run(run_id)
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise unavailable(exc) from exc

    def _points(self, run_id: str, key: str) -> list[Any]:
        """The metric's points in (step, timestamp) order; [] when there are none."""
        try:
            history = self.client().get_metric_history(run_id, key)
        except Exception as exc:
            if is_not_found(exc):
                return []
            raise unavailable(exc) from exc
        return sorted(history, key=lambda m: (m.step, m.timestamp))

    def metric_keys(self, run_id: str) -> list[str]:
        run = self._run(run_id)
        return sorted(run.data.metrics) if run is not None else []

    def metric_history(
        self, run_id: str, key: str, after_step: int | None = None
    ) -> History | None:
        points = self._points(run_id, key)
        if not points:
            return None
        steps = np.fromiter((m.step for m in points), dtype=np.int64, count=len(points))
        values = np.fromiter((m.value for m in points), dtype=np.float64, count=len(points))
        return after((steps, values), after_step)

    def metric_downsampled(
        self, run_id: str, key: str, max_points: int, after_step: int | None = None
    ) -> Downsampled | None:
        return downsampled(self.metric_history(run_id, key, after_step), max_points)

    def metric_times(self, run_id: str, key: str, last_only: bool = False) -> list[tuple[int, int]]:
        points = sorted((m.step, m.timestamp) for m in self._points(run_id, key))
        return points[-1:] if last_only else points

    def run_info(self, run_id: str) -> RunInfo | None:
        run = self._run(run_id)
        if run is None:
            return None
        return {"experiment_id": str(run.info.experiment_id), "start_time": run.info.start_time}

    def check(self) -> Health:
        scheme = scheme_of(self.tracking_uri)
        if scheme not in HTTP_SCHEMES:
            return {"ok": True, "detail": f"{scheme or 'local'} store, not checked"}
        url = f"{self.tracking_uri.rstrip('/')}/health"
        resp = httpx.get(url, timeout=CHECK_TIMEOUT_S)
        detail = f"{redact(self.tracking_uri)}/health answered {resp.status_code}"
        return {"ok": resp.status_code == 200, "detail": detail}

    def close(self) -> None:
        pass
