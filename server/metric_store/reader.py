"""Bounded calls to the metric store: what the routes hold (app.state.mlflow, server.deps).

Routes call the store through `await reader.call(fn, ...)`, which runs the call on a small pool
of threads of its own (never the pool that serves every other route) and gives up after
`timeout_s` with MlflowUnavailable (server.errors answers 503). After a failure the store counts
as down for a moment (RETRY_AFTER_S): calls then fail at once instead of piling up. HTTP calls
of MlflowClient are bounded too (one try, `timeout_s` seconds), so a dead server frees its
threads.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from server.metric_store.artifacts import ArtifactStore
from server.metric_store.base import MetricStore, MlflowUnavailable
from server.metric_store.registry import open_store

RETRY_AFTER_S = 2.0  # after a failed call, the store counts as down this long
T = TypeVar("T")


class MlflowReader:
    """The tracking store's metrics (`store`) and artifacts (`artifacts`), and the threads and
    time limit every call to them runs under; safe to share between requests."""

    def __init__(self, tracking_uri: str, *, timeout_s: float = 10.0, threads: int = 8) -> None:
        self.tracking_uri = tracking_uri
        self.timeout_s = timeout_s
        self.store: MetricStore = open_store(tracking_uri, timeout_s=timeout_s)
        self.artifacts = ArtifactStore(tracking_uri, timeout_s=timeout_s)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="mlflow-reader")
        self._down_until = 0.0
        self._down_reason = ""

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` (which reads the store) on the reader's own threads, within
        timeout_s; MlflowUnavailable when the store fails, is slow, or failed a moment ago."""
        if time.monotonic() < self._down_until:
            raise MlflowUnavailable(f"the MLflow store is unavailable: {self._down_reason}")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        try:
            # a call still waiting for a thread is dropped when the request gives up
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            self._mark_down(f"no answer within {self.timeout_s:g} s")
            raise MlflowUnavailable(
                f"the MLflow store did not answer within {self.timeout_s:g} s"
            ) from None
        except MlflowUnavailable as err:
            self._mark_down(str(err)[:300])
            raise

    def _mark_down(self, reason: str) -> None:
        self._down_until = time.monotonic() + RETRY_AFTER_S
        self._down_reason = reason

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()
