"""Builds the FastAPI app of the IGM Lab service; nothing else lives here.

`create_app(settings)` returns the app. On start-up it refuses to run against a database whose
schema is not current (SchemaError names the command to run), then builds the session factory,
the Celery app it sends tasks with and the MLflow reader, and keeps them on app.state for
server.deps. Run it with `uvicorn --factory server.main:create_app` (or `server.main:app`, built
on first access from the environment). Never imports torch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from igm_core.errors import readable
from server import auth, guards, migrations, reconcile
from server.db import session_factory
from server.mlflow_reader import MlflowReader
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

logger = logging.getLogger("server")


class BodySizeLimit:
    """413 for request bodies over `max_bytes`: by Content-Length up front, and by counting
    the bytes actually received (chunked bodies carry no length)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _message(self) -> str:
        return f"request body too large: the limit is {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            status = 413 if length.isdigit() else 400
            detail = self._message() if status == 413 else "invalid Content-Length"
            await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # raised inside the route, so FastAPI turns it into the JSON error response
                    raise HTTPException(status_code=413, detail=self._message())
            return message

        await self.app(scope, limited, send)


def _dotted(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """Request validation errors in the API's shape: [{"loc": "query.limit", "msg": ...}]."""
    assert isinstance(exc, RequestValidationError)
    detail = []
    for err in exc.errors():
        msg = err.get("msg", "invalid")
        if err.get("type") == "json_invalid":
            msg = f"malformed JSON: {(err.get('ctx') or {}).get('error', msg)}"
        else:  # words instead of a regex, "unknown key" for an extra one
            msg = readable(err) if "type" in err else msg
        detail.append({"loc": _dotted(err.get("loc", ())), "msg": msg})
    return JSONResponse({"detail": detail}, status_code=422)


async def _page_auth(request: Request, _exc: Exception) -> HTMLResponse:
    """A dashboard page without a usable token: the page that asks for one."""
    return pages.sign_in_page(request)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


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
        local_store = reader.sqlite_path()
        if local_store is not None:  # the embedded store lives in the data directory
            local_store.parent.mkdir(parents=True, exist_ok=True)
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


# the API's one error shape for 422s (see _validation_error and server.inputs), in the schema
_ERROR_ITEM = {
    "title": "ValidationError",
    "type": "object",
    "required": ["loc", "msg"],
    "properties": {
        "loc": {"type": "string", "description": "the field, dotted: body.a.b, query.limit"},
        "msg": {"type": "string"},
    },
}


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The generated schema with 422 bodies as the API sends them: {"detail": [{loc, msg}]}."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
            schemas = schema.get("components", {}).get("schemas", {})
            if "ValidationError" in schemas:
                schemas["ValidationError"] = _ERROR_ITEM
            if app.state.settings.require_tokens:  # /docs gets an "Authorize" button
                schema.setdefault("components", {})["securitySchemes"] = {
                    "token": {"type": "http", "scheme": "bearer", "description": "igm token"}
                }
                schema["security"] = [{"token": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


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
        dependencies=[Depends(auth.check_access)],  # every route: tokens, when required
    )
    app.state.settings = settings
    app.state.rate_limiter = auth.RateLimiter(settings.write_rate_per_minute)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(guards.RequestGuards, trusted_hosts=settings.trusted_hosts)
    if settings.cors_origins:  # closed unless configured
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(auth.PageAuthRequired, _page_auth)
    app.add_exception_handler(Exception, _internal_error)
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
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR, check_dir=False), name="static")
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn server.main:app`: built on first access, so importing this module stays cheap
    if name == "app":
        globals()["app"] = app = create_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
