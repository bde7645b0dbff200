"""The app's OpenAPI schema: FastAPI's, with 422 bodies as the API sends them
({"detail": [{loc, msg}]}, server.errors) and, when tokens are required, the bearer scheme
that gives /docs its "Authorize" button."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

# the API's one error shape for 422s (see server.errors and server.inputs), in the schema
ERROR_ITEM = {
    "title": "ValidationError",
    "type": "object",
    "required": ["loc", "msg"],
    "properties": {
        "loc": {"type": "string", "description": "the field, dotted: body.a.b, query.limit"},
        "msg": {"type": "string"},
    },
}


def schema_of(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The app's `openapi` method: the schema built once, then served as it is."""

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
                schemas["ValidationError"] = ERROR_ITEM
            if app.state.settings.require_tokens:  # /docs gets an "Authorize" button
                schema.setdefault("components", {})["securitySchemes"] = {
                    "token": {"type": "http", "scheme": "bearer", "description": "igm token"}
                }
                schema["security"] = [{"token": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def install(app: FastAPI) -> None:
    app.openapi = schema_of(app)  # type: ignore[method-assign]
