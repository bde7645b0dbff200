"""Sweeps: one experiment per point of a grid and seeded random samples over a base spec
(igm_core.sweep expands them; grid and random combine as a product)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from igm_core import sweep
from igm_core.spec import ResolvedSpec, SpecError
from server import auth, crud, fastjson
from server.capacity import Fleet
from server.deps import CeleryDep, SessionDep, SettingsDep
from server.inputs import (
    Checks,
    check_queue,
    check_tags,
    plain_json,
    queue_fleet,
    resolve_checked,
    spec_errors,
    unprocessable,
)
from server.queue import enqueue
from server.schemas import SweepCreate, SweepPoint, SweepPreview, SweepPublic
from server.settings import Settings

router = APIRouter(prefix="/experiments", tags=["experiments"])

MAX_ERRORS = 50


def _sweep_specs(
    body: SweepCreate, settings: Settings, fleet: Fleet | None
) -> list[tuple[dict[str, Any], ResolvedSpec]]:
    """(swept values, resolved spec) per point, or 422 listing the points that do not validate
    or fit no worker of the queue (`fleet`)."""
    plain_json(body.model_dump(), "body")  # no NaN or infinity anywhere
    size = body.size()
    if size > settings.max_sweep_size:
        raise unprocessable(
            "body",
            f"the sweep has {size} points; the limit is "
            f"{settings.max_sweep_size} (IGM_MAX_SWEEP_SIZE)",
        )
    specs: list[tuple[dict[str, Any], ResolvedSpec]] = []
    errors: list[dict[str, Any]] = []
    for i, (values, raw) in enumerate(sweep.expand(body.base, body.grid, body.random, body.name)):
        try:
            specs.append((values, resolve_checked(raw, settings, fleet)))
        except SpecError as err:
            errors.extend(spec_errors(err, f"points.{i}.", point=i, overrides=values))
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise HTTPException(status_code=422, detail=errors[:MAX_ERRORS])
    return specs


@router.post("/sweep", status_code=201, response_model=SweepPublic)
def create_sweep(
    request: Request,
    body: SweepCreate,
    session: SessionDep,
    settings: SettingsDep,
    celery: CeleryDep,
) -> Response:
    """Expand a grid (and seeded random samples) over a base spec; validate every point before
    writing any; store them as one sweep and enqueue each."""
    checks = Checks()  # every problem at once: the tags', the queue's and the points'
    tags = checks.run(check_tags, body.tags, "body.tags")
    queue = checks.run(check_queue, body.queue, settings, "body.queue")
    fleet = queue_fleet(session, settings, queue) if queue is not None else None
    points = checks.run(_sweep_specs, body, settings, fleet)
    checks.raise_if_any()
    name = body.name or body.base.get("name") or "sweep"
    row, exps = crud.create_sweep(
        session,
        name=str(name)[:128],
        base_spec=body.base,
        grid=body.grid,
        random=body.random.model_dump(mode="json") if body.random is not None else None,
        specs=[spec for _, spec in points],
        values=[values for values, _ in points],
        priority=body.priority,
        tags=tags,
        queue=queue,
        max_attempts=settings.max_attempts,
        submitted_by=auth.submitter(request),
    )
    warning = enqueue(celery, exps)
    data = fastjson.experiments(session, [exp.id for exp in exps])
    answer = {"sweep_id": row.id, "count": len(exps), "data": data, "warning": warning}
    return fastjson.response(answer, status_code=201)


@router.post("/sweep/preview", response_model=SweepPreview)
def preview_sweep(body: SweepCreate, session: SessionDep, settings: SettingsDep) -> SweepPreview:
    """The points a sweep would queue, each validated, with its swept values; writes nothing."""
    fleet = queue_fleet(session, settings, check_queue(body.queue, settings, "body.queue"))
    points = [
        SweepPoint(name=spec.name, values=values, spec_hash=spec.hash())
        for values, spec in _sweep_specs(body, settings, fleet)
    ]
    return SweepPreview(count=len(points), points=points)
