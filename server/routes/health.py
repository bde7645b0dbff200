"""GET /health: can the service reach its database, its broker and its MLflow store?

200 with status "ok" when all three answer (and the broker has not lost the messages of
experiments queued long ago: server.reconcile.lost_messages), 503 with status "degraded"
otherwise; each part says what it found (the MLflow store checks itself: MetricStore.check).
Every check is bounded by a short timeout so that a dead dependency cannot hang the probe for
long.
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from server import migrations, reconcile
from server.db import get_engine, session_factory
from server.deps import CeleryDep, MlflowDep, SettingsDep
from server.metric_store import MlflowReader
from server.metric_store.base import redact
from server.schemas import CheckPublic, HealthPublic
from server.settings import Settings

router = APIRouter(tags=["health"])
logger = logging.getLogger("server.health")

TIMEOUT_S = 2.0


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
        return CheckPublic(ok=False, detail=f"cannot reach {redact(url)}: {_first_line(exc)}")
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
    try:
        return CheckPublic(**reader.store.check())
    except Exception as exc:
        where = redact(reader.tracking_uri)
        return CheckPublic(ok=False, detail=f"cannot reach {where}: {_first_line(exc)}")


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
