"""Shared fixtures for the service tests: real SQLite and PostgreSQL databases, real Redis.

PostgreSQL (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379) run on these machines; .ci/run
starts them when they are not running. Each test session gets its own PostgreSQL database; Redis
tests use database 15 and queue names unique to the test. Where one of them is not running (a
fresh machine, the README's test command alone), the tests that need it skip and say which
(a test's fixtures name PostgreSQL; a module that imports REDIS_URL, broker_settings or
PG_ADMIN uses the service).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import uvicorn
from sqlalchemy import text

from server import migrations
from server.db import get_engine
from server.settings import Settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/15"
PG_MISSING = (
    "needs PostgreSQL at 127.0.0.1:5432 (not reachable): apt-get install -y postgresql and "
    "start it, as .ci/run does"
)
REDIS_MISSING = (
    "needs Redis at 127.0.0.1:6379 (not reachable): apt-get install -y redis-server and start "
    "it, as .ci/run does"
)
HERE = Path(__file__).resolve().parent


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _needs(item: pytest.Item) -> set[str]:
    names = set(getattr(item, "fixturenames", ()))
    params = getattr(getattr(item, "callspec", None), "params", {})
    module = getattr(item, "module", None)
    imported = set(vars(module)) if module is not None else set()
    needs = set()
    if names & {"pg_url", "clean_pg"} or "PG_ADMIN" in imported:
        needs.add("postgresql")
    if params.get("db_url") == "postgresql":
        needs.add("postgresql")
    if "redis_queue" in names or imported & {"REDIS_URL", "broker_settings"}:
        needs.add("redis")
    return needs


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, naming the service, the tests here whose service is not running."""
    ours = [(item, _needs(item)) for item in items if HERE in item.path.parents]
    wanted = set().union(*(needs for _, needs in ours))
    pg_down = "postgresql" in wanted and not listening(5432)
    redis_down = "redis" in wanted and not listening(6379)
    for item, needs in ours:
        if pg_down and "postgresql" in needs:
            item.add_marker(pytest.mark.skip(reason=PG_MISSING))
        if redis_down and "redis" in needs:
            item.add_marker(pytest.mark.skip(reason=REDIS_MISSING))


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"igm_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    migrations.upgrade(url)
    yield url
    get_engine(url).dispose()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def clean_pg(pg_url: str) -> str:
    """The session's PostgreSQL database, emptied."""
    with get_engine(pg_url).begin() as conn:
        conn.execute(text("TRUNCATE experiment_tags, experiments, sweeps, workers CASCADE"))
    return pg_url


def sqlite_url(folder: Path) -> str:
    url = f"sqlite:///{folder / 'igm.db'}"
    migrations.upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes it runs on both databases."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return request.getfixturevalue("clean_pg")


def make_settings(tmp_path: Path, **overrides) -> Settings:
    """Embedded settings under tmp_path; override database_url, broker_url, ... as needed."""
    # TestClient sends `Host: testserver`
    hosts = ["localhost", "127.0.0.1", "testserver"]
    values = {"data_dir": tmp_path / "data", "trusted_hosts": hosts, **overrides}
    return Settings(**values)


def queue_settings(folder: Path, queue: str = "", **overrides) -> tuple[Settings, str]:
    """Embedded settings on a SQLite database in `folder` with a queue of their own."""
    queue = queue or f"t{uuid.uuid4().hex[:12]}"
    values = {"database_url": sqlite_url(folder), "default_queue": queue, "queues": [queue]}
    return make_settings(folder, **(values | overrides)), queue


@pytest.fixture
def redis_queue() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def rds(redis_queue: str) -> Iterator[redis.Redis]:
    """A connection to the tests' Redis database; the test's queue is deleted afterwards."""
    conn = redis.Redis.from_url(REDIS_URL)
    yield conn
    bindings = [f"_kombu.binding.{redis_queue}", f"_kombu.binding_permanent.{redis_queue}"]
    conn.delete(*conn.scan_iter(match=f"{redis_queue}*"), *bindings)
    conn.close()


def broker_settings(tmp_path: Path, db_url: str, queue: str, **overrides) -> Settings:
    """Settings on `db_url` with Redis as the broker and `queue` the default (and only) queue."""
    values = {"queues": [queue], **overrides}
    return make_settings(
        tmp_path, database_url=db_url, broker_url=REDIS_URL, default_queue=queue, **values
    )


def messages(conn: redis.Redis, queue: str) -> list[tuple[str, str]]:
    """(Redis key, experiment id) of every task waiting in `queue`, any priority: kombu keeps
    one list per priority step, `<queue>` for step 0 (API priority 9), else
    `<queue>\\x06\\x16<step>`."""
    out = []
    for key in sorted(conn.scan_iter(match=f"{queue}*")):
        for raw in conn.lrange(key, 0, -1):
            envelope = json.loads(raw)
            args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            assert envelope["headers"]["task"] == "igm.run_experiment"
            out.append((key.decode(), args[0]))
    return out


def dotted(value: Any, key: str) -> Any:
    """The value at a dotted key (list indices as numbers), walked in Python; None where there is
    none: what the API's JSON-path reads must agree with."""
    for part in key.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served(app: Any, queue: str | None = None) -> Iterator[str]:
    """`app` under uvicorn in a thread on a free loopback port: yields its URL; afterwards stops
    it and deletes the Redis keys of `queue`."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        if queue:
            broker = redis.Redis.from_url(REDIS_URL)
            for key in broker.scan_iter(f"{queue}*"):
                broker.delete(key)


def start_worker(settings: Settings, queue: str, log: Path, name: str = "test") -> subprocess.Popen:
    """A real Celery worker process (`<queue>@<name>`) for `queue`, its stderr in `log`."""
    from launcher.embedded import ROOT, worker_env
    from worker.command import worker_command

    with open(log, "w") as out:  # the worker holds its own copy of the file
        return subprocess.Popen(
            worker_command([queue], f"{queue}@{name}"),
            env=worker_env(settings),
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def stop_worker(proc: subprocess.Popen, sig: int = signal.SIGQUIT, wait_s: float = 15) -> None:
    """Send `sig` to the worker's process group; kill the group if it lingers past wait_s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
