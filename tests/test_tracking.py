"""Tests for igm_core.tracking: parameter flattening, the JSONL tracker, and the MLflow tracker
against a real SQLite store, a store that is locked or broken for a while, and one that is down."""

from __future__ import annotations

import json
import logging
import math
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow.tracking as mlflow_tracking
import pytest

from igm_core.tracking import (
    JsonlTracker,
    MlflowTracker,
    NullTracker,
    Tracker,
    TrackerError,
    flatten_params,
    mlflow_key,
    read_jsonl_metrics,
)

SPEC = {
    "dataset": {"name": "cremad", "modalities": ["audio", "visual"], "root": None},
    "method": {"name": "igm", "params": {"alpha": 0.5, "warmup": True}},
    "stages": [{"epochs": 10, "lr": 0.001}, {"epochs": 5}],
    "tags": [],
    "extra": {},
    "seed": 0,
}
FLAT_SPEC = {
    "dataset.name": "cremad",
    "dataset.modalities": '["audio", "visual"]',
    "dataset.root": "null",
    "method.name": "igm",
    "method.params.alpha": "0.5",
    "method.params.warmup": "true",
    "stages.0.epochs": "10",
    "stages.0.lr": "0.001",
    "stages.1.epochs": "5",
    "tags": "[]",
    "extra": "{}",
    "seed": "0",
}


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, Path]:
    """One SQLite tracking store for the module (creating its tables takes ~1.5 s)."""
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{root}/mlflow.db", root


def test_flatten_params_on_a_spec() -> None:
    assert flatten_params(SPEC) == FLAT_SPEC
    assert flatten_params({"a": {"b": 1}}, prefix="run") == {"run.a.b": "1"}


def test_mlflow_key_makes_names_mlflow_accepts() -> None:
    assert mlflow_key("loss/train") == "loss/train"
    assert mlflow_key("acc@1 (val)") == "acc_1 _val_"
    assert mlflow_key("a//b") == "a__b"
    assert mlflow_key("../x") == "_.._x"
    assert mlflow_key("") == "_"
    assert len(mlflow_key("k" * 300)) == 250


