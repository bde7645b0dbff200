"""The route tests' app: on SQLite and PostgreSQL (each test that takes `client` runs on both)
with Redis as the broker (database 15, a queue name unique to the test), and the rows and
messages it wrote, read back through crud and from Redis itself (`messages`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from server import crud
from server.db import session_factory
from server.filters import ExperimentFilters
from server.main import create_app
from server.settings import Settings
from tests.service.conftest import broker_settings, make_settings, sqlite_url

SPEC = {"name": "tiny", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}
JOINT = {"name": "tiny-joint", "dataset": {"name": "synthetic"}, "method": {"name": "joint"}}


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_queue: str, rds: redis.Redis) -> Settings:
    return broker_settings(
        tmp_path, db_url, redis_queue, queues=[redis_queue, "gpu"], max_sweep_size=12
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[TestClient]:
    roots = [tmp_path / "datasets", tmp_path / "more"]
    settings = make_settings(tmp_path, database_url=sqlite_url(tmp_path), data_roots=roots)
    with TestClient(create_app(settings)) as c:
        yield c


def row_count(settings: Settings) -> int:
    with session_factory(settings.resolved_database_url())() as session:
        return crud.list_experiment_rows(session, filters=ExperimentFilters(), limit=1)[1]


def post(client: TestClient, spec: dict, **params) -> dict:
    res = client.post("/experiments", json=spec, params=params)
    assert res.status_code == 201, res.text
    return res.json()


def finish(settings: Settings, eid: str, status: str, **outcome) -> None:
    """Take the experiment through the worker's transitions (claim, heartbeat, finish)."""
    with session_factory(settings.resolved_database_url())() as session:
        assert crud.claim(session, experiment_id=eid, worker="w1", stale_after_s=60)
        progress = {"stage": 1, "epoch": 2, "step": 30, "fraction": 1.0, "eta": 0.0}
        crud.heartbeat(session, experiment_id=eid, worker="w1", progress=progress)
        assert crud.finish(session, experiment_id=eid, worker="w1", status=status, **outcome)
