"""`MlflowTracker`: reports to an MLflow tracking store through its own `MlflowClient` (several
can live in one process), sending from one background thread so that logging never blocks
training nor raises, retrying an unavailable store with backoff, and giving up at `finish` after a
timeout, saying what was lost. mlflow is imported only when an `MlflowTracker` is created.
"""

from __future__ import annotations

import logging
import math
import posixpath
import re
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from igm_core.tracking.base import RUN_STATUSES, TrackerError, flatten_params, to_float

logger = logging.getLogger("igm_core.tracking")

_MAX_METRICS_PER_CALL = 1000  # MLflow's limits
_MAX_PARAMS_PER_CALL = 100
_MAX_PARAM_VALUE_LEN = 6000
_MAX_TAG_VALUE_LEN = 8000
_MAX_KEY_LEN = 250
_MAX_BACKOFF_S = 30.0
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")


def _ambiguous_path(key: str) -> bool:
    norm = posixpath.normpath(key)
    return norm != key or norm == "." or norm.startswith(("..", "/"))


def mlflow_key(key: Any) -> str:
    """`key` as MLflow accepts it for a metric, param or tag: characters other than alphanumerics,
    "_", "-", ".", " " and "/" become "_"; a name that is not a clean path ("a//b") loses its "/".
    """
    name = _BAD_KEY_CHARS.sub("_", str(key))[:_MAX_KEY_LEN] or "_"
    if _ambiguous_path(name):
        name = name.replace("/", "_")
        name = ("_" + name)[:_MAX_KEY_LEN] if _ambiguous_path(name) else name
    return name


