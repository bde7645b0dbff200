"""A worker that shuts down (SIGTERM: `docker stop`, a restart) hands its running experiment
back: the attempt stops at its next step with its checkpoint, ends its MLflow run as stopped,
the row goes back to queued without using up an attempt, and its id is sent again; the next
attempt resumes from the checkpoint, each logged step once across both attempts' runs.

The first test runs worker.runner in this process (both databases, the embedded broker): the
shutdown flag is raised as the second epoch ends, so the stop point does not depend on the
machine's speed. The second runs real processes (tests/service/faultlab.py: PostgreSQL, a
redis-server and an `mlflow server` of its own, Celery workers) and sends SIGTERM to the worker's
main process, as Docker does; it prints how long the hand-back took and asserts hang guards only.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from igm_core.events import EpochEnd
from server import crud
from server.db import session_factory
from server.main import create_app
from server.queue import make_celery, waiting
from tests.service.conftest import free_port, make_settings, sqlite_url
from tests.service.faultlab import LOSS_KEY, SPEC, STEPS_PER_EPOCH, lab
from tests.service.test_runner import create, row
from worker import runner, shutdown
from worker.runner import STOPPED_TAG, run

EPOCHS = 4
SHORT = {**SPEC, "name": "stopped", "schedule": {"epochs": EPOCHS}}  # 120 steps, log every 10
ENDS = [STEPS_PER_EPOCH * k for k in range(1, EPOCHS + 1)]


@pytest.fixture
def flag() -> Iterator[None]:
    """This process's shutdown flag, lowered again after the test."""
    shutdown.clear()
    yield
    shutdown.clear()


def _shut_down_as_its_second_epoch_ends(monkeypatch) -> None:
    on_event, ended = runner.Attempt.on_event, []

    def shut_down_after_two(self: runner.Attempt, event) -> None:
        on_event(self, event)
        if isinstance(event, EpochEnd) and self.exp.attempts == 1:
            ended.append(event)
            if len(ended) == 2:
                shutdown.request()  # what the main process does on SIGTERM

    monkeypatch.setattr(runner.Attempt, "on_event", shut_down_after_two)


def logged_steps(client: MlflowClient, run_id: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, LOSS_KEY)]


def check_stitched(exp, client: MlflowClient, timeline: dict, loss: dict) -> int:
    """Both attempts' runs: each logged step once, the second from the step the first stopped
    at; the metrics and the timeline span both. Returns the step the second resumed from."""
    (first, _), (second, resumed_at) = exp.runs()
    total = exp.spec["schedule"]["epochs"] * STEPS_PER_EPOCH
    before, after = logged_steps(client, first), logged_steps(client, second)
    assert len(set(before)) == len(before) and len(set(after)) == len(after)
    assert 0 < resumed_at < total and max(before) <= resumed_at < min(after)
    expected = [s for s in range(1, total + 1) if (s - 1) % exp.spec["log_every"] == 0]
    assert sorted(before + after) == expected  # none missing, none twice
    assert loss["steps"] == expected and loss["total"] == len(expected)
    ends = [STEPS_PER_EPOCH * k for k in range(1, exp.spec["schedule"]["epochs"] + 1)]
    assert timeline["epoch_end_steps"] == ends and timeline["epochs_logged"] == len(ends)
    assert timeline["mlflow_run_id"] == second
    clock = dict(zip(timeline["clock"]["steps"], timeline["clock"]["seconds"], strict=True))
    assert clock[0] == 0.0 and set(ends) <= set(clock)
    return resumed_at


def check_stopped_attempt(exp, client: MlflowClient) -> None:
    """The first attempt is recorded as stopped, not failed, and used up no attempt."""
    assert exp.attempt_runs[0]["ended"] == "stopped" and "ended" not in exp.attempt_runs[1]
    stopped = client.get_run(exp.attempt_runs[0]["run_id"])
    assert stopped.info.status == "KILLED" and stopped.data.tags.items() >= STOPPED_TAG.items()


