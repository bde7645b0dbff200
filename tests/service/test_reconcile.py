"""The API re-sends lost broker messages: queued rows at start, rows of lost workers always."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import redis
from fastapi.testclient import TestClient

from igm_core.spec import resolve_spec
from server import crud
from server.db import session_factory
from server.main import create_app
from server.models import Experiment, utcnow
from tests.service.conftest import REDIS_URL, make_settings

SPEC = {"name": "r", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}


def ids_on(conn: redis.Redis, queue: str) -> list[str]:
    out = []
    for key in conn.scan_iter(match=f"{queue}*"):
        for raw in conn.lrange(key, 0, -1):
            out.append(json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0])
    return out


def test_queued_and_lost_rows_are_sent_again(tmp_path, db_url: str, redis_queue: str) -> None:
    settings = make_settings(
        tmp_path,
        database_url=db_url,
        broker_url=REDIS_URL,
        default_queue=redis_queue,
        queues=[redis_queue],
        reconcile_s=0.3,
        stale_after_s=30,
    )
    sessions = session_factory(settings.resolved_database_url())
    spec = resolve_spec(SPEC)
    with sessions() as s:  # rows written while the broker lost its messages
        queued = crud.create_experiment(s, spec=spec, queue=redis_queue, max_attempts=3).id
        lost = crud.create_experiment(s, spec=spec, queue=redis_queue, max_attempts=3).id
        alive = crud.create_experiment(s, spec=spec, queue=redis_queue, max_attempts=3).id
        for eid in (lost, alive):
            crud.claim(s, experiment_id=eid, worker="w", stale_after_s=30)
        s.query(Experiment).filter_by(id=lost).update(
            {"heartbeat_at": utcnow() - timedelta(seconds=60)}
        )
        s.commit()
    conn = redis.Redis.from_url(REDIS_URL)
    try:
        with TestClient(create_app(settings)):
            deadline = time.time() + 10
            while time.time() < deadline and len(ids_on(conn, redis_queue)) < 3:
                time.sleep(0.1)
            time.sleep(0.5)  # later rounds send only the lost row again
            sent = ids_on(conn, redis_queue)
        assert queued in sent and alive not in sent
        assert sent.count(queued) == 1 and sent.count(lost) >= 2
    finally:
        conn.delete(*conn.scan_iter(match=f"{redis_queue}*"))
        conn.close()
