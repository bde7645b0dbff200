"""What a user asks of an experiment: cancel, retry, delete. Each is one conditional UPDATE whose
row count says whether it happened; a refusal is a Conflict naming the state and the rule."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from server.models import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, Experiment, utcnow


class Conflict(Exception):
    """The experiment is not in a state that allows the request."""


def request_cancel(session: Session, *, experiment_id: str) -> Experiment:
    """Queued: cancelled now (it will never run). Running: flagged; it stops at its next step."""
    now = utcnow()
    done = session.execute(
        update(Experiment)
        .where(Experiment.id == experiment_id, Experiment.status == QUEUED)
        .values(status=CANCELLED, cancel_requested=True, finished_at=now)
    ).rowcount
    if not done:
        done = session.execute(
            update(Experiment)
            .where(Experiment.id == experiment_id, Experiment.status == RUNNING)
            .values(cancel_requested=True)
        ).rowcount
    return _committed(
        session, experiment_id, done, "only queued or running experiments can be cancelled"
    )


def retry(session: Session, *, experiment_id: str, extra_attempts: int) -> Experiment:
    """Queue a failed or cancelled experiment again; the next attempt resumes its checkpoint."""
    done = session.execute(
        update(Experiment)
        .where(Experiment.id == experiment_id, Experiment.status.in_((FAILED, CANCELLED)))
        .values(
            status=QUEUED,
            cancel_requested=False,
            error=None,
            traceback=None,
            finished_at=None,
            max_attempts=Experiment.attempts + extra_attempts,
        )
    ).rowcount
    return _committed(
        session, experiment_id, done, "only failed or cancelled experiments can be retried"
    )


def _committed(session: Session, experiment_id: str, done: int, rule: str) -> Experiment:
    """Commit a conditional transition; the fresh row, or Conflict naming its state and the rule."""
    session.commit()
    exp = session.get(Experiment, experiment_id)
    session.refresh(exp)
    if not done:
        raise Conflict(f"experiment {experiment_id} is {exp.status}; {rule}")
    return exp


def delete_experiment(session: Session, *, experiment_id: str) -> None:
    exp = session.get(Experiment, experiment_id)
    if exp is None:
        return
    if exp.status not in FINISHED:
        raise Conflict(f"experiment {experiment_id} is {exp.status}; cancel it before deleting")
    session.delete(exp)
    session.commit()
