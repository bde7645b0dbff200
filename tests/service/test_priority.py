"""Priority with real Celery worker processes: higher priority runs first, first in, first out
within a priority, on the embedded stack (SQLite + the filesystem broker, which knows no
priorities) and on the lab's (PostgreSQL + Redis).

Every experiment is submitted through the API (one message each) before the one worker starts,
and one experiment is cancelled while it waits: its message is still in the broker. The worker
runs one experiment at a time, so the order of the rows' start times is the order it claimed
them in (server.crud.claim_next).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from tests.service.conftest import REDIS_URL, make_settings, sqlite_url, start_worker, stop_worker

pytestmark = pytest.mark.slow  # real worker processes in turn: the slow lane (-m slow)

SPEC = {
    "dataset": {"name": "synthetic", "params": {"n_train": 64, "n_val": 32, "n_test": 32}},
    "method": {"name": "joint"},
    "schedule": {"epochs": 1},
    "batch_size": 32,
}
# in the order submitted; the one at CANCELLED is cancelled while it waits
PRIORITIES = [5, 5, 9, 0, 9, 5]
CANCELLED = 5
RUN_TIMEOUT_S = 240  # a hang guard: each run takes a few seconds


@pytest.fixture(params=["embedded", "lab"])
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple]:
    queue = f"t{uuid.uuid4().hex[:10]}"
    common = {"default_queue": queue, "queues": [queue], "heartbeat_s": 0.5}
    if request.param == "lab":
        db = {"database_url": request.getfixturevalue("clean_pg"), "broker_url": REDIS_URL}
    else:
        db = {"database_url": sqlite_url(tmp_path)}
    settings = make_settings(tmp_path, **db, **common)
    with TestClient(create_app(settings)) as client:
        yield client, settings, queue, tmp_path


def test_higher_priority_first_then_first_in_first_out(lab) -> None:
    client, settings, queue, tmp_path = lab
    ids = []
    for i, priority in enumerate(PRIORITIES):
        res = client.post(
            "/experiments", json={**SPEC, "name": f"p{priority}-{i}"}, params={"priority": priority}
        )
        assert res.status_code == 201, res.text
        assert res.json()["warning"] is None  # its message is in the broker
        ids.append(res.json()["id"])
    assert client.post(f"/experiments/{ids[CANCELLED]}/cancel").json()["status"] == "cancelled"

    proc = start_worker(settings, queue, tmp_path / "worker.log", "priority")
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            rows = [client.get(f"/experiments/{eid}").json() for eid in ids]
            if all(r["status"] in ("succeeded", "failed", "cancelled") for r in rows):
                break
            assert time.monotonic() < deadline, [(r["name"], r["status"]) for r in rows]
            time.sleep(0.5)
    finally:
        stop_worker(proc)

    ran = [r for i, r in enumerate(rows) if i != CANCELLED]
    log = (tmp_path / "worker.log").read_text()[-3000:]
    assert [r["status"] for r in ran] == ["succeeded"] * len(ran), log
    assert all(r["attempts"] == 1 for r in ran)  # each claimed once
    cancelled = rows[CANCELLED]
    assert cancelled["status"] == "cancelled" and cancelled["attempts"] == 0  # never ran
    started = [r["name"] for r in sorted(ran, key=lambda r: r["started_at"])]
    waiting = [(p, i) for i, p in enumerate(PRIORITIES) if i != CANCELLED]
    expected = [f"p{p}-{i}" for p, i in sorted(waiting, key=lambda pi: (-pi[0], pi[1]))]
    assert started == expected
    assert started == ["p9-2", "p9-4", "p5-0", "p5-1", "p0-3"]
