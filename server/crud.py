"""Reads and state transitions of experiments; the only module that commits.

Every transition that a second process could race (claiming a queued row, finishing, cancelling)
is one conditional UPDATE whose row count says whether it happened.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session, defer

from igm_core.spec import Spec
from server import attempts
from server.models import (
    CANCELLED,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    Experiment,
    ExperimentTag,
    Sweep,
    utcnow,
)

SORTS = {
    "created_at": Experiment.created_at,
    "name": Experiment.name,
    "status": Experiment.status,
    "priority": Experiment.priority,
    "method": Experiment.method,
    "dataset": Experiment.dataset,
    "updated_at": Experiment.updated_at,
}


class Conflict(Exception):
    """The experiment is not in a state that allows the request."""


def new_id() -> str:
    return uuid.uuid4().hex


def _experiment(
    spec: Spec,
    *,
    priority: int,
    tags: list[str],
    queue: str,
    max_attempts: int,
    sweep_id: str | None,
    sweep_values: dict[str, Any] | None = None,
    submitted_by: str = "local",
) -> Experiment:
    now = utcnow()
    exp = Experiment(
        id=new_id(),
        name=spec.name,
        method=spec.method.name,
        dataset=spec.dataset.name,
        spec=spec.to_dict(),
        spec_hash=spec.hash(),
        status=QUEUED,
        priority=priority,
        queue=queue,
        sweep_id=sweep_id,
        sweep_values=sweep_values,
        submitted_by=submitted_by,
        attempts=0,
        max_attempts=max_attempts,
        cancel_requested=False,
        created_at=now,
        updated_at=now,
    )
    exp.tags = [ExperimentTag(tag=t) for t in dict.fromkeys(tags)]
    return exp


def create_experiment(
    session: Session,
    *,
    spec: Spec,
    priority: int = 0,
    tags: list[str] = (),
    queue: str,
    max_attempts: int,
    submitted_by: str = "local",
) -> Experiment:
    exp = _experiment(
        spec,
        priority=priority,
        tags=list(tags),
        queue=queue,
        max_attempts=max_attempts,
        sweep_id=None,
        submitted_by=submitted_by,
    )
    session.add(exp)
    session.commit()
    return exp


def create_sweep(
    session: Session,
    *,
    name: str,
    base_spec: dict[str, Any],
    grid: dict[str, Any],
    specs: list[Spec],
    priority: int = 0,
    tags: list[str] = (),
    queue: str,
    max_attempts: int,
    random: dict[str, Any] | None = None,
    values: list[dict[str, Any]] | None = None,
    submitted_by: str = "local",
) -> tuple[Sweep, list[Experiment]]:
    """One experiment per spec, grouped under a new sweep, committed together; `values` are the
    swept values of each point, kept with its experiment."""
    sweep = Sweep(
        id=new_id(),
        name=name,
        base_spec=base_spec,
        grid=grid,
        random=random,
        size=len(specs),
        created_at=utcnow(),
    )
    session.add(sweep)
    session.flush()
    exps = [
        _experiment(
            s,
            priority=priority,
            tags=list(tags),
            queue=queue,
            max_attempts=max_attempts,
            sweep_id=sweep.id,
            sweep_values=point,
            submitted_by=submitted_by,
        )
        for s, point in zip(specs, values or [None] * len(specs), strict=True)
    ]
    session.add_all(exps)
    session.commit()
    return sweep, exps


def get_experiment(session: Session, experiment_id: str) -> Experiment | None:
    return session.get(Experiment, experiment_id)


def twins(session: Session, *, spec_hash: str, exclude_id: str) -> list[str]:
    """Ids of other experiments with the same resolved spec (oldest first)."""
    q = (
        select(Experiment.id)
        .where(Experiment.spec_hash == spec_hash, Experiment.id != exclude_id)
        .order_by(Experiment.created_at)
        .limit(20)
    )
    return list(session.scalars(q))


def _filtered(
    q: Select,
    *,
    status: str | None,
    method: str | None,
    dataset: str | None,
    tag: str | None,
    text: str | None,
    sweep_id: str | None,
) -> Select:
    if status:
        q = q.where(Experiment.status == status)
    if method:
        q = q.where(Experiment.method == method)
    if dataset:
        q = q.where(Experiment.dataset == dataset)
    if sweep_id:
        q = q.where(Experiment.sweep_id == sweep_id)
    if text:
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        q = q.where(Experiment.name.ilike(f"%{escaped}%", escape="\\"))
    if tag:
        q = q.where(
            Experiment.id.in_(select(ExperimentTag.experiment_id).where(ExperimentTag.tag == tag))
        )
    return q


def list_experiments(
    session: Session,
    *,
    status: str | None = None,
    method: str | None = None,
    dataset: str | None = None,
    tag: str | None = None,
    text: str | None = None,
    sweep_id: str | None = None,
    sort: str = "-created_at",
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Experiment], int]:
    filters = {
        "status": status,
        "method": method,
        "dataset": dataset,
        "tag": tag,
        "text": text,
        "sweep_id": sweep_id,
    }
    count = session.scalar(_filtered(select(func.count(Experiment.id)), **filters)) or 0
    column = SORTS[sort.lstrip("-")]
    order = column.desc() if sort.startswith("-") else column.asc()
    # list items carry no spec or traceback: do not fetch and parse them
    rows = select(Experiment).options(defer(Experiment.spec), defer(Experiment.traceback))
    q = _filtered(rows, **filters).order_by(order, Experiment.id)
    return list(session.scalars(q.limit(limit).offset(offset))), count


# The hot reads of the API (a page of the list, one experiment) fetch plain columns, tags in the
# same query, and server.fastjson writes the JSON: no ORM objects, no pydantic per row.
_TAGS = (
    select(func.aggregate_strings(ExperimentTag.tag, ","))  # tags never hold a comma
    .where(ExperimentTag.experiment_id == Experiment.id)
    .correlate(Experiment)
    .scalar_subquery()
    .label("tags")
)
SUMMARY_COLUMNS = (
    Experiment.id,
    Experiment.name,
    Experiment.status,
    Experiment.method,
    Experiment.dataset,
    _TAGS,
    Experiment.priority,
    Experiment.queue,
    Experiment.sweep_id,
    Experiment.sweep_values,
    Experiment.attempts,
    Experiment.submitted_by,
    Experiment.progress,
    Experiment.summary,
    Experiment.created_at,
    Experiment.started_at,
    Experiment.finished_at,
    Experiment.updated_at,
)
DETAIL_COLUMNS = (
    Experiment.spec,
    Experiment.spec_hash,
    Experiment.max_attempts,
    Experiment.worker,
    Experiment.cancel_requested,
    Experiment.error,
    Experiment.traceback,
    Experiment.mlflow_run_id,
    Experiment.heartbeat_at,
)


def list_experiment_rows(
    session: Session,
    *,
    sort: str = "-created_at",
    limit: int = 50,
    offset: int = 0,
    **filters: str | None,
) -> tuple[list[Any], int]:
    """list_experiments as rows of SUMMARY_COLUMNS (same filters, order and page)."""
    filters = {
        k: filters.get(k) for k in ("status", "method", "dataset", "tag", "text", "sweep_id")
    }
    count = session.scalar(_filtered(select(func.count(Experiment.id)), **filters)) or 0
    column = SORTS[sort.lstrip("-")]
    order = column.desc() if sort.startswith("-") else column.asc()
    q = _filtered(select(*SUMMARY_COLUMNS), **filters).order_by(order, Experiment.id)
    return list(session.execute(q.limit(limit).offset(offset))), count


def experiment_row(session: Session, experiment_id: str) -> Any | None:
    """One experiment as a row of SUMMARY_COLUMNS + DETAIL_COLUMNS, or None."""
    q = select(*SUMMARY_COLUMNS, *DETAIL_COLUMNS).where(Experiment.id == experiment_id)
    return session.execute(q).first()


def changed_experiments(
    session: Session, *, since: datetime | None, limit: int, **filters: str | None
) -> tuple[list[Experiment], int, datetime | None]:
    """For a changes feed: the rows matching `filters` (those of list_experiments) written at or
    after `since` (oldest change first, at most `limit`), how many rows match now, and the
    newest updated_at of any row (the next cursor)."""
    filters = {
        k: filters.get(k) for k in ("status", "method", "dataset", "tag", "text", "sweep_id")
    }
    count = session.scalar(_filtered(select(func.count(Experiment.id)), **filters)) or 0
    newest = session.scalar(select(func.max(Experiment.updated_at)))
    if since is None:
        return [], count, newest
    rows = select(Experiment).options(defer(Experiment.spec), defer(Experiment.traceback))
    q = _filtered(rows.where(Experiment.updated_at >= since), **filters)
    q = q.order_by(Experiment.updated_at, Experiment.id).limit(limit)
    return list(session.scalars(q)), count, newest


# ----------------------------------------------------------------------------- user actions


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


# ----------------------------------------------------------------------------- worker side


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


def queued_since(session: Session, *, older_than_s: float) -> list[Experiment]:
    """Queued rows unchanged for older_than_s (no worker claimed them), oldest first."""
    before = utcnow() - timedelta(seconds=older_than_s)
    q = (
        select(Experiment)
        .where(Experiment.status == QUEUED, Experiment.updated_at < before)
        .order_by(Experiment.created_at)
    )
    return list(session.scalars(q))


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
    done = session.execute(
        update(Experiment)
        .where(
            Experiment.id == experiment_id,
            Experiment.status == RUNNING,
            Experiment.worker == worker,
        )
        .values(
            status=status,
            summary=finite_json(summary),
            error=error,
            traceback=traceback,
            finished_at=utcnow(),
            heartbeat_at=utcnow(),
        )
    ).rowcount
    session.commit()
    return bool(done)
