"""Cost bounds through the API on SQLite (embedded broker): specs over a cap get a 422 naming
the estimate and the cap, before any row is written; sweeps are capped per request; every
message carries its queue's time limit."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from server.settings import Settings
from tests.service.conftest import (
    make_settings,
    queue_settings,
    sqlite_url,
    start_worker,
    stop_worker,
)
from tests.specs import BIG_DATA, BIG_MODEL, LONG

SPEC = {"name": "tiny", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        queue_time_limits_s={"gpu": 7200},
        task_time_limit_s=3600,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize(
    ("spec", "loc", "words"),
    [
        (BIG_DATA, "dataset.params", "about 393.2 GB in memory; this server's cap is 64.0 GB"),
        (BIG_MODEL, "model", "parameters"),
        (LONG, "schedule", "about 320,000,000 training steps (10,000,000 epochs)"),
    ],
)
def test_specs_over_a_cap_are_refused(client, spec, loc, words) -> None:
    res = client.post("/experiments", json=spec)
    assert res.status_code == 422, res.text
    (err,) = res.json()["detail"]
    assert err["loc"] == loc and words in err["msg"], err
    assert client.get("/experiments").json()["count"] == 0


def test_caps_are_settings(tmp_path) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url(tmp_path), max_steps=100)
    with TestClient(create_app(settings)) as c:
        res = c.post("/experiments", json={**SPEC, "schedule": {"stage_epochs": [2, 2]}})
        assert res.status_code == 422  # 4 epochs x 32 batches = 128 steps
        assert "cap is 100 (IGM_MAX_STEPS)" in res.json()["detail"][0]["msg"]
        res = c.post("/experiments", json={**SPEC, "schedule": {"stage_epochs": [1, 2]}})
        assert res.status_code == 201, res.text  # 96 steps


def test_sweeps_are_capped_and_each_point_is_costed(client) -> None:
    big = {"base": SPEC, "grid": {"seed": list(range(1000))}}
    res = client.post("/experiments/sweep", json=big)
    assert res.status_code == 422
    assert "1000 points; the limit is 200 (IGM_MAX_SWEEP_SIZE)" in res.json()["detail"][0]["msg"]
    res = client.post(
        "/experiments/sweep",
        json={"base": SPEC, "grid": {"schedule.stage_epochs": [[1, 1], [10_000] * 1000]}},
    )
    assert res.status_code == 422
    (err,) = res.json()["detail"]
    assert err["loc"] == "points.1.schedule" and "IGM_MAX_STEPS" in err["msg"]
    assert client.get("/experiments").json()["count"] == 0


def _queued_headers(settings: Settings) -> list[dict]:
    out = []
    for path in sorted((settings.broker_folder() / "queue").iterdir()):
        out.append(json.loads(path.read_text())["headers"])
    return out


def test_messages_carry_their_queue_time_limit(client, settings) -> None:
    assert client.post("/experiments", json=SPEC, params={"queue": "gpu"}).status_code == 201
    assert client.post("/experiments", json=SPEC, params={"queue": "cpu"}).status_code == 201
    headers = _queued_headers(settings)
    # (hard, soft): the worker stops the run itself at the limit; the hard one is a backstop
    assert sorted(tuple(h["timelimit"]) for h in headers) == [(3780, None), (7560, None)]
    assert sorted(h["kwargsrepr"] for h in headers) == [
        "{'time_limit_s': 3600}",
        "{'time_limit_s': 7200}",
    ]
    celery = client.app.state.celery
    assert celery.conf.task_time_limit == 3780 and celery.conf.task_soft_time_limit is None


@pytest.mark.slow
def test_a_run_past_its_queue_time_limit_fails(tmp_path: Path) -> None:
    """A real worker process: past the limit the message carries, the run stops at its next
    step and is recorded as failed with the reason, once (the child is not killed)."""
    queue = f"t{uuid.uuid4().hex[:10]}"
    settings, _ = queue_settings(tmp_path, queue, heartbeat_s=0.5, queue_time_limits_s={queue: 3})
    proc = start_worker(settings, queue, tmp_path / "worker.log")
    try:
        with TestClient(create_app(settings)) as client:
            long = {**SPEC, "schedule": {"stage_epochs": [500, 500]}}  # minutes on a CPU
            eid = client.post("/experiments", json=long).json()["id"]
            deadline = time.monotonic() + 120  # hang guard: the worker starts in seconds
            while time.monotonic() < deadline:
                exp = client.get(f"/experiments/{eid}").json()
                if exp["status"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.5)
            assert exp["status"] == "failed", (exp["status"], exp["error"])
            assert exp["error"].startswith(
                f"time limit reached: runs on queue '{queue}' may take 3 s"
            )
            assert exp["attempts"] == 1
    finally:
        stop_worker(proc, signal.SIGTERM, 30)
