"""Alembic creates and upgrades the schema; the server refuses an outdated one."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

from server import migrations
from server.db import get_engine
from server.main import create_app
from tests.service.conftest import PG_ADMIN, REDIS_URL, make_settings


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    name = f"igm_mig_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    yield url
    get_engine(url).dispose()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upgrade_keeps_rows_and_the_server_checks_the_schema(empty_db: str, tmp_path) -> None:
    command.upgrade(migrations.alembic_config(empty_db), "0001")
    with get_engine(empty_db).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sweeps (id, name, base_spec, grid, size, created_at) "
                "VALUES ('s1', 'old', '{}', '{}', 0, CURRENT_TIMESTAMP)"
            )
        )
    settings = make_settings(tmp_path, database_url=empty_db, broker_url=REDIS_URL)
    with (
        pytest.raises(migrations.SchemaError, match=r"is at schema 0001.*igm db upgrade"),
        TestClient(create_app(settings)),
    ):
        pass
    migrations.upgrade(empty_db)
    assert migrations.current_revision(empty_db) == migrations.head_revision()
    with get_engine(empty_db).connect() as conn:
        assert conn.execute(text("SELECT name, random FROM sweeps")).one() == ("old", None)
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["database"]["ok"]


def test_db_command(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("IGM_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    from launcher.db import main as db_main
    from server.settings import get_settings

    get_settings.cache_clear()
    try:
        assert db_main(["check"]) == 1
        assert "igm db upgrade" in capsys.readouterr().err
        assert db_main(["upgrade"]) == 0
        assert db_main(["check"]) == 0
        assert "schema is current" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()


def test_the_workers_table_upgrades_and_downgrades(empty_db: str) -> None:
    migrations.upgrade(empty_db)
    with get_engine(empty_db).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO workers (name, host, queues, memory_bytes, started_at, seen_at) "
                "VALUES ('w@h', 'h', '[\"cpu\"]', 80000000000, CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            )
        )
        assert conn.execute(text("SELECT memory_bytes FROM workers")).scalar() == 8 * 10**10
    command.downgrade(migrations.alembic_config(empty_db), "0005")
    with get_engine(empty_db).connect() as conn:
        tables = sa_inspect(conn).get_table_names()
    assert "workers" not in tables and "experiments" in tables
    migrations.upgrade(empty_db)
    assert migrations.current_revision(empty_db) == migrations.head_revision()
