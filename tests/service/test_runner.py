"""worker.runner against real databases and a real MLflow store (no Celery: called directly)."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from igm_core import summary as run_summary
from igm_core.compare import report_from_results
from igm_core.spec import resolve_spec
from server import crud
from server.db import session_factory
from server.models import Experiment, utcnow
from tests.service.conftest import make_settings
from tests.specs import staged
from worker.runner import run

SMALL = staged("runner", log_every=2)
LONG = {
    **SMALL,
    "dataset": {"name": "synthetic", "params": {"n_train": 4000}},
    "schedule": {"stage_epochs": [40, 40]},
}


def create(settings, spec: dict, **kw) -> str:
    with session_factory(settings.resolved_database_url())() as s:
        exp = crud.create_experiment(
            s, spec=resolve_spec(spec), queue="cpu", max_attempts=kw.pop("max_attempts", 3), **kw
        )
        return exp.id


def row(settings, experiment_id: str) -> Experiment:
    with session_factory(settings.resolved_database_url())() as s:
        return crud.get_experiment(s, experiment_id)


@pytest.fixture
def settings(tmp_path: Path, db_url: str):
    return make_settings(tmp_path, database_url=db_url, heartbeat_s=0.3)


def test_runs_to_success_and_logs_everything_to_mlflow(settings, tmp_path: Path) -> None:
    eid = create(settings, SMALL, tags=["a"])
    assert run(eid, settings=settings, worker="w1") == "succeeded"
    exp = row(settings, eid)
    assert exp.status == "succeeded" and exp.attempts == 1 and exp.worker == "w1"
    assert exp.finished_at is not None and exp.progress["fraction"] == 1.0
    client = MlflowClient(settings.resolved_mlflow_uri())
    mlrun = client.get_run(exp.mlflow_run_id)
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.tags["igm.experiment_id"] == eid
    assert mlrun.data.tags["igm.spec_hash"] == exp.spec_hash
    assert mlrun.data.params["method.params.tau"] == "0.4"
    paths = {a.path for a in client.list_artifacts(exp.mlflow_run_id)}
    assert {"result.json", "spec.json", "confusion_matrices.json", "checkpoints"} <= paths
    local = client.download_artifacts(exp.mlflow_run_id, "result.json", str(tmp_path))
    # the row keeps igm_core.summary's part of result.json, which the comparison reads back
    assert exp.summary == run_summary.of(json.loads(Path(local).read_text()))
    assert "confidence" not in exp.summary["val"]
    report = report_from_results([(eid, run_summary.as_result(exp.spec, exp.summary))])
    assert report["groups"][0]["n"] == 1
    assert "grad/weak/norm" in mlrun.data.metrics and "gm/weak/kept_ratio" in mlrun.data.metrics
    # a re-delivered id is a no-op
    assert run(eid, settings=settings, worker="w2") == "skipped"
    assert row(settings, eid).worker == "w1"


def test_cancel_while_running_then_retry_resumes(settings) -> None:
    eid = create(settings, LONG)
    outcome: dict[str, str] = {}
    thread = threading.Thread(
        target=lambda: outcome.update(s=run(eid, settings=settings, worker="w1"))
    )
    thread.start()
    deadline = time.time() + 60
    while time.time() < deadline and not (row(settings, eid).progress or {}).get("step"):
        time.sleep(0.2)
    step_at_cancel = row(settings, eid).progress["step"]
    with session_factory(settings.resolved_database_url())() as s:
        crud.request_cancel(s, experiment_id=eid)
    t0 = time.time()
    thread.join(timeout=30)
    assert outcome["s"] == "cancelled" and time.time() - t0 < 5
    exp = row(settings, eid)
    assert exp.status == "cancelled"
    assert (settings.runs_dir() / eid / "checkpoint.pt").exists()
    with session_factory(settings.resolved_database_url())() as s:
        crud.retry(s, experiment_id=eid, extra_attempts=3)
    # the retried attempt resumes from the checkpoint: shorten it by cancelling again quickly
    stopped_at = exp.progress["step"]
    outcome.clear()
    thread = threading.Thread(
        target=lambda: outcome.update(s=run(eid, settings=settings, worker="w2"))
    )
    thread.start()

    def resumed() -> bool:
        e = row(settings, eid)
        return e.attempts == 2 and e.status == "running" and (e.progress or {})["step"] > stopped_at

    deadline = time.time() + 60
    while time.time() < deadline and not resumed():
        time.sleep(0.2)
    progress = row(settings, eid).progress
    assert progress["step"] > stopped_at >= step_at_cancel  # continued, not restarted at step 0
    with session_factory(settings.resolved_database_url())() as s:
        crud.request_cancel(s, experiment_id=eid)
    thread.join(timeout=30)
    second = row(settings, eid)
    assert outcome["s"] == "cancelled" and second.attempts == 2
    # the second attempt's MLflow run starts where the first stopped, not at step 0
    history = MlflowClient(settings.resolved_mlflow_uri()).get_metric_history(
        second.mlflow_run_id, "train/strong/loss"
    )
    assert history and min(m.step for m in history) > stopped_at
    # ... and carries the spec's params and the tags like the first attempt's run
    params = MlflowClient(settings.resolved_mlflow_uri()).get_run(second.mlflow_run_id).data
    assert params.params["batch_size"] == "32" and params.tags["igm.attempt"] == "2"
    assert params.tags["spec_hash"] == second.spec_hash


def test_runtime_failure_is_recorded_with_traceback(settings) -> None:
    eid = create(
        settings,
        {**SMALL, "device": "cuda"}
        if not _has_cuda()
        else {
            **SMALL,
            "dataset": {"name": "digits"},
            "model": {"encoders": {"top": {"name": "conv", "params": {"channels": [10**4] * 16}}}},
        },
    )
    assert run(eid, settings=settings, worker="w1") == "failed"
    exp = row(settings, eid)
    assert exp.status == "failed" and exp.error and "Traceback" in exp.traceback
    client = MlflowClient(settings.resolved_mlflow_uri())
    assert client.get_run(exp.mlflow_run_id).info.status == "FAILED"


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_queued_cancel_is_never_run(settings) -> None:
    eid = create(settings, SMALL)
    with session_factory(settings.resolved_database_url())() as s:
        crud.request_cancel(s, experiment_id=eid)
    assert run(eid, settings=settings, worker="w1") == "skipped"
    assert row(settings, eid).status == "cancelled" and row(settings, eid).attempts == 0


def test_lost_worker_is_taken_over_until_the_attempt_cap(settings) -> None:
    eid = create(settings, SMALL, max_attempts=2)
    stale = utcnow() - timedelta(seconds=settings.stale_after_s + 5)
    with session_factory(settings.resolved_database_url())() as s:
        # a worker claimed it and vanished
        assert crud.claim(s, experiment_id=eid, worker="lost", stale_after_s=1e9) is not None
        s.query(Experiment).filter_by(id=eid).update({"heartbeat_at": stale})
        s.commit()
        # a fresh heartbeat keeps others away
        assert crud.claim(s, experiment_id=eid, worker="w2", stale_after_s=1e9) is None
    assert run(eid, settings=settings, worker="w2") == "succeeded"  # stale: taken over
    assert row(settings, eid).attempts == 2
    # out of attempts: a stale running row is marked failed instead of run again
    with session_factory(settings.resolved_database_url())() as s:
        s.query(Experiment).filter_by(id=eid).update(
            {"status": "running", "heartbeat_at": stale, "worker": "lost"}
        )
        s.commit()
    assert run(eid, settings=settings, worker="w3") == "skipped"
    exp = row(settings, eid)
    assert exp.status == "failed" and "attempt cap" in exp.error


def test_non_finite_progress_and_summary_are_stored_as_null(settings) -> None:
    """A diverged run reports NaN and inf; PostgreSQL's json type refuses them, so the row keeps
    null in their place (and every other value) on both databases."""
    eid = create(settings, SMALL)
    sessions = session_factory(settings.resolved_database_url())
    with sessions() as s:
        assert crud.claim(s, experiment_id=eid, worker="w1", stale_after_s=60) is not None
        progress = {"step": 3, "val_acc": float("nan"), "loss": [1.0, float("inf")]}
        crud.heartbeat(s, experiment_id=eid, worker="w1", progress=progress)
    assert row(settings, eid).progress == {"step": 3, "val_acc": None, "loss": [1.0, None]}
    with sessions() as s:
        summary = {"test": {"acc": 0.5, "loss": float("-inf")}}
        assert crud.finish(s, experiment_id=eid, worker="w1", status="succeeded", summary=summary)
    assert row(settings, eid).summary == {"test": {"acc": 0.5, "loss": None}}
