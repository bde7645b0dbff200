"""Builds the FastAPI app of the IGM Lab service; nothing else lives here.

`create_app(settings)` returns the app: its middleware (server.guards, CORS when configured),
its error handlers (server.errors), its routers (server.routes) and its OpenAPI schema
(server.openapi). On start-up it refuses to run against a database whose schema is not current
(SchemaError names the command to run), then builds the session factory, the Celery app it
sends tasks with and the MLflow reader, and keeps them on app.state for server.deps. Run it
with `uvicorn --factory server.main:create_app` (or `server.main:app`, built on first access
from the environment). Never imports torch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from server import auth, errors, guards, inputs, migrations, openapi, reconcile
from server.db import session_factory
from server.metric_store import MlflowReader
from server.queue import make_celery
from server.routes import (
    compare,
    curves,
    docs,
    experiments,
    health,
    live,
    pages,
    registry,
    runs,
    sweeps,
)
from server.settings import Settings, get_settings


def _lifespan(settings: Settings, check_schema: bool):
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url()
        if check_schema:
            migrations.check_schema(url)
        reader = MlflowReader(
            settings.resolved_mlflow_uri(),
            timeout_s=settings.mlflow_timeout_s,
            threads=settings.mlflow_threads,
        )
        app.state.settings = settings
        app.state.sessions = session_factory(url)
        app.state.celery = make_celery(settings)
        app.state.mlflow = reader
        reconciler = asyncio.create_task(
            reconcile.reconcile_forever(settings, app.state.sessions, app.state.celery)
        )
        try:
            yield
        finally:
            reconciler.cancel()
            reader.close()
            app.state.celery.close()

    return lifespan


def create_app(settings: Settings | None = None, *, check_schema: bool = True) -> FastAPI:
    """The service's FastAPI app (settings default to the environment's)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="IGM Lab",
        summary="Experiments for imbalanced multimodal learning: submit, queue, watch, compare.",
        version="0.1.0",
        lifespan=_lifespan(settings, check_schema),
        docs_url=None,  # /docs and /redoc come from server.routes.docs: vendored, no CDN
        redoc_url=None,
        # every route: tokens, when required; no JSON body with a key given twice
        dependencies=[Depends(auth.check_access), Depends(inputs.unique_json_keys)],
    )
    app.state.settings = settings
    app.state.rate_limiter = auth.RateLimiter(settings.write_rate_per_minute)
    app.add_middleware(guards.BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(guards.RequestGuards, trusted_hosts=settings.trusted_hosts)
    if settings.cors_origins:  # closed unless configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    errors.install(app)
    app.include_router(sweeps.router)
    app.include_router(live.router)  # before experiments: /experiments/changes is no id
    app.include_router(experiments.router)
    app.include_router(runs.router)
    app.include_router(compare.router)
    app.include_router(registry.router)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(curves.router)
    app.include_router(pages.router)
    openapi.install(app)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR, check_dir=False), name="static")
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn server.main:app`: built on first access, so importing this module stays cheap
    if name == "app":
        globals()["app"] = app = create_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
