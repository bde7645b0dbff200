"""The dashboard's pages: the experiments list at `/`, one experiment at /ui/experiments/{id},
the comparison at /ui/compare, the run table at /ui/table (any spec value or result metric as a
column) and a sweep's plots at /ui/sweeps/{id}.

Each page is a Jinja2 template (web/templates) plus one script (web/static/js) that reads the JSON
API, the page's twin, linked from the page as rel="alternate". What the server renders itself
(filters reflected from the query string, an experiment's spec, error and traceback) comes from
the same models the API returns and is escaped by Jinja2's autoescape. Every page answers with a
Content-Security-Policy that allows scripts, styles and requests from this origin only, so no
inline script or style runs; data reach the scripts through fetch and data- attributes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import Field

from igm_core import catalog
from igm_core.catalog.glossary import METRIC_GLOSSARY
from server import crud, fastjson, ids
from server.deps import SessionDep
from server.filters import FILTER_NAMES, ExperimentFilters, ExperimentView, Words, sort_check
from server.models import STATUSES, Experiment, Sweep

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
STATIC_DIR = WEB_DIR / "static"
UPLOT = "vendor/uplot-1.6.32"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=WEB_DIR / "templates")
# what each metric key means, for the charts' captions (a data- attribute of every page's body)
templates.env.globals["metric_glossary"] = METRIC_GLOSSARY
router = APIRouter(include_in_schema=False)

QueryText = Annotated[str | None, Query(max_length=128)]


def _page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    response = templates.TemplateResponse(
        request,
        template,
        {"root": root, "static": f"{root}/static", "uplot": UPLOT, **context},
        status_code=status_code,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def _names(registry: catalog.Registry) -> list[str]:
    return [entry["name"] for entry in registry.describe()]


class PageQuery(ExperimentFilters):
    """The page at `/`: the filters of GET /experiments, a sort (an unknown one: the default)
    and the offset of its first row."""

    sort: Words = None
    offset: Annotated[int, Field(ge=0, le=10**9)] = 0


@router.get("/", response_class=HTMLResponse)
def experiments_page(request: Request, query: Annotated[PageQuery, Query()]) -> HTMLResponse:
    """The experiments table; its twin is GET /experiments (and /experiments/changes)."""
    filters = query.filters().model_dump()
    twin = "/experiments?" + urlencode({k: v for k, v in filters.items() if v})
    return _page(
        request,
        "experiments.html",
        filters=filters,
        filter_names=FILTER_NAMES,
        sort=query.sort if query.sort in crud.SORT_CHOICES else "-created_at",
        offset=query.offset,
        statuses=STATUSES,
        methods=_names(catalog.METHODS),
        datasets=_names(catalog.DATASETS),
        twin=twin.rstrip("?"),
    )


@router.get("/ui/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(request: Request, experiment_id: str, session: SessionDep) -> HTMLResponse:
    """One experiment; its twins are GET /experiments/{id}, its metrics, artifacts and timeline."""
    try:  # a unique prefix of the id will do, as in the API
        full = ids.resolve(session, Experiment, experiment_id)
    except ids.AmbiguousId:
        full = None
    exp = fastjson.experiment(session, full) if full else None
    if exp is None:
        return _page(
            request, "not_found.html", status_code=404, what=f"experiment {experiment_id[:100]}"
        )
    return _page(
        request,
        "experiment.html",
        exp=exp,
        spec_text=json.dumps(exp["spec"], indent=2, sort_keys=False),
        sweep_text=json.dumps(exp["sweep_values"], sort_keys=True) if exp["sweep_values"] else "",
        twin=f"/experiments/{exp['id']}",
    )


@router.get("/ui/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    ids: Annotated[str | None, Query(max_length=20_000)] = None,
    tag: QueryText = None,
    sweep: QueryText = None,
    metric: QueryText = None,
    baseline: Annotated[str | None, Query(max_length=300)] = None,
) -> HTMLResponse:
    """Seed groups of the chosen experiments; its twins are GET /compare and /compare/curves."""
    chosen = {"ids": ids or "", "tag": tag or "", "sweep": sweep or "", "metric": metric or "acc",
              "baseline": baseline or ""}  # fmt: skip
    query = urlencode({k: v for k, v in chosen.items() if v and k != "metric"})
    return _page(
        request,
        "compare.html",
        chosen=chosen,
        twin=f"/compare?{query}" if query else "/compare",
    )


def sign_in_page(request: Request) -> HTMLResponse:
    """401 for a page asked for without a usable token: its script asks for one (kept for the
    browser session), then loads the page again with it."""
    return _page(request, "sign_in.html", status_code=401, twin="/experiments")


# ----------------------------------------------------------------------------- research views

TABLE_COLUMNS = ("test.acc", "test.macro_f1", "optimizer.lr", "seed")  # without `columns=`


class TableQuery(ExperimentView):
    """The run table at /ui/table: the filters and columns of GET /experiments, its sort and
    its page (checked as the API checks them)."""

    sort: Annotated[str, Field(max_length=256), sort_check(crud.SORT_CHOICES)] = "-created_at"
    offset: Annotated[int, Field(ge=0, le=10**9)] = 0
    limit: Annotated[int, Field(ge=1, le=500)] = 50


@router.get("/ui/table", response_class=HTMLResponse)
def table_page(request: Request, query: Annotated[TableQuery, Query()]) -> HTMLResponse:
    """Experiments with spec values and result metrics as columns; its twin is GET
    /experiments with the same query."""
    given = "columns" in request.query_params  # columns= (empty): no chosen column
    columns = query.columns or ([] if given else list(TABLE_COLUMNS))
    filters = query.filters().model_dump()
    twin = {**{k: v for k, v in filters.items() if v}, "columns": ",".join(columns)}
    twin.update(sort=query.sort, limit=query.limit, offset=query.offset)
    return _page(
        request,
        "table.html",
        filters=filters,
        filter_names=FILTER_NAMES,
        columns=columns,
        sort=query.sort,
        offset=query.offset,
        limit=query.limit,
        statuses=STATUSES,
        methods=_names(catalog.METHODS),
        datasets=_names(catalog.DATASETS),
        twin="/experiments?" + urlencode({k: v for k, v in twin.items() if v != ""}, doseq=True),
    )


@router.get("/ui/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, sweep_id: str, session: SessionDep) -> HTMLResponse:
    """A sweep's finished points as a scatter and parallel coordinates of the swept values
    against fused and weak-modality test accuracy; its twin is GET /experiments?sweep=..."""
    try:  # a unique prefix of the id will do, as in the API
        full = ids.resolve(session, Sweep, sweep_id)
    except ids.AmbiguousId:
        full = None
    row = session.get(Sweep, full) if full else None
    if row is None:
        return _page(request, "not_found.html", status_code=404, what=f"sweep {sweep_id[:100]}")
    swept = [*row.grid, *((row.random or {}).get("params") or {})]
    return _page(
        request,
        "sweep.html",
        sweep=row,
        swept=swept,
        twin=f"/experiments?sweep={row.id}&status=succeeded&limit=500",
    )