def _redact(uri: str) -> str:
    """`uri` without the user and password it may carry."""
    parts = urlsplit(uri)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _check_reachable(uri: str, timeout: float = 3.0) -> None:
    """For http(s) URIs, raise TrackerError unless a TCP connection opens within `timeout` s."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise TrackerError(f"MLflow tracking store {_redact(uri)} is unreachable: {exc}") from exc


def _is_permanent(exc: Exception) -> bool:
    """Errors that retrying cannot fix: the store rejected the request, or the file is gone."""
    status = getattr(exc, "get_http_status_code", None)  # MlflowException
    return isinstance(exc, FileNotFoundError) or (callable(status) and status() in (400, 404, 409))


class MlflowTracker:
    """Reports to an MLflow tracking store; all sending happens on one background thread.

    Creating it checks that the store answers, creates `experiment` if missing (with
    `artifact_location`) and a run in it, or resumes `run_id`; failures there raise TrackerError.
    After that nothing raises; `dropped` counts metric values dropped because more than
    `max_queue` were waiting, `lost` those still unsent when `finish` gave up or rejected by the
    store, `skipped` the non-finite or non-numeric ones. Artifact files are read when uploaded,
    after the metrics logged before them: leave them unchanged until `flush`/`finish` returns.
    `_client` is the MlflowClient the thread uses; tests replace it to simulate an outage.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        run_name: str | None = None,
        run_id: str | None = None,
        tags: dict[str, str] | None = None,
        flush_interval: float = 1.0,
        max_batch: int = 1000,
        max_queue: int = 200_000,
        finish_timeout: float = 30.0,
        artifact_location: str | None = None,
    ) -> None:
        if not 1 <= max_batch <= _MAX_METRICS_PER_CALL:
            raise ValueError(f"max_batch must be in 1..{_MAX_METRICS_PER_CALL}, not {max_batch}")
        self.flush_interval, self.max_batch, self.max_queue = flush_interval, max_batch, max_queue
        self.finish_timeout = finish_timeout
        self.dropped = self.lost = self.skipped = 0
        _check_reachable(tracking_uri)
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient

        self._entities = (Metric, Param, RunTag)
        try:
            self._client = MlflowClient(tracking_uri)
            self.run_id = self._start_run(experiment, run_name, run_id, tags, artifact_location)
        except TrackerError:
            raise
        except Exception as exc:
            uri = _redact(tracking_uri)
            raise TrackerError(f"cannot start an MLflow run at {uri}: {exc}") from exc
        self._lock = threading.Condition()
        self._metrics: deque[tuple[int, str, float, int, int]] = deque()  # seq,key,value,ms,step
        self._ops: deque[tuple[int, str, Any]] = deque()  # seq, kind, payload
        self._seq = 0  # orders metrics and ops together
        self._busy, self._inflight = False, 0  # the thread holds an item (with this many values)
        self._closed = self._warned = False
        self._keys: dict[str, str] = {}
        self._wake = threading.Event()  # send now rather than at the next interval
        self._kick = threading.Event()  # retry now rather than after the backoff
        self._abort = threading.Event()  # finish gave up: stop sending
        self._thread = threading.Thread(target=self._loop, name="mlflow-tracker", daemon=True)
        self._thread.start()
        if run_id is not None and tags:
            self.set_tags(tags)

    def _start_run(self, experiment, run_name, run_id, tags, artifact_location) -> str:
        client = self._client
        if run_id is not None:
            if client.get_run(run_id).info.status != "RUNNING":
                client.update_run(run_id, status="RUNNING")
            return run_id
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            try:
                experiment_id = client.create_experiment(experiment, artifact_location)
            except Exception:
                exp = client.get_experiment_by_name(experiment)  # created meanwhile elsewhere
                if exp is None:
                    raise
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                raise TrackerError(f"MLflow experiment {experiment!r} is deleted")
            experiment_id = exp.experiment_id
        tags = {mlflow_key(k): str(v)[:_MAX_TAG_VALUE_LEN] for k, v in (tags or {}).items()}
        return client.create_run(experiment_id, tags=tags, run_name=run_name).info.run_id

    def end_other_run(self, run_id: str, status: str = "KILLED") -> bool:
        """Mark another run of this store `status` if it is still RUNNING (an earlier attempt
        whose process died); True when it was ended. Synchronous; never raises."""
        try:
            if self._client.get_run(run_id).info.status != "RUNNING":
                return False
            self._client.set_terminated(run_id, status=status)
            return True
        except Exception as exc:
            logger.warning("could not end MLflow run %s as %s: %s", run_id, status, exc)
            return False

    # --- called by the training side: cheap, never raise --------------------------------------

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        try:
            stamp, step, rows = int(time.time() * 1000), int(step), []
            for key, value in metrics.items():
                if not math.isfinite(number := to_float(value)):
                    self.skipped += 1
                    continue
                if (name := self._keys.get(key)) is None:
                    name = self._keys[key] = mlflow_key(key)
                rows.append((name, number))
            with self._lock:
                if self._closed:
                    return
                for name, number in rows:
                    self._seq += 1
                    self._metrics.append((self._seq, name, number, stamp, step))
                excess = max(len(self._metrics) - self.max_queue, 0)
                for _ in range(excess):
                    self._metrics.popleft()
                self.dropped += excess
                first_drop = excess > 0 and not self._warned
                self._warned = self._warned or excess > 0
                if len(self._metrics) >= self.max_batch:
                    self._wake.set()
            if first_drop:
                logger.warning(
                    "run %s: MLflow store is not keeping up; over %d metric values waiting, "
                    "dropping the oldest (counted in .dropped)",
                    self.run_id,
                    self.max_queue,
                )
        except Exception:
            logger.exception("log_metrics failed for run %s; values ignored", self.run_id)

    def _enqueue(self, kind: str, items: list[Any], per_call: int = _MAX_PARAMS_PER_CALL) -> None:
        with self._lock:
            if self._closed:
                logger.warning("%s logged after finish to run %s; ignored", kind, self.run_id)
                return
            for i in range(0, len(items), per_call):
                self._seq += 1
                self._ops.append((self._seq, kind, items[i : i + per_call]))
        self._wake.set()

    def log_params(self, params: dict[str, Any]) -> None:
        flat = flatten_params(params)
        self._enqueue(
            "params", [(mlflow_key(k), v[:_MAX_PARAM_VALUE_LEN]) for k, v in flat.items()]
        )

    def set_tags(self, tags: dict[str, str]) -> None:
        self._enqueue(
            "tags", [(mlflow_key(k), str(v)[:_MAX_TAG_VALUE_LEN]) for k, v in tags.items()]
        )

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if Path(path).is_file():
            self._enqueue("artifact", [(str(path), artifact_path)])
        else:
            logger.warning("artifact %s is not a file; not logged", path)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is sent (or rejected); False on timeout."""
        self._wake.set()
        self._kick.set()
        with self._lock:
            return self._lock.wait_for(
                self._idle, self.finish_timeout if timeout is None else timeout
            )

    def finish(self, status: str = "FINISHED", timeout: float | None = None) -> None:
        """Send what is queued and mark the run `status`, giving up after `timeout` seconds
        (default `finish_timeout`). Idempotent; does not raise when the store is down."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, not {status!r}")
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._seq += 1
            self._ops.append((self._seq, "terminate", [status]))
        self._wake.set()
        self._kick.set()
        self._thread.join(self.finish_timeout if timeout is None else timeout)
        gave_up = self._thread.is_alive()
        if gave_up:
            self._abort.set()
            self._kick.set()
            with self._lock:
                self.lost += len(self._metrics) + self._inflight
                self._metrics.clear()
                self._ops.clear()
        if gave_up or self.dropped or self.lost:
            logger.warning(
                "run %s: %d metric values dropped (queue full), %d lost%s",
                self.run_id,
                self.dropped,
                self.lost,
                f"; store not answering, run not marked {status}" if gave_up else "",
            )

    # --- the background thread ----------------------------------------------------------------

    def _idle(self) -> bool:
        return not (self._metrics or self._ops or self._busy)

    def _take(self) -> tuple[str, list[Any]] | None:
        """Take the oldest op, or the oldest metrics (up to max_batch) logged before it."""
        with self._lock:
            next_op = self._ops[0][0] if self._ops else math.inf
            if not self._metrics or next_op < self._metrics[0][0]:
                if not self._ops:
                    self._lock.notify_all()  # idle
                    return None
                _, kind, payload = self._ops.popleft()
                self._busy, self._inflight = True, 0
                return kind, payload
            chunk = []
            while self._metrics and len(chunk) < self.max_batch and self._metrics[0][0] < next_op:
                chunk.append(self._metrics.popleft()[1:])
            self._busy, self._inflight = True, len(chunk)
            return "metrics", chunk

    def _send(self, kind: str, payload: list[Any]) -> None:
        Metric, Param, RunTag = self._entities
        client, run_id = self._client, self.run_id
        if kind == "metrics":
            metrics = [Metric(key, value, ms, step) for key, value, ms, step in payload]
            client.log_batch(run_id, metrics=metrics, synchronous=True)
        elif kind == "params":
            client.log_batch(run_id, params=[Param(k, v) for k, v in payload], synchronous=True)
        elif kind == "tags":
            client.log_batch(run_id, tags=[RunTag(k, v) for k, v in payload], synchronous=True)
        elif kind == "artifact":
            client.log_artifact(run_id, *payload[0])
        elif kind == "terminate":
            client.set_terminated(run_id, status=payload[0])

    def _deliver(self, kind: str, payload: list[Any]) -> None:
        """Send one item, retrying with exponential backoff until it goes through, the store
        rejects it, or finish gives up."""
        delay, failures = 0.5, 0
        while not self._abort.is_set():
            try:
                self._send(kind, payload)
                if failures:
                    logger.warning("sent %s to MLflow after %d failed attempts", kind, failures)
                break
            except Exception as exc:
                if _is_permanent(exc):
                    logger.warning("MLflow rejected %s for run %s: %s", kind, self.run_id, exc)
                    with self._lock:
                        self.lost += self._inflight
                    break
                failures += 1
                if failures == 1:
                    logger.warning(
                        "sending %s to MLflow failed (%s); retrying, data kept", kind, exc
                    )
                self._kick.wait(min(delay, 1.0) if self._closed else delay)
                self._kick.clear()
                delay = min(delay * 2, _MAX_BACKOFF_S)
        with self._lock:
            self._busy, self._inflight = False, 0
            self._lock.notify_all()

    def _loop(self) -> None:
        while not self._abort.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            while not self._abort.is_set() and (item := self._take()) is not None:
                self._deliver(*item)
                if item[0] == "terminate":
                    return