def test_a_shut_down_attempt_goes_back_to_the_queue_and_the_next_resumes_it(
    tmp_path, db_url, monkeypatch, flag
) -> None:
    settings = make_settings(tmp_path, database_url=db_url, heartbeat_s=0.3)
    eid = create(settings, SHORT, max_attempts=1)  # a stop must not use up the only attempt
    celery = make_celery(settings)
    assert waiting(celery, "cpu") == 0  # create() sends nothing: any message is the runner's
    _shut_down_as_its_second_epoch_ends(monkeypatch)

    assert run(eid, settings=settings, worker="w1") == "requeued"
    exp = row(settings, eid)
    assert (exp.status, exp.attempts, exp.max_attempts) == ("queued", 1, 2)
    assert exp.worker is None and exp.error is None and exp.finished_at is None
    assert (settings.runs_dir() / eid / "checkpoint.pt").exists()
    assert waiting(celery, "cpu") == 1  # its id, sent again
    celery.close()
    with session_factory(settings.resolved_database_url())() as s:  # only the holder gives back
        assert not crud.requeue(s, experiment_id=eid, worker="w1")

    shutdown.clear()  # a new worker
    assert run(eid, settings=settings, worker="w2") == "succeeded"
    exp = row(settings, eid)
    assert (exp.status, exp.attempts, exp.worker) == ("succeeded", 2, "w2")
    client = MlflowClient(settings.resolved_mlflow_uri())
    check_stopped_attempt(exp, client)
    with TestClient(create_app(settings)) as api:
        timeline = api.get(f"/experiments/{eid}/timeline").json()
        loss = api.get(f"/experiments/{eid}/metrics", params={"keys": LOSS_KEY}).json()
    resumed_at = check_stitched(exp, client, timeline, loss["metrics"][LOSS_KEY])
    assert resumed_at == ENDS[1]  # the flag rose as epoch 2 ended: the stop came at its next step


# 360 steps: the signal comes as soon as the run passed step 45 (faultlab's wait_step catches it
# early on any machine), and the run stops at its next step
def test_a_shutdown_while_waiting_for_mlflow_queues_the_experiment_again(
    tmp_path, monkeypatch, flag
) -> None:
    """No run was started: nothing is marked stopped, and the attempt is not counted."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # as worker.celery_app sets it
    settings = make_settings(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        mlflow_start_wait_s=600.0,
    )
    eid = create(settings, SHORT)
    shutdown.request()
    assert run(eid, settings=settings, worker="w1") == "requeued"
    exp = row(settings, eid)
    assert (exp.status, exp.attempts, exp.max_attempts, exp.runs()) == ("queued", 1, 4, [])
    celery = make_celery(settings)
    assert waiting(celery, "cpu") == 1
    celery.close()


LONG = {"epochs": 12}
# hang guard for one experiment: about 10-20 s on a 2-core machine at load 5, minutes at load 20
RUN_S = 600
# hang guard for the hand-back: one step, a checkpoint and the MLflow flush (about a second)
STOP_GUARD_S = 60


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="needs redis-server to start one of its own: apt-get install -y redis-server",
)
def test_a_sigtermed_worker_hands_its_experiment_back_and_a_new_worker_resumes_it(
    clean_pg, tmp_path
) -> None:
    queue = f"s{uuid.uuid4().hex[:10]}"
    # the reconciler re-sends no queued row here: the message the next worker gets is the one
    # the stopped worker sent
    with lab(tmp_path, clean_pg, queue, workers=1, requeue_queued_after_s=3600.0) as the_lab:
        eid = the_lab.submit(name="sigterm", schedule=LONG)
        the_lab.wait_step(eid, 45, RUN_S)
        w1 = the_lab.workers["w1"]
        t0 = time.monotonic()
        os.kill(w1.proc.pid, signal.SIGTERM)  # the main process alone, as `docker stop` does
        exp = the_lab.wait_status(eid, ("queued", "succeeded", "failed"), STOP_GUARD_S)
        handed_back_s = time.monotonic() - t0
        assert (exp.status, exp.attempts, exp.max_attempts) == ("queued", 1, 4), exp.error
        assert (the_lab.settings.runs_dir() / eid / "checkpoint.pt").exists()
        assert w1.proc.wait(STOP_GUARD_S) == 0  # the warm shutdown ended cleanly
        exited_s = time.monotonic() - t0

        the_lab.start_worker("w2")
        t1 = time.monotonic()
        the_lab.wait_status(eid, ("running", "succeeded", "failed"), RUN_S)
        claimed_s = time.monotonic() - t1
        exp = the_lab.wait_status(eid, ("succeeded", "failed"), RUN_S)
        assert (exp.status, exp.attempts, exp.max_attempts) == ("succeeded", 2, 4), exp.error
        client = MlflowClient(the_lab.settings.resolved_mlflow_uri())
        check_stopped_attempt(exp, client)
        the_lab.check_metrics(eid)
        timeline = httpx.get(f"{the_lab.api_url}/experiments/{eid}/timeline", timeout=30).json()
        loss = httpx.get(
            f"{the_lab.api_url}/experiments/{eid}/metrics",
            params={"keys": LOSS_KEY, "max_points": 10_000},
            timeout=30,
        ).json()["metrics"][LOSS_KEY]
        resumed_at = check_stitched(exp, client, timeline, loss)
        assert resumed_at >= 45  # where the first attempt was when the signal came, or later
    print(
        f"\nSIGTERM to queued again: {handed_back_s:.2f} s; to the worker's exit: "
        f"{exited_s:.2f} s; a new worker's start to its claim: {claimed_s:.2f} s "
        f"(resumed at step {resumed_at}; load {os.getloadavg()[0]:.1f})"
    )
