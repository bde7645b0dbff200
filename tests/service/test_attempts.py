"""Attempts: each step once across the attempts' MLflow runs (the later attempt wins from the
step it resumed from), a taken-over attempt's run is ended as KILLED, and a resumed
experiment's metrics and timeline span all its attempts."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from igm_core.events import EpochEnd
from server import crud
from server.db import session_factory
from server.main import create_app
from server.models import Experiment, utcnow
from tests.service.conftest import make_settings, sqlite_url
from tests.service.test_runner import SMALL, create, row
from worker import runner
from worker.runner import run

STEPS_PER_EPOCH = 16  # 512 training samples in batches of 32
RESUMED = {
    **SMALL,
    "name": "resumed",
    "dataset": {"name": "synthetic", "params": {"n_train": 512, "n_val": 100, "n_test": 100}},
    "schedule": {"stage_epochs": [1, 1, 1, 1]},
}


def test_a_taken_over_attempts_run_is_ended_killed_and_recorded(tmp_path) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url(tmp_path), heartbeat_s=0.3)
    eid = create(settings, SMALL)
    client = MlflowClient(settings.resolved_mlflow_uri())
    experiment = client.get_experiment_by_name(settings.project) or client.get_experiment(
        client.create_experiment(settings.project, settings.mlflow_artifact_root())
    )
    lost_run = client.create_run(experiment.experiment_id).info.run_id
    sessions = session_factory(settings.resolved_database_url())
    with sessions() as s:  # attempt 1 claimed it, started its run and died
        crud.claim(s, experiment_id=eid, worker="lost", stale_after_s=1e9)
        crud.set_mlflow_run(s, experiment_id=eid, run_id=lost_run, attempt=1)
        s.query(Experiment).filter_by(id=eid).update(
            {"heartbeat_at": utcnow() - timedelta(seconds=settings.stale_after_s + 5)}
        )
        s.commit()
    assert run(eid, settings=settings, worker="w2") == "succeeded"
    exp = row(settings, eid)
    assert client.get_run(lost_run).info.status == "KILLED"
    assert client.get_run(exp.mlflow_run_id).info.status == "FINISHED"
    assert [(r["attempt"], r["run_id"], r["from_step"]) for r in exp.attempt_runs] == [
        (1, lost_run, 0),
        (2, exp.mlflow_run_id, 0),  # no checkpoint was left: it started from scratch
    ]


def _cancel_as_its_second_epoch_ends(monkeypatch, settings, eid: str) -> None:
    """The user's cancel (crud.request_cancel, seen by the heartbeat) arrives as attempt 1's
    second epoch ends: training waits in that epoch's event until the worker has seen it, so
    the attempt stops right after that epoch's checkpoint whatever the machine's speed."""
    on_event, ended = runner.Attempt.on_event, []

    def cancelled_after_two(self: runner.Attempt, event) -> None:
        on_event(self, event)
        if isinstance(event, EpochEnd) and self.exp.attempts == 1:
            ended.append(event)
            if len(ended) == 2:
                with session_factory(settings.resolved_database_url())() as s:
                    crud.request_cancel(s, experiment_id=eid)
                assert self.bridge.cancel.wait(60), "the heartbeat never saw the cancel"

    monkeypatch.setattr(runner.Attempt, "on_event", cancelled_after_two)


def test_a_resumed_experiments_timeline_and_metrics_span_its_attempts(
    tmp_path, db_url, monkeypatch
) -> None:
    settings = make_settings(tmp_path, database_url=db_url, heartbeat_s=0.3)
    eid = create(settings, RESUMED)
    _cancel_as_its_second_epoch_ends(monkeypatch, settings, eid)
    assert run(eid, settings=settings, worker="w1") == "cancelled"
    with session_factory(settings.resolved_database_url())() as s:
        crud.retry(s, experiment_id=eid, extra_attempts=1)
    assert run(eid, settings=settings, worker="w2") == "succeeded"
    exp = row(settings, eid)
    (first, _), (second, resumed_at) = exp.runs()
    assert resumed_at >= 2 * STEPS_PER_EPOCH  # resumed late, from the checkpoint of attempt 1
    ends = [STEPS_PER_EPOCH * k for k in (1, 2, 3, 4)]
    with TestClient(create_app(settings)) as client:
        tl = client.get(f"/experiments/{eid}/timeline").json()
        acc = client.get(f"/experiments/{eid}/metrics", params={"keys": "val/fused/acc"}).json()
    assert acc["metrics"]["val/fused/acc"]["steps"] == ends
    assert tl["steps_per_epoch"] == STEPS_PER_EPOCH
    assert tl["epoch_end_steps"] == ends and tl["epochs_logged"] == 4
    assert [(s["start_step"], s["end_step"]) for s in tl["stages"]] == list(
        zip([0, *ends[:3]], ends, strict=True)
    )
    assert all(s["reached"] for s in tl["stages"])
    # the clock runs from the first attempt's start through the second attempt's last point
    clock = dict(zip(tl["clock"]["steps"], tl["clock"]["seconds"], strict=True))
    assert clock[0] == 0.0 and set(ends) <= set(clock)  # epochs 1-2 from attempt 1, 3-4 from 2
    mlflow = MlflowClient(settings.resolved_mlflow_uri())
    start1, start2 = (mlflow.get_run(r).info.start_time for r in (first, second))
    assert clock[ends[1]] <= clock[ends[2]] <= clock[ends[3]]
    assert clock[ends[2]] >= (start2 - start1) / 1000  # attempt 2's epoch ends after its start
    assert tl["mlflow_run_id"] == second
