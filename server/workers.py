"""The workers table: reads and writes (each write commits, as server.crud's do).

A worker reports itself when it starts (`register`: its queues, memory and GPU memory), then
`beat`s every fifth of settings.worker_seen_within_s and marks itself stopped on a clean
shutdown (`stop`). The rule the API sizes cost caps by (`live`): a worker counts for its queues
while it is not stopped and was seen within worker_seen_within_s, so one that stopped counts no
more at once, and one that died (killed, its machine gone) no more after that period. Rows not
seen for PRUNE_AFTER are deleted when any worker registers (names can be one-off: embedded
workers carry their launcher's process id).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from server.models import Worker, utcnow

PRUNE_AFTER = timedelta(days=7)


def register(
    session: Session,
    *,
    name: str,
    host: str,
    queues: Sequence[str],
    memory_bytes: int,
    gpu_memory_bytes: int | None,
    gpu_name: str | None,
    now: datetime | None = None,
) -> Worker:
    """Insert or refresh the worker's row (a restarted worker keeps its name): seen now."""
    now = now or utcnow()
    session.execute(delete(Worker).where(Worker.seen_at < now - PRUNE_AFTER))
    row = session.get(Worker, name) or Worker(name=name)
    row.host, row.queues = host[:255], list(queues)
    row.memory_bytes, row.gpu_memory_bytes = memory_bytes, gpu_memory_bytes
    row.gpu_name = gpu_name[:255] if gpu_name else None
    row.started_at, row.seen_at, row.stopped_at = now, now, None
    session.add(row)
    session.commit()
    return row


def beat(session: Session, *, name: str, now: datetime | None = None) -> bool:
    """The worker is alive now; False when its row is gone or stopped (register again)."""
    result = session.execute(
        update(Worker)
        .where(Worker.name == name, Worker.stopped_at.is_(None))
        .values(seen_at=now or utcnow())
    )
    session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined]


def stop(session: Session, *, name: str) -> None:
    """The worker shut down: it no longer counts for its queues."""
    session.execute(update(Worker).where(Worker.name == name).values(stopped_at=utcnow()))
    session.commit()


def live(session: Session, *, queue: str, within_s: float) -> list[Worker]:
    """The workers of `queue` that count now: not stopped, seen within `within_s` seconds;
    largest memory first."""
    since = utcnow() - timedelta(seconds=within_s)
    rows = session.scalars(
        select(Worker)
        .where(Worker.stopped_at.is_(None), Worker.seen_at >= since)
        .order_by(Worker.memory_bytes.desc(), Worker.name)
    ).all()
    return [row for row in rows if queue in (row.queues or [])]
