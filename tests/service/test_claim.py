"""Which row a message runs (server.crud.claim_next), on SQLite and PostgreSQL: the best claimable
row of the message's queue (highest priority, then oldest), whatever id the message names; a
cancelled or finished row's message runs the next one; a lost running row is taken over by its own
message, as a candidate like any other; a row out of attempts is failed; other queues are never
touched. tests/service/test_priority.py shows the same with real workers and brokers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from igm_core.spec import resolve_spec
from server import crud
from server.db import session_factory
from server.models import Experiment, utcnow
from tests.service.conftest import make_settings

SPEC = resolve_spec({"name": "c", "dataset": {"name": "synthetic"}, "method": {"name": "joint"}})


@pytest.fixture
def sessions(tmp_path: Path, db_url: str):
    return session_factory(make_settings(tmp_path, database_url=db_url).resolved_database_url())


def add(sessions, priority: int, queue: str = "cpu", max_attempts: int = 3) -> str:
    with sessions() as s:
        return crud.create_experiment(
            s, spec=SPEC, priority=priority, queue=queue, max_attempts=max_attempts
        ).id


def claim(sessions, message: str, worker: str = "w") -> str | None:
    with sessions() as s:
        exp = crud.claim_next(s, experiment_id=message, worker=worker, stale_after_s=60)
        return exp.id if exp else None


def test_the_best_row_of_the_queue_whatever_the_message_names(sessions) -> None:
    low, first5, nine, second5 = (add(sessions, p) for p in (0, 5, 9, 5))
    other_queue = add(sessions, 9, queue="gpu")
    assert claim(sessions, low) == nine  # higher priority first
    assert claim(sessions, nine) == first5  # then the oldest of a priority
    assert claim(sessions, first5) == second5
    assert claim(sessions, second5) == low
    assert claim(sessions, other_queue) == other_queue  # its own queue only
    assert claim(sessions, low) is None  # a message left over: nothing to run
    with sessions() as s:
        assert {crud.get_experiment(s, e).attempts for e in (low, first5, nine, second5)} == {1}


def test_cancelled_and_deleted_rows_messages_run_the_next_row(sessions) -> None:
    a, b = add(sessions, 5), add(sessions, 5)
    with sessions() as s:
        crud.request_cancel(s, experiment_id=a)
    assert claim(sessions, a) == b  # a's message is not wasted on its cancelled row
    assert claim(sessions, b) is None
    with sessions() as s:
        assert crud.get_experiment(s, a).attempts == 0
    c = add(sessions, 5)
    with sessions() as s:
        s.execute(update(Experiment).where(Experiment.id == c).values(status="failed"))
        s.commit()
        crud.delete_experiment(s, experiment_id=c)
    assert claim(sessions, c) is None  # deleted: its queue is unknown, nothing runs


def test_a_lost_row_is_taken_over_by_its_own_message_in_its_turn(sessions) -> None:
    lost, waiting = add(sessions, 5), add(sessions, 9)
    with sessions() as s:
        assert crud.claim(s, experiment_id=lost, worker="gone", stale_after_s=60)
        past = utcnow() - timedelta(seconds=600)
        s.execute(update(Experiment).where(Experiment.id == lost).values(heartbeat_at=past))
        s.commit()
    # the lost row is a candidate only for its own message, and priority still comes first
    assert claim(sessions, waiting) == waiting
    assert claim(sessions, lost, worker="w2") == lost
    with sessions() as s:
        row = crud.get_experiment(s, lost)
        assert row.worker == "w2" and row.attempts == 2


def test_a_row_out_of_attempts_is_failed_by_its_own_message(sessions) -> None:
    eid = add(sessions, 5, max_attempts=1)
    with sessions() as s:
        assert crud.claim(s, experiment_id=eid, worker="gone", stale_after_s=60)
        past = utcnow() - timedelta(seconds=600)
        s.execute(update(Experiment).where(Experiment.id == eid).values(heartbeat_at=past))
        s.commit()
    assert claim(sessions, eid) is None
    with sessions() as s:
        row = crud.get_experiment(s, eid)
        assert row.status == "failed" and "attempt cap" in row.error
