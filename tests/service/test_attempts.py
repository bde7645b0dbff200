"""Attempts: each step once across the attempts' MLflow runs (the later attempt wins from the
step it resumed from), and a taken-over attempt's run is ended as KILLED."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from mlflow.tracking import MlflowClient

from server import attempts, crud
from server.db import session_factory
from server.models import Experiment, utcnow
from tests.service.conftest import make_settings, sqlite_url
from tests.service.test_runner import SMALL, create, row
from worker.runner import run


def hist(steps, value: float) -> tuple[np.ndarray, np.ndarray]:
    steps = np.asarray(steps, dtype=np.int64)
    return steps, np.full(len(steps), value)


def test_merge_keeps_each_step_once_and_the_later_attempt_wins_from_its_resume_step() -> None:
    first = hist(range(1, 9), 1.0)  # logged steps 1..8, its checkpoint was at step 5
    second = hist(range(6, 11), 2.0)  # resumed from 5
    steps, values = attempts.merge([(0, first), (5, second)])
    assert steps.tolist() == list(range(1, 11))
    assert values.tolist() == [1.0] * 5 + [2.0] * 5
    # an epoch-end key logged at the checkpoint step itself stays from the first attempt
    steps, values = attempts.merge([(0, hist([5, 8], 1.0)), (5, hist([10], 2.0))])
    assert steps.tolist() == [5, 10] and values.tolist() == [1.0, 2.0]
    # an attempt that died before resuming (None) logged nothing and changes nothing
    steps, _ = attempts.merge([(0, first), (None, None), (5, second)])
    assert steps.tolist() == list(range(1, 11))
    # a third attempt resumed from an earlier checkpoint than the second reached
    steps, values = attempts.merge([(0, first), (5, second), (7, hist([8, 9], 3.0))])
    assert steps.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert values.tolist() == [1.0] * 5 + [2.0, 2.0, 3.0, 3.0]
    assert attempts.merge([(0, None), (3, None)]) is None


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
