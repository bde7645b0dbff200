"""Re-creating lost broker messages from the experiments table (the source of truth).

The broker carries only ids. A message is lost when the broker restarts without persistence, and a
running experiment's message sits unacknowledged when its worker dies (Redis redelivers it only
after the visibility timeout, which is days for long GPU jobs). The API re-sends, at start, the ids
of queued rows that their broker queue no longer holds (server.broker_ids reads a Redis queue; on
other brokers every queued id is sent again, and a log line says so) and of running rows whose
worker went silent; then every `reconcile_s` seconds the
latter (once when found; again, at most once per `stale_after_s`, only while their broker queue is
empty), and the queued rows no worker claimed for
`requeue_queued_after_s` when their queue in the broker is empty (a broker restarted without its
messages). A queue that holds messages is left
alone: a worker may have reserved a row's message without claiming it yet, so fewer messages than
rows proves no loss; once the queue drains, rows still queued are re-sent, each at most once per
`requeue_queued_after_s` (sending one marks it as written).
Duplicates are harmless: a worker that cannot claim a row skips it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from server import crud
from server.broker_ids import held_ids
from server.models import QUEUED, RUNNING, Experiment
from server.queue import send_run, waiting
from server.settings import Settings

logger = logging.getLogger("server.reconcile")


def _send(celery: Celery, rows: list[Experiment], why: str) -> int:
    for exp in rows:
        send_run(celery, experiment_id=exp.id, queue=exp.queue, priority=exp.priority)
    if rows:
        ids = ", ".join(e.id for e in rows[:10])
        logger.warning("sent %d experiment id(s) again (%s): %s", len(rows), why, ids)
    return len(rows)


def requeue(
    settings: Settings, sessions: sessionmaker[Session], celery: Celery, *, queued: bool
) -> int:
    """Send the ids of orphaned rows again (with queued=True every queued row); returns how many
    were sent."""
    with sessions() as s:
        rows = crud.orphans(s, stale_after_s=settings.stale_after_s, queued=queued)
    # A lost row is sent once when it is found; after that only when its broker queue is empty
    # (that message was lost too): while the queue holds messages, the one already sent waits
    # its turn, and sending more would only pile duplicates behind a long queue.
    empty: dict[str, bool] = {}

    def due(exp: Experiment) -> bool:
        if exp.status != RUNNING or not _sent_since_lost(exp, settings.stale_after_s):
            return True
        if exp.queue not in empty:
            empty[exp.queue] = waiting(celery, exp.queue) == 0
        return empty[exp.queue]

    rows = [e for e in rows if due(e)]
    if queued:
        rows = _not_held(celery, rows)
    with sessions() as s:  # marks them as written: not again before stale_after_s
        crud.touch(s, ids=[e.id for e in rows if e.status == RUNNING])
    return _send(celery, rows, "worker lost" if not queued else "start-up")


def _not_held(celery: Celery, rows: list[Experiment]) -> list[Experiment]:
    """The rows to send at start: running rows (lost), and the queued rows whose id no message in
    their broker queue carries (all of them when the broker cannot be read)."""
    by_queue: dict[str, list[Experiment]] = defaultdict(list)
    for exp in rows:
        if exp.status == QUEUED:
            by_queue[exp.queue].append(exp)
    keep = {e.id for e in rows if e.status != QUEUED}
    for queue, queued in by_queue.items():
        held = held_ids(celery, queue)
        if held is None:
            logger.info(
                "the broker cannot be read: every queued experiment of queue %r (%d) is sent "
                "again (start-up)",
                queue,
                len(queued),
            )
            keep.update(e.id for e in queued)
            continue
        missing = [e.id for e in queued if e.id not in held]
        logger.info(
            "broker queue %r holds %d of its %d queued experiment id(s); %d missing (start-up)",
            queue,
            len(queued) - len(missing),
            len(queued),
            len(missing),
        )
        keep.update(missing)
    return [e for e in rows if e.id in keep]


def _sent_since_lost(exp: Experiment, stale_after_s: float) -> bool:
    """Whether a lost running row was sent again already: touch writes updated_at at least
    stale_after_s after the last heartbeat, which a worker's own writes never do."""
    if exp.heartbeat_at is None or exp.updated_at is None:
        return False
    return (exp.updated_at - exp.heartbeat_at).total_seconds() >= stale_after_s


def requeue_unclaimed(settings: Settings, sessions: sessionmaker[Session], celery: Celery) -> int:
    """Re-send queued rows unclaimed for requeue_queued_after_s whose broker queue is empty;
    returns how many were sent. The rows are read only for the queues found empty: a pass over a
    long, busy queue costs one grouped count and one question to the broker."""
    with sessions() as s:
        counts = crud.queued_counts(s, older_than_s=settings.requeue_queued_after_s)
    sent = 0
    for queue in sorted(counts):
        if waiting(celery, queue) != 0:
            continue
        with sessions() as s:
            rows = crud.queued_since(s, older_than_s=settings.requeue_queued_after_s, queue=queue)
            crud.touch(s, ids=[e.id for e in rows])  # not again before requeue_queued_after_s
        sent += _send(celery, rows, f"unclaimed, broker queue {queue!r} empty")
    return sent


def lost_messages(
    settings: Settings, sessions: sessionmaker[Session], celery: Celery
) -> str | None:
    """What /health reports when the broker lost messages: rows queued for broker_lost_after_s
    while their broker queue is empty; None when there are none."""
    with sessions() as s:
        counts = crud.queued_counts(s, older_than_s=settings.broker_lost_after_s)
    empty = [q for q in sorted(counts) if waiting(celery, q) == 0]
    if not empty:
        return None
    n = sum(counts[q] for q in empty)
    return (
        f"{n} experiment(s) queued for over {settings.broker_lost_after_s:g} s while the broker "
        f"queue(s) {', '.join(empty)} are empty: messages were lost (the API re-sends them)"
    )


async def reconcile_forever(
    settings: Settings, sessions: sessionmaker[Session], celery: Celery
) -> None:
    """At start: queued and lost rows; then every reconcile_s seconds: lost and unclaimed rows."""
    queued = True
    while True:
        try:
            await asyncio.to_thread(requeue, settings, sessions, celery, queued=queued)
            if not queued:
                await asyncio.to_thread(requeue_unclaimed, settings, sessions, celery)
            queued = False
        except Exception:  # the database or broker may be down for a while: try again later
            logger.exception("re-sending orphaned experiments failed")
        await asyncio.sleep(settings.reconcile_s)
