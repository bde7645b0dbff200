"""At start the API re-sends only the queued ids its broker queue no longer holds (Redis); on a
broker it cannot read (the embedded filesystem one) it re-sends every queued id, and says so."""

from __future__ import annotations

import base64
import json
import logging
import time

import redis
from fastapi.testclient import TestClient

from igm_core.spec import resolve_spec
from server import crud
from server.broker_ids import experiment_id, held_ids
from server.db import session_factory
from server.main import create_app
from server.queue import make_celery, send_run, waiting
from tests.service.conftest import REDIS_URL, make_settings
from tests.service.test_reconcile import drain, ids_on

SPEC = {"name": "r", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}


def _queued(settings, queue: str, n: int, priority: int = 0) -> list[str]:
    sessions = session_factory(settings.resolved_database_url())
    with sessions() as s:
        spec = resolve_spec(SPEC)
        return [
            crud.create_experiment(s, spec=spec, queue=queue, max_attempts=3, priority=priority).id
            for _ in range(n)
        ]


def test_start_up_sends_only_the_ids_redis_no_longer_holds(
    tmp_path, db_url: str, redis_queue: str, caplog
) -> None:
    settings = make_settings(
        tmp_path,
        database_url=db_url,
        broker_url=REDIS_URL,
        default_queue=redis_queue,
        queues=[redis_queue],
        reconcile_s=30,
    )
    held = _queued(settings, redis_queue, 2) + _queued(settings, redis_queue, 1, priority=7)
    lost = _queued(settings, redis_queue, 2)
    celery = make_celery(settings)
    conn = redis.Redis.from_url(REDIS_URL)
    try:
        for eid, priority in zip(held, (0, 0, 7), strict=True):  # two priority lists
            send_run(celery, experiment_id=eid, queue=redis_queue, priority=priority)
        send_run(celery, experiment_id="not-a-row", queue=redis_queue, priority=3)
        assert held_ids(celery, redis_queue) == {*held, "not-a-row"}
        caplog.set_level(logging.INFO, logger="server.reconcile")
        with TestClient(create_app(settings)):
            deadline = time.time() + 20
            while time.time() < deadline and len(ids_on(conn, redis_queue)) < 6:
                time.sleep(0.1)
            time.sleep(0.5)
            sent = ids_on(conn, redis_queue)
        assert sorted(sent) == sorted([*held, "not-a-row", *lost])  # each id once
        assert f"broker queue '{redis_queue}' holds 3 of its 5 queued" in caplog.text
        assert "sent 2 experiment id(s) again (start-up)" in caplog.text
    finally:
        drain(conn, redis_queue)
        conn.close()


def test_other_brokers_send_every_queued_id_again(tmp_path, db_url: str, caplog) -> None:
    settings = make_settings(tmp_path, database_url=db_url, reconcile_s=30)  # filesystem broker
    queue = settings.default_queue
    ids = _queued(settings, queue, 2)
    celery = make_celery(settings)
    send_run(celery, experiment_id=ids[0], queue=queue, priority=0)
    assert held_ids(celery, queue) is None
    caplog.set_level(logging.INFO, logger="server.reconcile")
    with TestClient(create_app(settings)):
        deadline = time.time() + 20
        while time.time() < deadline and waiting(celery, queue) < 3:
            time.sleep(0.1)
        time.sleep(0.5)
        assert waiting(celery, queue) == 3  # the held one is sent again too: today's behaviour
    assert "the broker cannot be read: every queued experiment" in caplog.text
    assert "sent 2 experiment id(s) again (start-up)" in caplog.text


def test_a_message_that_is_not_a_run_carries_no_id() -> None:
    body = base64.b64encode(json.dumps([["abc"], {}, {}]).encode()).decode()
    run = {"headers": {"task": "igm.run_experiment"}, "body": body}
    run["properties"] = {"body_encoding": "base64"}
    assert experiment_id(json.dumps(run)) == "abc"
    other = {**run, "headers": {"task": "celery.ping"}}
    assert experiment_id(json.dumps(other)) is None
    assert experiment_id(b"not json") is None
    assert experiment_id(json.dumps({**run, "body": "!!"})) is None
