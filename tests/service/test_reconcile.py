"""The API re-sends lost broker messages: queued rows at start, rows of lost workers always."""

from __future__ import annotations

import time
from datetime import timedelta

import redis
from fastapi.testclient import TestClient

from igm_core.spec import resolve_spec
from server import crud
from server.db import session_factory
from server.main import create_app
from server.models import Experiment, utcnow
from server.queue import send_run
from tests.service.conftest import broker_settings, messages

SPEC = {"name": "r", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}


def ids_on(rds: redis.Redis, queue: str) -> list[str]:
    return [eid for _key, eid in messages(rds, queue)]


def drain(rds: redis.Redis, queue: str) -> None:
    if keys := list(rds.scan_iter(match=f"{queue}*")):
        rds.delete(*keys)
    assert ids_on(rds, queue) == []


def test_queued_and_lost_rows_are_sent_again(
    tmp_path, db_url: str, redis_queue: str, rds: redis.Redis
) -> None:
    settings = broker_settings(tmp_path, db_url, redis_queue, reconcile_s=0.3, stale_after_s=30)
    sessions = session_factory(settings.resolved_database_url())
    spec = resolve_spec(SPEC)
    with sessions() as s:  # rows written while the broker lost its messages
        queued = crud.create_experiment(s, spec=spec, queue=redis_queue, max_attempts=3).id
        lost = crud.create_experiment(s, spec=spec, queue=redis_queue, max_attempts=3).id
        alive = crud.create_experiment(s, spec=spec, queue=redis_queue, max_attempts=3).id
        for eid in (lost, alive):
            crud.claim(s, experiment_id=eid, worker="w", stale_after_s=30)
        silent = utcnow() - timedelta(seconds=60)  # its last heartbeat was its last write
        s.query(Experiment).filter_by(id=lost).update(
            {"heartbeat_at": silent, "updated_at": silent}
        )
        s.commit()
    with TestClient(create_app(settings)):
        deadline = time.time() + 10
        while time.time() < deadline and len(ids_on(rds, redis_queue)) < 3:
            time.sleep(0.1)
        time.sleep(1.0)  # later rounds (0.3 s) send nothing: each is sent once per 30 s
        sent = ids_on(rds, redis_queue)
    assert queued in sent and alive not in sent
    assert sent.count(queued) == 1 and sent.count(lost) == 1


def test_a_lost_row_sent_once_waits_for_its_queue_to_drain(
    tmp_path, db_url: str, redis_queue: str, rds: redis.Redis
) -> None:
    """Sent again once when found; after that, while its queue holds messages (the one already
    sent waits behind them), it is not sent again; once the queue is empty, it is."""
    from server.queue import make_celery
    from server.reconcile import requeue

    settings = broker_settings(tmp_path, db_url, redis_queue, stale_after_s=30)
    sessions = session_factory(settings.resolved_database_url())
    with sessions() as s:
        lost = crud.create_experiment(s, spec=resolve_spec(SPEC), queue=redis_queue, max_attempts=3)
        crud.claim(s, experiment_id=lost.id, worker="w", stale_after_s=30)
        # silent for 200 s, sent again 60 s ago (that message still waits in a long queue)
        now = utcnow()
        s.query(Experiment).filter_by(id=lost.id).update(
            {
                "heartbeat_at": now - timedelta(seconds=200),
                "updated_at": now - timedelta(seconds=60),
            }
        )
        s.commit()
    celery = make_celery(settings)
    send_run(celery, experiment_id="someone-else", queue=redis_queue, priority=0)
    assert requeue(settings, sessions, celery, queued=False) == 0
    assert ids_on(rds, redis_queue) == ["someone-else"]
    drain(rds, redis_queue)  # the queue drained, and that message was lost
    assert requeue(settings, sessions, celery, queued=False) == 1
    assert ids_on(rds, redis_queue) == [lost.id]
    # just sent: not again within stale_after_s, even with the queue empty
    drain(rds, redis_queue)
    assert requeue(settings, sessions, celery, queued=False) == 0


def _queued_rows(settings, queue: str, n: int, age_s: float) -> list[str]:
    """n queued rows whose messages the broker never got, last written age_s seconds ago."""
    sessions = session_factory(settings.resolved_database_url())
    spec = resolve_spec(SPEC)
    with sessions() as s:
        ids = [
            crud.create_experiment(s, spec=spec, queue=queue, max_attempts=3).id for _ in range(n)
        ]
        s.query(Experiment).filter(Experiment.id.in_(ids)).update(
            {"updated_at": utcnow() - timedelta(seconds=age_s)}, synchronize_session=False
        )
        s.commit()
    return ids


def test_unclaimed_queued_rows_are_sent_again_once_their_queue_is_empty(
    tmp_path, db_url: str, redis_queue: str, rds: redis.Redis
) -> None:
    settings = broker_settings(
        tmp_path, db_url, redis_queue, reconcile_s=0.2, requeue_queued_after_s=30
    )

    def settled(n: int) -> list[str]:
        """The ids on the queue once it holds n, after a second more of passes at 0.2 s."""
        deadline = time.time() + 10
        while time.time() < deadline and len(ids_on(rds, redis_queue)) < n:
            time.sleep(0.05)
        time.sleep(1.0)  # several more passes: none sends them again
        return ids_on(rds, redis_queue)

    with TestClient(create_app(settings)) as client:  # started with an empty table
        lost = _queued_rows(settings, redis_queue, 2, age_s=60)
        fresh = _queued_rows(settings, redis_queue, 1, age_s=0)
        assert sorted(settled(2)) == sorted(lost)  # the old rows, once; not the fresh one
        drain(rds, redis_queue)  # a broker restarted empty
        # sent again only after requeue_queued_after_s (sending them marked them written)
        assert settled(0) == []
        with session_factory(settings.resolved_database_url())() as s:
            s.query(Experiment).filter(Experiment.id.in_(lost + fresh)).update(
                {"updated_at": utcnow() - timedelta(seconds=60)}, synchronize_session=False
            )
            s.commit()
        assert sorted(settled(3)) == sorted(lost + fresh)
        # a queue that holds messages proves nothing lost: an old row is not sent again
        old = _queued_rows(settings, redis_queue, 1, age_s=60)
        assert old[0] not in settled(3)
        assert client.get("/health").json()["broker"]["ok"]


def test_health_reports_a_broker_that_lost_messages(
    tmp_path, db_url: str, redis_queue: str, rds: redis.Redis
):
    settings = broker_settings(
        tmp_path, db_url, redis_queue, reconcile_s=3600, broker_lost_after_s=5
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["broker"]["ok"]
        lost = _queued_rows(settings, redis_queue, 2, age_s=60)
        _queued_rows(settings, redis_queue, 1, age_s=0)
        broker = client.get("/health").json()["broker"]
        assert not broker["ok"]
        assert broker["detail"].startswith("2 experiment(s) queued for over 5 s")
        assert redis_queue in broker["detail"]
        for eid in lost:
            send_run(client.app.state.celery, experiment_id=eid, queue=redis_queue, priority=0)
        assert client.get("/health").json()["broker"]["ok"]
