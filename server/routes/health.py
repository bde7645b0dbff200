"""GET /health: can the service reach its database, its broker and its MLflow store?

200 with status "ok" when all three answer (and the broker has not lost the messages of
experiments queued long ago: server.reconcile.lost_messages), 503 with status "degraded"
otherwise; each part says what it found. Every check is bounded by a short timeout so that a
dead dependency cannot hang the probe for long.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from celery import Celery
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from server import migrations, reconcile
from server.db import get_engine, session_factory
from server.deps import CeleryDep, MlflowDep, SettingsDep
from server.mlflow_reader import MlflowReader
from server.schemas import CheckPublic, HealthPublic
from server.settings import Settings

router = APIRouter(tags=["health"])
logger = logging.getLogger("server.health")

TIMEOUT_S = 2.0


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500]


def check_database(settings: Settings) -> CheckPublic:
    url = settings.resolved_database_url()
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
        migrations.check_schema(url)
    except migrations.SchemaError as exc:
        return CheckPublic(ok=False, detail=str(exc))
    except Exception as exc:
        return CheckPublic(ok=False, detail=f"cannot reach the database: {_first_line(exc)}")
    return CheckPublic(ok=True, detail="reachable, schema current")


def check_broker(celery: Celery, settings: Settings) -> CheckPublic:
    url = settings.resolved_broker_url()
    if url.startswith("filesystem"):
        folder = settings.broker_folder() / "queue"
        if folder.is_dir() and os.access(folder, os.W_OK):
            return CheckPublic(ok=True, detail=f"filesystem broker at {folder}")
        return CheckPublic(ok=False, detail=f"filesystem broker folder {folder} is missing")
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=TIMEOUT_S)
            where = conn.as_uri()
    except Exception as exc:
        return CheckPublic(ok=False, detail=f"cannot reach {_redact(url)}: {_first_line(exc)}")
    try:
        sessions = session_factory(settings.resolved_database_url())
        lost = reconcile.lost_messages(settings, sessions, celery)
    except Exception as exc:  # the database check reports a database that is down
        logger.warning("could not compare the queues with the table: %s", exc)
        lost = None
    if lost:
        return CheckPublic(ok=False, detail=lost)
    return CheckPublic(ok=True, detail=f"connected to {where}")


def check_mlflow(reader: MlflowReader) -> CheckPublic:
    uri = reader.tracking_uri
    try:
        if reader.scheme in ("http", "https"):
            resp = httpx.get(f"{uri.rstrip('/')}/health", timeout=TIMEOUT_S)
            ok = resp.status_code == 200
            return CheckPublic(ok=ok, detail=f"{_redact(uri)}/health answered {resp.status_code}")
        path = reader.sqlite_path()
        if path is not None:
            return _check_sqlite_store(path.resolve())
        if reader.is_database:
            with reader.engine().connect() as conn:
                conn.execute(text("SELECT 1"))
            return CheckPublic(ok=True, detail=f"{_redact(uri)} reachable")
    except Exception as exc:
        return CheckPublic(ok=False, detail=f"cannot reach {_redact(uri)}: {_first_line(exc)}")
    return CheckPublic(ok=True, detail=f"{reader.scheme or 'local'} store, not checked")


def _check_sqlite_store(path: Path) -> CheckPublic:
    if not path.parent.is_dir():
        return CheckPublic(ok=False, detail=f"the MLflow store folder {path.parent} is missing")
    if not path.exists():
        writable = os.access(path.parent, os.W_OK)
        detail = f"{path} not created yet (no run so far)"
        return CheckPublic(
            ok=writable, detail=detail if writable else f"{path.parent} is read-only"
        )
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=TIMEOUT_S)
    try:
        conn.execute("SELECT 1").fetchone()
    finally:
        conn.close()
    return CheckPublic(ok=True, detail=f"{path} opens")


@router.get(
    "/health",
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "a dependency is unreachable"}},
)
def health(settings: SettingsDep, celery: CeleryDep, reader: MlflowDep) -> JSONResponse:
    """Checks the database (SELECT 1 and the schema), the broker and the MLflow store."""
    result = HealthPublic(
        status="ok",
        database=check_database(settings),
        broker=check_broker(celery, settings),
        mlflow=check_mlflow(reader),
    )
    if not (result.database.ok and result.broker.ok and result.mlflow.ok):
        result.status = "degraded"
    return JSONResponse(result.model_dump(), status_code=200 if result.status == "ok" else 503)
