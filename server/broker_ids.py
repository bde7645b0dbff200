"""Which experiment ids a broker queue still holds, read without taking any message.

Only Redis can be read this way: kombu keeps a Celery queue there as one Redis list per priority
step (`queue`, `queue\\x06\\x161`, ...), each item a JSON message whose body (base64) is Celery's
`[args, kwargs, embed]`, args[0] the experiment id. Messages a worker has taken (kombu's `unacked`
hash) are not counted: a message reserved by a worker that died waits there for the visibility
timeout (days), so its row is better sent again. Other brokers (the embedded filesystem and
SQLAlchemy transports) answer None: the caller cannot tell, and keeps re-sending every id.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from celery import Celery

from server.queue import TASK_NAME

CHUNK = 1000  # messages per LRANGE


def held_ids(app: Celery, queue: str) -> set[str] | None:
    """Ids of the experiments whose message waits in `queue` (Redis), or None when the broker
    cannot be read (not Redis); raises when the broker cannot be reached."""
    if not app.conf.broker_url or not str(app.conf.broker_url).startswith(("redis", "rediss")):
        return None
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=2.0)
        channel: Any = conn.default_channel
        keys = sorted({channel._q_for_pri(queue, pri) for pri in channel.priority_steps})
        with channel.conn_or_acquire() as client:
            return {eid for key in keys for eid in _ids_in(client, key)}


def _ids_in(client: Any, key: str) -> list[str]:
    """The experiment ids of the run messages in one Redis list, read a chunk at a time."""
    out: list[str] = []
    start = 0
    while True:
        chunk = client.lrange(key, start, start + CHUNK - 1)
        out.extend(eid for raw in chunk if (eid := experiment_id(raw)) is not None)
        if len(chunk) < CHUNK:
            return out
        start += CHUNK


def experiment_id(raw: bytes | str) -> str | None:
    """The experiment id a kombu message (as Redis stores it) carries, or None when it is not
    a run message this service sent."""
    try:
        message = json.loads(raw)
        if message.get("headers", {}).get("task") != TASK_NAME:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
