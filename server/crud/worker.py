"""The worker's side of an experiment's life: finding lost rows, claiming a queued row, the
heartbeat with its progress, the attempt's MLflow run, the outcome. Every transition that a
second worker could race is one conditional UPDATE whose row count says whether it happened.

Which row a message runs: the broker carries ids, but the table decides. A worker that receives
a message claims the best claimable row of that id's queue (`claim_next`: highest priority, then
oldest), which is the message's own row only when nothing better waits. The broker holds at least
one message per queued row (one is sent per row created or retried; the reconciler re-sends lost
ones), and each message claims at most one row, so every queued row is reached; a message left
over (its row was run by an earlier message, cancelled or deleted) finds nothing better than a
row that still has its own message, or nothing at all, and is skipped. So priority and
first-in-first-out hold whatever order the broker delivers in (the embedded filesystem broker
knows no priorities, and orders messages sent in the same millisecond at random)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from server import attempts
from server.models import FAILED, FINISHED, QUEUED, RUNNING, Experiment, utcnow


def orphans(session: Session, *, stale_after_s: float, queued: bool = True) -> list[Experiment]:
    """Running rows whose worker went silent for stale_after_s and that were not sent again
    within stale_after_s (touch marks a sent row); with queued=True, queued rows."""
    stale = utcnow() - timedelta(seconds=stale_after_s)
    lost = (
        (Experiment.status == RUNNING)
        & (Experiment.heartbeat_at < stale)
        & (Experiment.updated_at < stale)
    )
    q = (
        select(Experiment)
        .where(or_(Experiment.status == QUEUED, lost) if queued else lost)
        .order_by(Experiment.created_at)
    )
    return list(session.scalars(q))


def queued_since(
    session: Session, *, older_than_s: float, queue: str | None = None
) -> list[Experiment]:
    """Queued rows (of `queue`, or of every queue) unchanged for older_than_s (no worker claimed
    them), oldest first."""
    before = utcnow() - timedelta(seconds=older_than_s)
    q = select(Experiment).where(Experiment.status == QUEUED, Experiment.updated_at < before)
    if queue is not None:
        q = q.where(Experiment.queue == queue)
    return list(session.scalars(q.order_by(Experiment.created_at)))


def queued_counts(session: Session, *, older_than_s: float) -> dict[str, int]:
    """How many rows each queue has queued and unchanged for older_than_s: one grouped count,
    no rows read into Python (the reconciler asks the broker about these queues first)."""
    before = utcnow() - timedelta(seconds=older_than_s)
    q = (
        select(Experiment.queue, func.count())
        .where(Experiment.status == QUEUED, Experiment.updated_at < before)
        .group_by(Experiment.queue)
    )
    return {queue: n for queue, n in session.execute(q)}


def touch(session: Session, *, ids: list[str]) -> None:
    """Mark queued or running rows as written now (their message was just sent again); the
    heartbeat, which decides whether a running row can be taken over, stays as it was."""
    session.execute(
        update(Experiment)
        .where(Experiment.id.in_(ids), Experiment.status.in_((QUEUED, RUNNING)))
        .values(updated_at=utcnow())
    )
    session.commit()


def claim(
    session: Session, *, experiment_id: str, worker: str, stale_after_s: float
) -> Experiment | None:
    """queued -> running for this worker (or take over a running row whose worker went silent).

    None when the row is not claimable: already running elsewhere, finished, cancelled, or out of
    attempts (then it is marked failed).
    """
    now = utcnow()
    stale = now - timedelta(seconds=stale_after_s)
    claimable = or_(
        Experiment.status == QUEUED,
        (Experiment.status == RUNNING) & (Experiment.heartbeat_at < stale),
    )
    done = session.execute(
        update(Experiment)
        .where(
            Experiment.id == experiment_id,
            claimable,
            Experiment.cancel_requested.is_(False),
            Experiment.attempts < Experiment.max_attempts,
        )
        .values(
            status=RUNNING,
            attempts=Experiment.attempts + 1,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            error=None,
            traceback=None,
        )
    ).rowcount
    if not done:
        # out of attempts: record why, so the row does not sit in queued/running forever
        session.execute(
            update(Experiment)
            .where(
                Experiment.id == experiment_id,
                claimable,
                Experiment.attempts >= Experiment.max_attempts,
            )
            .values(
                status=FAILED,
                finished_at=now,
                error="attempt cap reached: the worker was lost on every attempt",
            )
        )
    session.commit()
    return session.get(Experiment, experiment_id) if done else None


CLAIM_TRIES = 50  # candidates tried when other workers take the best ones first


def claim_next(
    session: Session, *, experiment_id: str, worker: str, stale_after_s: float
) -> Experiment | None:
    """For a message naming experiment_id: claim the best claimable row of its queue.

    Candidates are the queue's queued rows (not cancelled, attempts left) and the message's own
    row when it runs for a worker gone silent (a take-over); the best is the highest priority,
    then the oldest. A candidate another worker claims first is passed over for the next. None
    when nothing is claimable; the message's own row out of attempts is then marked failed, as
    `claim` does.

    The best queued row is read in the order of the index on (queue, status, priority DESC,
    created_at, id), one row, locked with SKIP LOCKED on PostgreSQL (SQLite ignores it: its
    writers take turns): workers that ask at once get different rows instead of all racing for
    the same one.
    """
    own = session.execute(
        select(Experiment.queue, Experiment.status).where(Experiment.id == experiment_id)
    ).first()
    if own is None:  # deleted since it was sent
        return None
    for _ in range(CLAIM_TRIES):
        lost = own.status == RUNNING  # perhaps its worker went silent: a take-over
        best = _best_candidate(session, experiment_id, own.queue, stale_after_s, lost)
        if best is None:
            session.rollback()
            break
        exp = claim(session, experiment_id=best, worker=worker, stale_after_s=stale_after_s)
        if exp is not None:
            return exp
    # nothing to run: only the message's own row out of attempts is left to record
    return claim(session, experiment_id=experiment_id, worker=worker, stale_after_s=stale_after_s)


def _best_candidate(
    session: Session, experiment_id: str, queue: str, stale_after_s: float, lost: bool
) -> str | None:
    """The id of the best claimable row (module docstring of claim_next), locked where the
    database can; the transaction stays open for the claim."""
    claimable = (
        Experiment.cancel_requested.is_(False),
        Experiment.attempts < Experiment.max_attempts,
    )
    stale = utcnow() - timedelta(seconds=stale_after_s)
    queued = session.execute(
        select(Experiment.id, Experiment.priority, Experiment.created_at)
        .where(Experiment.queue == queue, Experiment.status == QUEUED, *claimable)
        .order_by(Experiment.priority.desc(), Experiment.created_at, Experiment.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    lost_own = (
        lost
        and session.execute(
            select(Experiment.id, Experiment.priority, Experiment.created_at).where(
                Experiment.id == experiment_id,
                Experiment.status == RUNNING,
                Experiment.heartbeat_at < stale,
                *claimable,
            )
        ).first()
    )
    found = [row for row in (queued, lost_own) if row]
    if not found:
        return None
    return min(found, key=lambda r: (-r.priority, r.created_at, r.id)).id


def finite_json(value: Any) -> Any:
    """A JSON value with every non-finite float (NaN, inf) as null: PostgreSQL's json type refuses
    them, and JSON has no such numbers (a diverged run's loss is NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def heartbeat(
    session: Session, *, experiment_id: str, worker: str, progress: dict[str, Any] | None = None
) -> bool:
    """Record progress and liveness; returns whether a cancel was requested."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = finite_json(progress)
    session.execute(
        update(Experiment)
        .where(
            Experiment.id == experiment_id,
            Experiment.status == RUNNING,
            Experiment.worker == worker,
        )
        .values(**values)
    )
    session.commit()
    flag = session.scalar(select(Experiment.cancel_requested).where(Experiment.id == experiment_id))
    return bool(flag)


def set_mlflow_run(
    session: Session,
    *,
    experiment_id: str,
    run_id: str,
    attempt: int | None = None,
    from_step: int | None = 0,
) -> None:
    """The run of this attempt: the row's current run, appended to its attempt runs (or, for an
    attempt already listed, its from_step updated: the step its checkpoint resumed from)."""
    exp = session.get(Experiment, experiment_id, with_for_update=True)
    if exp is None:
        return
    runs = attempts.record_run(
        exp.attempt_runs, exp.mlflow_run_id, run_id=run_id, attempt=attempt, from_step=from_step
    )
    exp.mlflow_run_id, exp.attempt_runs = run_id, runs
    session.commit()


def finish(
    session: Session,
    *,
    experiment_id: str,
    worker: str,
    status: str,
    summary: dict[str, Any] | None = None,
    error: str | None = None,
    traceback: str | None = None,
) -> bool:
    """running -> succeeded | failed | cancelled, only by the worker that holds the row."""
    assert status in FINISHED
    done = _release(
        session,
        experiment_id,
        worker,
        status=status,
        summary=finite_json(summary),
        error=error,
        traceback=traceback,
        finished_at=utcnow(),
    )
    session.commit()
    return done


def _release(session: Session, experiment_id: str, holder: str, /, **values: Any) -> bool:
    """Update a running row held by `holder` (not committed); False when it is not held."""
    where = (
        Experiment.id == experiment_id,
        Experiment.status == RUNNING,
        Experiment.worker == holder,
    )
    done = session.execute(
        update(Experiment).where(*where).values(**values, heartbeat_at=utcnow())
    ).rowcount
    return bool(done)


def requeue(session: Session, *, experiment_id: str, worker: str) -> bool:
    """running -> queued, only by the worker that holds the row: its worker shut down, and the
    attempt stopped at a step with its checkpoint written. The attempt does not count against
    the cap (max_attempts grows by one with it) and its run is marked stopped; the next attempt
    resumes from the checkpoint. False when the row was not this worker's to give back."""
    done = _release(
        session,
        experiment_id,
        worker,
        status=QUEUED,
        worker=None,
        max_attempts=Experiment.max_attempts + 1,
        error=None,
        traceback=None,
    )
    if done:  # the row is ours (and, on PostgreSQL, locked) until the commit
        exp = session.get(Experiment, experiment_id, populate_existing=True)
        exp.attempt_runs = attempts.mark_stopped(exp.attempt_runs, exp.attempts)
    session.commit()
    return bool(done)
