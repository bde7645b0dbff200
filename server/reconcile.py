"""Re-creating lost broker messages from the experiments table (the source of truth).

The broker carries only ids. A message is lost when the broker restarts without persistence, and a
running experiment's message sits unacknowledged when its worker dies (Redis redelivers it only
after the visibility timeout, which is days for long GPU jobs). The API re-sends, at start, the ids
of queued rows and of running rows whose worker went silent, then every `reconcile_s` seconds the
latter. Duplicates are harmless: a worker that cannot claim a row skips it.
"""

from __future__ import annotations

import asyncio
import logging

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from server import crud
from server.queue import send_run
from server.settings import Settings

logger = logging.getLogger("server.reconcile")


def requeue(
    settings: Settings, sessions: sessionmaker[Session], celery: Celery, *, queued: bool
) -> int:
    """Send the ids of orphaned rows again; returns how many were sent."""
    with sessions() as s:
        rows = crud.orphans(s, stale_after_s=settings.stale_after_s, queued=queued)
    for exp in rows:
        send_run(celery, experiment_id=exp.id, queue=exp.queue, priority=exp.priority)
    if rows:
        logger.warning(
            "sent %d experiment id(s) again: %s", len(rows), ", ".join(e.id for e in rows[:10])
        )
    return len(rows)


async def reconcile_forever(
    settings: Settings, sessions: sessionmaker[Session], celery: Celery
) -> None:
    """At start: queued and lost rows; then every reconcile_s seconds: lost rows."""
    queued = True
    while True:
        try:
            await asyncio.to_thread(requeue, settings, sessions, celery, queued=queued)
            queued = False
        except Exception:  # the database or broker may be down for a while: try again later
            logger.exception("re-sending orphaned experiments failed")
        await asyncio.sleep(settings.reconcile_s)
