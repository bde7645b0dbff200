"""Experiments: submit one spec, list, inspect, cancel, retry, delete.

Writes go through server.crud; a task is sent only after its row is committed, and a broker that
cannot be reached leaves the row queued (the response carries a warning), so nothing is lost.
Sweeps are in sweeps.py, an experiment's MLflow metrics and artifacts in runs.py.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import Field
from sqlalchemy.orm import Session

from igm_core.spec import apply_overrides
from server import auth, crud, fastjson, run_dirs
from server.deps import (
    CeleryDep,
    ExperimentDep,
    SessionDep,
    SettingsDep,
    not_found,
    resolve_experiment_id,
    resolved,
)
from server.filters import ExperimentView, sort_check
from server.inputs import (
    JSON_TYPES,
    YAML_TYPES,
    Checks,
    SpecBodyDep,
    check_priority,
    check_queue,
    check_tags,
    no_nul,
    queue_fleet,
    resolve_checked,
)
from server.queue import MAX_PRIORITY, enqueue
from server.schemas import ExperimentCreated, ExperimentPublic, ExperimentsPublic

logger = logging.getLogger("server.experiments")
router = APIRouter(prefix="/experiments", tags=["experiments"])

MAX_OVERRIDES = 100
_SPEC_SCHEMA = {"type": "object", "description": "an igm_core spec (see `igm validate`)"}
SPEC_BODY = {
    "requestBody": {
        "required": True,
        "content": {t: {"schema": _SPEC_SCHEMA} for t in JSON_TYPES + YAML_TYPES},
    }
}


@router.post("", status_code=201, response_model=ExperimentCreated, openapi_extra=SPEC_BODY)
def create_experiment(
    request: Request,
    raw: SpecBodyDep,
    session: SessionDep,
    settings: SettingsDep,
    celery: CeleryDep,
    priority: Annotated[
        int,
        # checked in the handler with the spec's problems; the schema still says 0..9
        Query(
            description="0..9, higher runs first",
            json_schema_extra={"minimum": 0, "maximum": MAX_PRIORITY},
        ),
    ] = 5,
    tags: Annotated[list[str] | None, Query(description="repeatable: tags=a&tags=b")] = None,
    queue: Annotated[str | None, Query(max_length=64)] = None,
    set_: Annotated[
        list[str] | None,
        Query(
            alias="set",
            max_length=MAX_OVERRIDES,
            description="repeatable key.path=value overrides of the body (value read as YAML)",
        ),
    ] = None,
) -> Response:
    """Validate a spec (JSON or YAML body, with `set` overrides), store it as a queued
    experiment, enqueue it."""
    checks = Checks()  # a refusal lists every problem found: the query's and the spec's
    tag_list = checks.run(check_tags, tags or [])
    checks.run(check_priority, priority)
    queue = checks.run(check_queue, queue, settings, "query.queue")
    fleet = queue_fleet(session, settings, queue) if queue is not None else None
    before = len(checks.detail)
    checks.run(no_nul, **{f"set.{i}": v for i, v in enumerate(set_ or [])})
    # the spec's checks need the overrides applied
    given = checks.run(apply_overrides, raw, set_ or []) if len(checks.detail) == before else None
    spec = checks.run(resolve_checked, given, settings, fleet) if given is not None else None
    checks.raise_if_any()
    exp = crud.create_experiment(
        session,
        spec=spec,
        priority=priority,
        tags=tag_list,
        queue=queue,
        max_attempts=settings.max_attempts,
        submitted_by=auth.submitter(request),
    )
    warning = enqueue(celery, [exp])
    return experiment_response(session, exp.id, status_code=201, warning=warning)


def experiment_response(
    session: Session, experiment_id: str, status_code: int = 200, **extra: Any
) -> Response:
    """One experiment as GET /experiments/{id} answers it, with `extra` fields; 404 if none."""
    data = fastjson.experiment(session, experiment_id)
    if data is None:
        raise not_found(experiment_id)
    return fastjson.response({**data, **extra}, status_code)


# ----------------------------------------------------------------------------- read


SORT_HELP = (
    f"'-' first for descending: {', '.join(crud.SORTS)}, or a spec or result key (test.acc, "
    "optimizer.lr; experiments without a value come last either way)"
)


class ListQuery(ExperimentView):
    """GET /experiments: the filters, the columns, a sort and a page."""

    sort: Annotated[
        str, Field(max_length=256, description=SORT_HELP), sort_check(crud.SORT_CHOICES)
    ] = "-created_at"
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    offset: Annotated[int, Field(ge=0, le=10**9)] = 0


@router.get("", response_model=ExperimentsPublic)
def list_experiments(session: SessionDep, query: Annotated[ListQuery, Query()]) -> Response:
    """Experiments matching every filter given, one page of them with the value of each column
    asked for, and how many match in all."""
    rows, count = crud.list_experiment_rows(
        session,
        filters=resolved(session, query),
        sort=query.sort,
        limit=query.limit,
        offset=query.offset,
        columns=query.column_keys(),
    )
    columns = query.columns or []
    page = {"data": [fastjson.row_dict(r, columns) for r in rows], "count": count}
    return fastjson.response({**page, "columns": columns})


@router.get("/{experiment_id}", response_model=ExperimentPublic)
def get_experiment(experiment_id: str, session: SessionDep) -> Response:
    """One experiment in full: resolved spec, state, progress, results, error."""
    return experiment_response(session, resolve_experiment_id(session, experiment_id))


# ----------------------------------------------------------------------------- actions


@router.post(
    "/{experiment_id}/cancel",
    response_model=ExperimentPublic,
    responses={409: {"description": "already finished"}},
)
def cancel_experiment(exp: ExperimentDep, session: SessionDep) -> Response:
    """Queued: cancelled now. Running: asked to stop; it stops at its next step."""
    try:
        crud.request_cancel(session, experiment_id=exp.id)
    except crud.Conflict as err:
        raise HTTPException(status_code=409, detail=str(err)) from None
    return experiment_response(session, exp.id)


@router.post(
    "/{experiment_id}/retry",
    response_model=ExperimentCreated,
    responses={409: {"description": "neither failed nor cancelled"}},
)
def retry_experiment(
    exp: ExperimentDep, session: SessionDep, settings: SettingsDep, celery: CeleryDep
) -> Response:
    """Queue a failed or cancelled experiment again; it resumes from its last checkpoint."""
    try:
        exp = crud.retry(session, experiment_id=exp.id, extra_attempts=settings.max_attempts)
    except crud.Conflict as err:
        raise HTTPException(status_code=409, detail=str(err)) from None
    warning = enqueue(celery, [exp])
    return experiment_response(session, exp.id, warning=warning)


@router.delete(
    "/{experiment_id}",
    status_code=204,
    response_class=Response,
    responses={409: {"description": "not finished"}},
)
def delete_experiment(exp: ExperimentDep, session: SessionDep, settings: SettingsDep) -> Response:
    """Delete a finished experiment and its run directory (its MLflow run stays)."""
    experiment_id = exp.id
    try:
        crud.delete_experiment(session, experiment_id=experiment_id)
    except crud.Conflict as err:
        raise HTTPException(status_code=409, detail=str(err)) from None
    run_dirs.remove(settings.runs_dir(), experiment_id)
    return Response(status_code=204)