def test_module_imports_neither_torch_nor_mlflow() -> None:
    code = "import sys, igm_core.tracking; print('torch' in sys.modules, 'mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_null_tracker_does_nothing() -> None:
    tracker = NullTracker()
    assert isinstance(tracker, Tracker)
    tracker.log_params(SPEC)
    tracker.log_metrics({"loss": 1.0}, step=0)
    tracker.finish()


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r1" / "track.jsonl"
    tracker = JsonlTracker(path)
    assert isinstance(tracker, Tracker)
    tracker.log_params(SPEC)
    tracker.set_tags({"suite": "tests"})
    for step in range(5):
        tracker.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 10}, step)
    tracker.log_metrics({"loss": float("nan"), "grad": float("inf"), "note": "n/a"}, 5)
    tracker.log_artifact(tmp_path / "model.pt", "checkpoints")
    assert len(path.read_text().splitlines()) == 9  # flushed as written
    tracker.finish("FAILED")
    tracker.finish()  # idempotent
    tracker.log_metrics({"loss": 0.0}, 6)  # ignored after finish

    def reject(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    records = [json.loads(line, parse_constant=reject) for line in path.read_text().splitlines()]
    types = [r["type"] for r in records]
    assert types == ["params", "tags"] + ["metrics"] * 6 + ["artifact", "finish"]
    assert all(isinstance(r["time"], float) for r in records)
    assert records[0]["params"] == SPEC
    assert records[-2]["artifact_path"] == "checkpoints"
    assert records[-1]["status"] == "FAILED"

    history = read_jsonl_metrics(path)
    assert history["acc"] == [(s, s / 10) for s in range(5)]
    assert history["loss"][:5] == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert history["loss"][5][0] == 5 and math.isnan(history["loss"][5][1])
    assert history["note"][0][0] == 5 and math.isnan(history["note"][0][1])
    assert history["grad"] == [(5, float("inf"))]
    with path.open("a") as f:  # a record cut short by a crash is skipped
        f.write('{"type": "metrics", "step": 7, "metr')
    assert read_jsonl_metrics(path).keys() == history.keys()


class _CountingClient:
    """The real MlflowClient, with its log_batch calls counted."""

    def __init__(self, client) -> None:
        self._client = client
        self.metric_batches: list[int] = []

    def log_batch(self, run_id, metrics=(), **kwargs):
        if metrics:
            self.metric_batches.append(len(metrics))
        return self._client.log_batch(run_id, metrics=metrics, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_mlflow_round_trip(store, tmp_path: Path) -> None:
    uri, root = store
    report = tmp_path / "report.json"
    report.write_text('{"ok": true}')
    tracker = MlflowTracker(
        uri,
        "round-trip",
        run_name="rt",
        tags={"suite": "tests"},
        flush_interval=0.2,
        artifact_location=str(root / "artifacts"),
    )
    assert isinstance(tracker, Tracker)
    counting = tracker._client = _CountingClient(tracker._client)
    tracker.log_params(SPEC)
    logged: dict[str, list[tuple[int, float]]] = {"loss/train": [], "acc": [], "lr": []}
    start = time.perf_counter()
    for step in range(1000):  # 3,000 values
        values = {"loss/train": 1.0 / (step + 1), "acc": step / 1000, "lr": 1e-3 * 0.99**step}
        tracker.log_metrics(values, step)
        for key, value in values.items():
            logged[key].append((step, value))
    caller_s = time.perf_counter() - start
    tracker.log_artifact(report)
    tracker.finish()
    tracker.finish()  # idempotent

    # a guard, not a speed figure: a call that waited for the store would take far longer
    assert caller_s < 5.0, f"log_metrics took {caller_s:.3f} s of caller time for 3,000 values"
    assert sum(counting.metric_batches) == 3000
    assert max(counting.metric_batches) <= 1000 and len(counting.metric_batches) <= 30
    client = mlflow_tracking.MlflowClient(uri)
    for key, values in logged.items():
        assert _history(client, tracker.run_id, key) == values
    run = client.get_run(tracker.run_id)
    assert run.data.params == FLAT_SPEC
    assert run.data.tags["suite"] == "tests" and run.info.run_name == "rt"
    assert run.info.status == "FINISHED"
    assert [f.path for f in client.list_artifacts(tracker.run_id)] == ["report.json"]
    assert (root / "artifacts").is_dir()
    assert (tracker.dropped, tracker.lost, tracker.skipped) == (0, 0, 0)


def test_mlflow_odd_keys_values_and_long_params(store) -> None:
    uri, _ = store
    tracker = MlflowTracker(uri, "odd-keys", flush_interval=0.05)
    tracker.log_metrics({"acc@1": 0.5, "a//b": 1.0, "nan": float("nan"), "text": "x"}, step=0)
    tracker.log_metrics({"inf": float("-inf")}, step=1)
    tracker.log_params(
        {"weird key!": 1, "long": "v" * 7000, "many": {str(i): i for i in range(150)}}
    )
    tracker.finish()
    client = mlflow_tracking.MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    assert run.data.metrics == {"acc_1": 0.5, "a__b": 1.0}
    assert run.data.params["weird key_"] == "1"
    assert run.data.params["long"] == "v" * 6000
    assert len(run.data.params) == 152
    assert (tracker.skipped, tracker.lost) == (3, 0)


def test_mlflow_trackers_coexist_and_resume(store) -> None:
    uri, _ = store
    first = MlflowTracker(uri, "resume", flush_interval=0.05)
    other = MlflowTracker(uri, "resume-other", flush_interval=0.05)  # same process, alive together
    first.log_metrics({"x": 1.0}, 0)
    other.log_metrics({"x": -1.0}, 0)
    first.finish("KILLED")
    resumed = MlflowTracker(uri, "resume", run_id=first.run_id, tags={"resumed": "yes"})
    assert resumed.run_id == first.run_id
    resumed.log_metrics({"x": 2.0}, 1)
    assert resumed.flush(timeout=10)
    resumed.finish()
    other.finish()
    client = mlflow_tracking.MlflowClient(uri)
    assert _history(client, first.run_id, "x") == [(0, 1.0), (1, 2.0)]
    assert _history(client, other.run_id, "x") == [(0, -1.0)]
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed"] == "yes"


def test_unreachable_store_fails_fast() -> None:
    uri = f"http://user:secret@127.0.0.1:{_free_port()}"
    start = time.perf_counter()
    with pytest.raises(TrackerError, match=r"127\.0\.0\.1") as info:
        MlflowTracker(uri, "nowhere")
    assert time.perf_counter() - start < 5
    assert isinstance(info.value, RuntimeError) and "secret" not in str(info.value)


def test_locked_store_keeps_the_data(store) -> None:
    uri, root = store
    tracker = MlflowTracker(uri, "locked", flush_interval=0.05)
    db = sqlite3.connect(root / "mlflow.db", isolation_level=None, timeout=30)
    db.execute("BEGIN EXCLUSIVE")  # writers now wait on the lock
    try:
        start = time.perf_counter()
        for step in range(500):
            tracker.log_metrics({"a": float(step), "b": -float(step)}, step)
        assert time.perf_counter() - start < 5.0  # the lock waits 30 s: these calls did not
        time.sleep(0.5)
        assert not tracker.flush(timeout=0.1)  # still waiting, nothing lost
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert tracker.flush(timeout=20)
    tracker.finish()
    client = mlflow_tracking.MlflowClient(uri)
    assert _history(client, tracker.run_id, "a") == [(s, float(s)) for s in range(500)]
    assert (tracker.dropped, tracker.lost) == (0, 0)


def test_failing_artifact_upload_is_retried_in_order(store, tmp_path: Path, caplog) -> None:
    uri, _ = store
    blocker = tmp_path / "artifacts"
    blocker.write_text("a file where the artifact directory should be")
    report = tmp_path / "report.txt"
    report.write_text("hello")
    tracker = MlflowTracker(
        uri, "artifact-retry", flush_interval=0.05, artifact_location=str(blocker)
    )
    with caplog.at_level(logging.WARNING, logger="igm_core.tracking"):
        tracker.log_metrics({"x": 1.0}, 0)
        tracker.log_artifact(report)
        tracker.log_metrics({"x": 2.0}, 1)  # waits behind the artifact
        time.sleep(1.0)  # a few failed attempts
        assert not tracker.flush(timeout=0.1)
        blocker.unlink()  # the artifact store works again
        assert tracker.flush(timeout=10)
        tracker.finish()
    assert any("retrying" in r.getMessage() for r in caplog.records)
    client = mlflow_tracking.MlflowClient(uri)
    assert [f.path for f in client.list_artifacts(tracker.run_id)] == ["report.txt"]
    assert _history(client, tracker.run_id, "x") == [(0, 1.0), (1, 2.0)]
    assert client.get_run(tracker.run_id).info.status == "FINISHED"


def test_store_down_after_start(store, caplog) -> None:
    uri, _ = store
    tracker = MlflowTracker(uri, "outage", flush_interval=60, max_queue=1000)
    # The documented private hook: the thread now talks to a store nobody listens on, whose
    # client retries each request for minutes.
    tracker._client = mlflow_tracking.MlflowClient(f"http://127.0.0.1:{_free_port()}")
    with caplog.at_level(logging.WARNING, logger="igm_core.tracking"):
        start = time.perf_counter()
        for step in range(1000):  # 3,000 values, more than max_queue
            tracker.log_metrics({"a": 1.0, "b": 2.0, "c": 3.0}, step)
        assert time.perf_counter() - start < 5.0  # the store's client retries for minutes
        assert tracker.dropped >= 1000
        start = time.perf_counter()
        tracker.finish(timeout=2)
        assert time.perf_counter() - start < 4
        tracker.finish()  # idempotent: returns at once
    messages = [r.getMessage() for r in caplog.records]
    assert sum("dropping the oldest" in m for m in messages) == 1
    assert any("not marked FINISHED" in m for m in messages)
    assert tracker.dropped + tracker.lost == 3000
    run = mlflow_tracking.MlflowClient(uri).get_run(tracker.run_id)
    assert run.info.status == "RUNNING" and run.data.metrics == {}
