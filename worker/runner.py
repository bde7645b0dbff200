"""Runs one experiment: claim the row, train with igm_core, report progress, record the outcome.

Tests call `run` directly (never through Celery's eager mode). The spec stored in the row is the
resolved one: it is rebuilt without reading any data file. Progress and cancel go through
worker.bridge, which heartbeats from the claim on.

MLflow: a run that starts while the store is unreachable waits for it (backoff up to 10 s,
heartbeating, cancellable) for `mlflow_start_wait_s` before failing; once started, the tracker
buffers and retries on its own. Each attempt logs to a run of its own, recorded in the row with
the step it resumed from (server.attempts holds the rules); the run of an earlier attempt whose
worker died (still RUNNING) is ended as KILLED. At each epoch's end the metrics logged so far
are sent before the checkpoint is written (for up to FLUSH_BEFORE_CHECKPOINT_S). `_train`
returns an Outcome (status, the summary of igm_core.summary, error, traceback) that `run`
records.

When the worker shuts down (worker.shutdown: SIGTERM, a restart), the attempt stops at its next
step with its checkpoint written and what it logged sent to MLflow (its run ends KILLED, tagged
igm.stopped), and goes back to the queue: crud.requeue (not counted against the attempt cap),
then its id is sent to the broker again, so that the next attempt, on any worker, resumes from
the checkpoint at once.
"""

from __future__ import annotations

