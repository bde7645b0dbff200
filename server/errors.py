"""The API's error answers, one handler per error type: 422 in the API's shape, 503 when the
MLflow store is unavailable, the sign-in page for a dashboard page without a token, no traceback
for a client that left mid-body (server.guards logged it), and a bare 500 (logged) for anything
unexpected. `install(app)` registers them."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.requests import ClientDisconnect

from igm_core.errors import readable
from server import auth, guards
from server.metric_store import MlflowUnavailable
from server.routes import pages

logger = logging.getLogger("server")


def _dotted(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
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


async def store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """A route's MLflow call failed or timed out (server.metric_store.reader): 503 and why."""
    return JSONResponse({"detail": str(exc)}, status_code=503)


async def page_auth(request: Request, _exc: Exception) -> HTMLResponse:
    """A dashboard page without a usable token: the page that asks for one."""
    return pages.sign_in_page(request)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install(app: FastAPI) -> None:
    """Register every handler of this module on `app`."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(MlflowUnavailable, store_unavailable)
    app.add_exception_handler(auth.PageAuthRequired, page_auth)
    app.add_exception_handler(ClientDisconnect, guards.client_disconnected)
    app.add_exception_handler(Exception, internal_error)
