"""/docs (Swagger UI) and /redoc (ReDoc) from the copies vendored under web/static/vendor/, not a
CDN: a lab cluster often has no internet, and a blank /docs there helps nobody. FastAPI's own docs
routes are switched off in server.main; these pages name no external URL (a test checks it).
Each page starts with a bar of links back to the dashboard and across to the other reference."""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

STATIC_DIR = Path(__file__).resolve().parents[2] / "web" / "static"
SWAGGER_UI = "/static/vendor/swagger-ui-dist-5.35.0"
REDOC = "/static/vendor/redoc-2.5.4"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


BACK_STYLE = (
    "font:14px system-ui,sans-serif;margin:0;padding:8px 20px;background:#101828;color:#d0d5dd"
)


def _with_way_back(page: HTMLResponse, root: str, other: tuple[str, str]) -> HTMLResponse:
    """The page with a bar of links at the top of its body: the dashboard, the other reference."""
    link = "color:#fff;text-decoration:none"
    bar = (
        f'<nav id="igm-back" style="{BACK_STYLE}"><a href="{root}/" style="{link};font-weight:700">'
        f"&larr; IGM Lab</a> &middot; "
        f'<a href="{root}{other[0]}" style="{link}">{other[1]}</a></nav>'
    )
    html = bytes(page.body).decode().replace("<body>", f"<body>\n{bar}", 1)
    return HTMLResponse(html, status_code=page.status_code)


def _page(request: Request, render, other: tuple[str, str], **urls: str) -> HTMLResponse:
    """`render` (FastAPI's page function) on this app's schema, with `urls` (paths of this
    server) under the root path, and the bar of links at the top."""
    root = _root(request)
    page = render(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - API",
        **{key: f"{root}{path}" for key, path in urls.items()},
    )
    return _with_way_back(page, root, other)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    return _page(
        request,
        functools.partial(
            get_swagger_ui_html,
            swagger_ui_parameters={"validatorUrl": None},  # never send the spec to a validator
        ),
        ("/redoc", "ReDoc"),
        swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
        oauth2_redirect_url=OAUTH2_REDIRECT,
    )


@router.get(OAUTH2_REDIRECT)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return _page(
        request,
        functools.partial(get_redoc_html, with_google_fonts=False),
        ("/docs", "Swagger UI"),
        redoc_js_url=f"{REDOC}/redoc.standalone.js",
        redoc_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
    )