import logging
import subprocess
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from igm_core import summary as run_summary
from igm_core.events import EpochEnd, Event, Resumed
from igm_core.paths import PathRefused, confine_spec
from igm_core.spec import ResolvedSpec
from server import attempts, crud
from server.db import session_factory
from server.models import CANCELLED, FAILED, SUCCEEDED, Experiment
from server.queue import make_celery, send_run
from server.settings import Settings
from worker import shutdown
from worker.bridge import Bridge

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("worker.runner")
TRACEBACK_CHARS = 20_000
FLUSH_BEFORE_CHECKPOINT_S = 3.0
REQUEUED = "requeued"  # an attempt stopped by its worker's shutdown: the row goes back to queued
STOPPED_TAG = {"igm.stopped": "worker shutdown"}
# how long a stopping attempt's run may take to send what it logged: within the compose stop
# grace (60 s) even while MLflow is down (a run that could not send is ended without it)
SHUTDOWN_FINISH_S = 30.0


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: what crud.finish records in the row."""

    status: str  # succeeded, failed or cancelled; or requeued (the row goes back to queued)
    summary: dict[str, Any] | None = None  # igm_core.summary, for a succeeded run
    error: str | None = None
    traceback: str | None = None


def run(
    experiment_id: str,
    *,
    settings: Settings,
    worker: str,
    time_limit_s: float | None = None,
    celery: Celery | None = None,
) -> str:
    """Run the best claimable experiment of experiment_id's queue (server.crud.claim_next: not
    always experiment_id itself); returns the final status, 'requeued' (the worker shut down:
    the row is queued again and its id sent with `celery`, by default an app made from the
    settings) or 'skipped'.

    Past `time_limit_s` (the message's, else the settings' for the row's queue) the run stops
    at its next step, as a cancel does, and is recorded as failed with the reason; Celery's
    hard limit a little later is only the backstop for a run stuck outside its steps."""
    sessions = session_factory(settings.resolved_database_url())
    with sessions() as s:  # the best row of the message's queue: priority, then age
        exp = crud.claim_next(
            s, experiment_id=experiment_id, worker=worker, stale_after_s=settings.stale_after_s
        )
    if exp is None:
        log.info("nothing claimable in the queue of experiment %s: skipped", experiment_id)
        return "skipped"
    experiment_id = exp.id
    limit_s = time_limit_s or settings.time_limit_s(exp.queue)
    try:
        outcome = _train(exp, settings, sessions, worker, limit_s=limit_s)
    except Exception as err:  # never a silent loss: record what happened
        tb = traceback.format_exc()[-TRACEBACK_CHARS:]
        outcome = Outcome(FAILED, error=f"{type(err).__name__}: {err}", traceback=tb)
    if outcome.status == REQUEUED:
        return _requeue(exp, settings, sessions, worker, celery)
    with sessions() as s:
        crud.finish(
            s,
            experiment_id=experiment_id,
            worker=worker,
            status=outcome.status,
            summary=outcome.summary,
            error=outcome.error,
            traceback=outcome.traceback,
        )
    return outcome.status


def _train(
    exp: Experiment,
    settings: Settings,
    sessions: sessionmaker[Session],
    worker: str,
    *,
    limit_s: float,
) -> Outcome:
    """One attempt: check the spec, start its MLflow run, train (resuming from the checkpoint
    when there is one) and say how it ended."""
    deadline = time.monotonic() + limit_s
    from igm_core.trainer import train  # torch: imported by the attempt, not the worker's start

    spec = _checked_spec(exp, settings)
    if isinstance(spec, Outcome):
        return spec
    out_dir = settings.runs_dir() / exp.id
    from_step = attempts.start_step((out_dir / "checkpoint.pt").exists())
    earlier = [run_id for run_id, _ in exp.runs()]
    with Bridge(sessions, exp.id, worker, settings.heartbeat_s) as bridge:
        bridge.beat()
        tracker = _start_tracker(
            lambda: _make_tracker(exp, settings, worker), settings.mlflow_start_wait_s, bridge
        )
        if tracker is None:
            return Outcome(CANCELLED) if bridge.should_stop() else Outcome(REQUEUED)
        attempt = Attempt(sessions, exp, tracker, bridge, deadline)
        attempt.record(from_step)
        for run_id in earlier:  # an earlier attempt's worker died with its run open
            if tracker.end_other_run(run_id, "KILLED"):
                log.warning("ended MLflow run %s of an earlier attempt as KILLED", run_id)
        result = train(
            spec,
            out_dir=out_dir,
            tracker=tracker,
            should_stop=attempt.should_stop,
            on_event=attempt.on_event,
        )
    if result.status == "stopped":
        if bridge.should_stop():
            return Outcome(CANCELLED)
        if attempt.shut_down:  # the worker's shutdown, within the time limit
            return Outcome(REQUEUED)
        return Outcome(FAILED, error=time_limit_error(limit_s, exp.queue))
    return Outcome(SUCCEEDED, summary=dict(run_summary.of(result.result)))


def _checked_spec(exp: Experiment, settings: Settings) -> ResolvedSpec | Outcome:
    """The row's resolved spec, its paths confined to the data roots again here, before anything
    opens them (a link may have changed since); a failed Outcome when it is refused."""
    try:
        return ResolvedSpec.model_validate(confine_spec(exp.spec, settings.data_roots))
    except PathRefused as err:
        return Outcome(FAILED, error=f"refused path: {err}")
    except ValidationError as err:
        return Outcome(FAILED, error=f"invalid spec: {err}")


def _make_tracker(exp: Experiment, settings: Settings, worker: str) -> Any:
    """This attempt's MLflow run, tagged with the experiment and the attempt."""
    from igm_core.tracking import MlflowTracker

    tags = {
        "igm.experiment_id": exp.id,
        "igm.spec_hash": exp.spec_hash,
        "method": exp.method,
        "dataset": exp.dataset,
        "igm.attempt": str(exp.attempts),
        "igm.worker": worker,
    }
    if commit := git_commit():
        tags["git.commit"] = commit
    return MlflowTracker(
        settings.resolved_mlflow_uri(),
        settings.project,
        run_name=f"{exp.name} #{exp.attempts}",
        tags=tags,
        artifact_location=settings.mlflow_artifact_root(),
        # a run that ends during an outage waits for MLflow as long as a start would
        finish_timeout=max(30.0, settings.mlflow_start_wait_s),
    )


class Attempt:
    """This attempt's hooks into training: its MLflow run recorded in the row with the step it
    resumed from, the metrics sent before each checkpoint, progress and cancel through the
    bridge, and the time limit."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        exp: Experiment,
        tracker: Any,
        bridge: Bridge,
        deadline: float,
    ) -> None:
        self.sessions, self.exp, self.tracker = sessions, exp, tracker
        self.bridge, self.deadline = bridge, deadline
        self.shut_down = False  # stopped for the worker's shutdown (not a cancel, not the limit)

    def record(self, from_step: int | None) -> None:
        with self.sessions() as s:
            crud.set_mlflow_run(
                s,
                experiment_id=self.exp.id,
                run_id=self.tracker.run_id,
                attempt=self.exp.attempts,
                from_step=from_step,
            )

    def on_event(self, event: Event) -> None:
        if isinstance(event, EpochEnd):
            # the checkpoint is written next: send what was logged up to here first, so an
            # attempt that resumes from it finds every earlier point in MLflow even when this
            # process is killed right after (bounded: an outage only delays training)
            self.tracker.flush(timeout=FLUSH_BEFORE_CHECKPOINT_S)
        if isinstance(event, Resumed):  # before this attempt logs any metric
            self.record(event.step)
        self.bridge.on_event(event)

    def should_stop(self) -> bool:
        if self.bridge.should_stop() or time.monotonic() > self.deadline:
            return True
        if shutdown.requested() and not self.shut_down:
            self.shut_down = True
            self.tracker.set_tags(STOPPED_TAG)  # the run is still open: the trainer ends it
            self.tracker.finish_timeout = min(self.tracker.finish_timeout, SHUTDOWN_FINISH_S)
            log.warning("the worker is shutting down: %s stops at its next step", self.exp.id)
        return self.shut_down


def time_limit_error(limit_s: float, queue: str) -> str:
    return (
        f"time limit reached: runs on queue {queue!r} may take {limit_s:g} s "
        "(IGM_QUEUE_TIME_LIMITS_S, IGM_TASK_TIME_LIMIT_S); retry resumes from the last checkpoint"
    )


def _start_tracker(make: Any, wait_s: float, bridge: Bridge) -> Any:
    """make() until the MLflow store answers: backoff from 1 s to 10 s, for wait_s seconds at
    most (then its error is raised); None when a cancel or the worker's shutdown comes
    meanwhile."""
    from igm_core.tracking import TrackerError

    deadline, delay = time.monotonic() + wait_s, 1.0
    while True:
        try:
            return make()
        except TrackerError as err:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            log.warning("MLflow is not reachable (%s); trying again in %.0f s", err, delay)
        end = time.monotonic() + min(delay, left)  # in slices: a shutdown is seen within 1 s
        while (rest := end - time.monotonic()) > 0 and not shutdown.requested():
            if bridge.cancel.wait(min(1.0, rest)):
                break
        if bridge.should_stop() or shutdown.requested():
            return None
        delay = min(delay * 2, 10.0)


def _requeue(
    exp: Experiment,
    settings: Settings,
    sessions: sessionmaker[Session],
    worker: str,
    celery: Celery | None,
) -> str:
    """The row back to queued (crud.requeue), then its id to the broker: the next attempt, on
    any worker, resumes from the checkpoint. A message the broker refuses is left to the
    reconciler, which re-sends queued rows that no worker claims."""
    with sessions() as s:
        if not crud.requeue(s, experiment_id=exp.id, worker=worker):
            log.warning("%s was not this worker's any more: not queued again", exp.id)
            return REQUEUED
    app = celery or make_celery(settings)
    try:
        send_run(app, experiment_id=exp.id, queue=exp.queue, priority=exp.priority)
        log.warning("%s stopped with its checkpoint and went back to queue %s", exp.id, exp.queue)
    except Exception:  # the broker is away: the row stays queued for the reconciler
        log.exception("%s is queued again but its message could not be sent", exp.id)
    finally:
        if celery is None:
            app.close()
    return REQUEUED
