"""Fault tolerance with real processes: PostgreSQL, a redis-server and an `mlflow server` of the
test's own, Celery worker processes, the API. Each test asserts the final state, that every
logged step reached MLflow exactly once across the attempts (none missing, none doubled) and,
where a run was cut, that the next attempt resumed from its checkpoint.

Short stale settings (heartbeat 0.5 s, lost after 4 s, reconcile every 1 s) and tiny specs
(240 steps) bound the module; waits are hang guards several times longer.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.service.faultlab import LOSS_KEY, STEPS_PER_EPOCH, Lab, lab, wait_until
from tests.service.test_mlflow_outage import outage

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="needs redis-server to start one of its own: apt-get install -y redis-server",
    ),
]
# 720 steps: long enough that an idle machine cannot finish a run while a test waits to cut it
LONG = {"epochs": 24}
RUN_S = 240  # hang guard for one experiment (about 10-20 s on a loaded 2-core machine)
# hang guard for one list while MLflow is down: it never waits for MLflow and takes milliseconds
# (seconds on a loaded machine); bench/bench_outage.py prints the figure


@pytest.fixture(scope="module")
def the_lab(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    from sqlalchemy import text

    from server.db import get_engine

    with get_engine(pg_url).begin() as conn:
        conn.execute(text("TRUNCATE experiment_tags, experiments, sweeps CASCADE"))
    folder = tmp_path_factory.mktemp("faults")
    with lab(folder, pg_url, f"f{uuid.uuid4().hex[:10]}") as started:
        yield started


def resumed_from_checkpoint(the_lab: Lab, exp) -> None:
    """The second attempt loaded a checkpoint written by the first (an epoch's end, where the
    first attempt had logged), and logged only after it."""
    from mlflow.tracking import MlflowClient

    runs = exp.attempt_runs
    assert len(runs) == 2, runs
    start = runs[1]["from_step"]
    total_steps = exp.spec["schedule"]["epochs"] * STEPS_PER_EPOCH
    assert start and start % STEPS_PER_EPOCH == 0 and start < total_steps, runs
    client = MlflowClient(the_lab.settings.resolved_mlflow_uri())
    first, second = (
        [m.step for m in client.get_metric_history(r["run_id"], LOSS_KEY)] for r in runs
    )
    assert max(first) >= start - STEPS_PER_EPOCH // 2 and min(second) > start


def first_run_status(the_lab: Lab, exp) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(the_lab.settings.resolved_mlflow_uri())
    return client.get_run(exp.attempt_runs[0]["run_id"]).info.status


def test_a_whole_worker_killed_resumes_on_another_from_its_checkpoint(the_lab: Lab) -> None:
    eid = the_lab.submit(name="kill-worker", schedule=LONG)
    the_lab.wait_step(eid, 45, RUN_S)
    name, pid = the_lab.worker_of(eid)
    the_lab.workers[name].kill(signal.SIGKILL)  # the whole process group: parent and child
    exp = the_lab.wait_status(eid, ("succeeded", "failed"), RUN_S)
    assert exp.status == "succeeded" and exp.attempts == 2, exp.error
    assert not exp.worker.endswith(f":{pid}")
    resumed_from_checkpoint(the_lab, exp)
    the_lab.check_metrics(eid)
    assert first_run_status(the_lab, exp) == "KILLED"
    the_lab.start_worker(name)  # back to two workers for the next tests


def test_b_the_pool_child_alone_killed_resumes_from_its_checkpoint(the_lab: Lab) -> None:
    eid = the_lab.submit(name="kill-child", schedule=LONG)
    the_lab.wait_step(eid, 45, RUN_S)
    _, pid = the_lab.worker_of(eid)
    os.kill(pid, signal.SIGKILL)
    exp = the_lab.wait_status(eid, ("succeeded", "failed"), RUN_S)
    assert exp.status == "succeeded" and exp.attempts == 2, exp.error
    resumed_from_checkpoint(the_lab, exp)
    the_lab.check_metrics(eid)
    assert first_run_status(the_lab, exp) == "KILLED"


def test_c_after_the_attempt_cap_the_experiment_fails_with_the_reason(the_lab: Lab) -> None:
    eid = the_lab.submit(name="cap", max_attempts=1, schedule=LONG)
    the_lab.wait_step(eid, 20, RUN_S)
    _, pid = the_lab.worker_of(eid)
    os.kill(pid, signal.SIGKILL)
    exp = the_lab.wait_status(eid, ("succeeded", "failed"), RUN_S)
    assert exp.status == "failed" and exp.attempts == 1
    assert exp.error == "attempt cap reached: the worker was lost on every attempt"


def test_d_redis_restarted_empty_strands_nothing_and_runs_nothing_twice(the_lab: Lab) -> None:
    ids = [the_lab.submit(name=f"redis-{i}", schedule={"epochs": 3}) for i in range(4)]
    wait_until(
        "two running",
        lambda: sum(the_lab.row(e).status == "running" for e in ids) == 2,
        RUN_S,
    )
    the_lab.redis.kill(signal.SIGKILL)  # no persistence: it comes back empty
    time.sleep(1.0)
    the_lab.start_redis()
    for eid in ids:
        exp = the_lab.wait_status(eid, ("succeeded", "failed"), RUN_S)
        # one attempt each: no row was claimed twice, so none ran twice at the same time
        assert exp.status == "succeeded" and exp.attempts == 1, (exp.status, exp.attempts)
        assert len(exp.attempt_runs) == 1
        the_lab.check_metrics(eid)


def test_e_mlflow_stopped_mid_run_and_before_a_start_loses_nothing(the_lab: Lab) -> None:
    running = the_lab.submit(name="mlflow-mid", schedule={"epochs": 12})
    the_lab.wait_step(running, 20, RUN_S)
    the_lab.mlflow.kill(signal.SIGKILL)
    down_at = time.monotonic()
    waiting = the_lab.submit(name="mlflow-before")  # starts while MLflow is down

    answers, listed = outage(the_lab.api_url, running)
    assert {code for code, _, _ in answers} == {503}
    # each request's client timeout is the hang guard (the figures: bench/bench_outage.py)
    assert listed, "no list answered while MLflow was down"
    assert the_lab.row(running).status == "running"  # training goes on meanwhile
    time.sleep(max(0.0, 15.0 - (time.monotonic() - down_at)))  # down about 20 s with the restart
    the_lab.start_mlflow()
    for eid in (running, waiting):
        exp = the_lab.wait_status(eid, ("succeeded", "failed"), RUN_S)
        assert exp.status == "succeeded" and exp.attempts == 1, exp.error
        the_lab.check_metrics(eid)


def test_f_the_api_restarted_mid_run_changes_nothing(the_lab: Lab) -> None:
    eid = the_lab.submit(name="api-restart", schedule={"epochs": 12})
    before = the_lab.wait_step(eid, 20, RUN_S)  # running at step 20 or later, just now
    the_lab.stop_api()
    the_lab.start_api()  # a new app: its start-up pass re-sends queued and lost rows
    after = the_lab.row(eid)
    assert before.status == "running" and after.worker == before.worker
    exp = the_lab.wait_status(eid, ("succeeded", "failed"), RUN_S)
    assert exp.status == "succeeded" and exp.attempts == 1
    assert len(exp.attempt_runs) == 1
    the_lab.check_metrics(eid)
