"""Experiments: submit (one spec or a sweep), list, inspect, cancel, retry, delete; and each
experiment's MLflow metrics (downsampled on the server) and artifacts.

Writes go through server.crud; a task is sent only after its row is committed, and a broker that
cannot be reached leaves the row queued (the response carries a warning), so nothing is lost.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import yaml
from celery import Celery
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from igm_core.spec import Spec, SpecError, apply_overrides
from server import crud, queries
from server.deps import (
    JSON_TYPES,
    YAML_TYPES,
    CeleryDep,
    ExperimentDep,
    MlflowDep,
    SessionDep,
    SettingsDep,
    SpecBodyDep,
    check_choice,
    check_queue,
    check_tags,
    no_nul,
    plain_json,
    resolve_checked,
    spec_errors,
    unprocessable,
)
from server.downsample import downsample
from server.mlflow_reader import ArtifactIsDirectory, ArtifactNotFound, MlflowUnavailable
from server.models import STATUSES, Experiment
from server.queue import send_run
from server.schemas import (
    ArtifactsPublic,
    ExperimentCreated,
    ExperimentPublic,
    ExperimentsPublic,
    ExperimentSummaryPublic,
    MetricKeysPublic,
    MetricSeries,
    MetricsPublic,
    SweepCreate,
    SweepPublic,
)
from server.settings import Settings

logger = logging.getLogger("server.experiments")
router = APIRouter(prefix="/experiments", tags=["experiments"])

MAX_KEYS = 50
MAX_ERRORS = 50
_SPEC_SCHEMA = {"type": "object", "description": "an igm_core spec (see `igm validate`)"}
SPEC_BODY = {
    "requestBody": {
        "required": True,
        "content": {t: {"schema": _SPEC_SCHEMA} for t in JSON_TYPES + YAML_TYPES},
    }
}


# ----------------------------------------------------------------------------- helpers


def _enqueue(celery: Celery, experiments: Sequence[Experiment]) -> str | None:
    """Send one task per (committed) experiment; a warning when the broker refused."""
    for i, exp in enumerate(experiments):
        try:
            send_run(celery, experiment_id=exp.id, queue=exp.queue, priority=exp.priority)
        except Exception as exc:  # broker down: the rows stay queued in the database
            left = len(experiments) - i
            logger.error("could not enqueue %d experiment(s) from %s: %s", left, exp.id, exc)
            return (
                f"not enqueued: the broker could not be reached ({exc}); {left} experiment(s) "
                "stay queued in the database and can be re-enqueued"
            )
    return None


# ----------------------------------------------------------------------------- submit


@router.post("", status_code=201, response_model=ExperimentCreated, openapi_extra=SPEC_BODY)
def create_experiment(
    raw: SpecBodyDep,
    session: SessionDep,
    settings: SettingsDep,
    celery: CeleryDep,
    priority: Annotated[int, Query(ge=0, le=9, description="0..9, higher runs first")] = 5,
    tags: Annotated[list[str] | None, Query(description="repeatable: tags=a&tags=b")] = None,
    queue: Annotated[str | None, Query(max_length=64)] = None,
) -> ExperimentCreated:
    """Validate a spec (JSON or YAML body), store it as a queued experiment, enqueue it."""
    tag_list = check_tags(tags or [])
    queue = check_queue(queue, settings, "query.queue")
    try:
        spec = resolve_checked(raw, settings)
    except SpecError as err:
        raise HTTPException(status_code=422, detail=spec_errors(err)) from None
    exp = crud.create_experiment(
        session,
        spec=spec,
        priority=priority,
        tags=tag_list,
        queue=queue,
        max_attempts=settings.max_attempts,
    )
    warning = _enqueue(celery, [exp])
    twins = crud.twins(session, spec_hash=exp.spec_hash, exclude_id=exp.id)
    return ExperimentCreated.from_row(exp, twins=twins, warning=warning)


def _sweep_specs(body: SweepCreate, settings: Settings) -> list[Spec]:
    """One resolved spec per point, or 422 listing the points that do not validate."""
    specs, errors = [], []
    for i, point in enumerate(body.points()):
        try:
            raw = apply_overrides(body.base, [f"{k}={_yaml_value(v)}" for k, v in point.items()])
            if isinstance(raw.get("name"), str):
                raw["name"] = f"{raw['name']}-{i}"
            elif body.name and "name" not in raw:
                raw["name"] = f"{body.name}-{i}"
            specs.append(resolve_checked(raw, settings))
        except SpecError as err:
            errors.extend(spec_errors(err, f"points.{i}.", point=i, overrides=point))
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise HTTPException(status_code=422, detail=errors[:MAX_ERRORS])
    return specs


def _yaml_value(value: Any) -> str:
    """`value` as text that apply_overrides' yaml.safe_load reads back unchanged (JSON would
    not do: YAML 1.1 reads 1e-05 as a string)."""
    return yaml.safe_dump(value, default_flow_style=True, width=2**31 - 1).removesuffix("\n...\n")


@router.post("/sweep", status_code=201, response_model=SweepPublic)
def create_sweep(
    body: SweepCreate, session: SessionDep, settings: SettingsDep, celery: CeleryDep
) -> SweepPublic:
    """Expand a grid (and seeded random samples) over a base spec; validate every point before
    writing any; store them as one sweep and enqueue each."""
    plain_json(body.model_dump(), "body")  # no NaN or infinity anywhere
    tags = check_tags(body.tags)
    queue = check_queue(body.queue, settings, "body.queue")
    size = body.size()
    if size > settings.max_sweep_size:
        raise unprocessable(
            "body",
            f"the sweep has {size} points; the limit is "
            f"{settings.max_sweep_size} (IGM_MAX_SWEEP_SIZE)",
        )
    specs = _sweep_specs(body, settings)
    name = body.name or body.base.get("name") or "sweep"
    sweep, exps = crud.create_sweep(
        session,
        name=str(name)[:128],
        base_spec=body.base,
        grid=body.grid,
        random=body.random.model_dump(mode="json") if body.random is not None else None,
        specs=specs,
        priority=body.priority,
        tags=tags,
        queue=queue,
        max_attempts=settings.max_attempts,
    )
    warning = _enqueue(celery, exps)
    twins = queries.twins_of(session, exps)
    data = [ExperimentPublic.from_row(exp, twins=twins[exp.id]) for exp in exps]
    return SweepPublic(sweep_id=sweep.id, count=len(exps), data=data, warning=warning)


# ----------------------------------------------------------------------------- read


SORT_CHOICES = [f"{p}{key}" for key in crud.SORTS for p in ("", "-")]


@router.get("", response_model=ExperimentsPublic)
def list_experiments(
    session: SessionDep,
    status: Annotated[str | None, Query(description=f"one of: {', '.join(STATUSES)}")] = None,
    method: Annotated[str | None, Query(max_length=64)] = None,
    dataset: Annotated[str | None, Query(max_length=64)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=128, description="text in the name")] = None,
    sweep: Annotated[str | None, Query(max_length=64, description="a sweep id")] = None,
    sort: Annotated[
        str, Query(description=f"a sort key, '-' first for descending: {', '.join(crud.SORTS)}")
    ] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> ExperimentsPublic:
    """Experiments matching every filter given, one page of them, and how many match in all."""
    check_choice(status, STATUSES, "query.status", "status")
    check_choice(sort, SORT_CHOICES, "query.sort", "sort")
    no_nul(method=method, dataset=dataset, tag=tag, q=q, sweep=sweep)
    rows, count = crud.list_experiments(
        session,
        status=status,
        method=method,
        dataset=dataset,
        tag=tag,
        text=q,
        sweep_id=sweep,
        sort=sort,
        limit=limit,
        offset=offset,
    )
    return ExperimentsPublic(data=[ExperimentSummaryPublic.from_row(e) for e in rows], count=count)


@router.get("/{experiment_id}", response_model=ExperimentPublic)
def get_experiment(exp: ExperimentDep, session: SessionDep) -> ExperimentPublic:
    """One experiment in full: resolved spec, state, progress, results, error."""
    twins = crud.twins(session, spec_hash=exp.spec_hash, exclude_id=exp.id)
    return ExperimentPublic.from_row(exp, twins=twins)


# ----------------------------------------------------------------------------- actions


@router.post(
    "/{experiment_id}/cancel",
    response_model=ExperimentPublic,
    responses={409: {"description": "already finished"}},
)
def cancel_experiment(exp: ExperimentDep, session: SessionDep) -> ExperimentPublic:
    """Queued: cancelled now. Running: asked to stop; it stops at its next step."""
    try:
        exp = crud.request_cancel(session, experiment_id=exp.id)
    except crud.Conflict as err:
        raise HTTPException(status_code=409, detail=str(err)) from None
    return ExperimentPublic.from_row(
        exp, twins=crud.twins(session, spec_hash=exp.spec_hash, exclude_id=exp.id)
    )


@router.post(
    "/{experiment_id}/retry",
    response_model=ExperimentCreated,
    responses={409: {"description": "neither failed nor cancelled"}},
)
def retry_experiment(
    exp: ExperimentDep, session: SessionDep, settings: SettingsDep, celery: CeleryDep
) -> ExperimentCreated:
    """Queue a failed or cancelled experiment again; it resumes from its last checkpoint."""
    try:
        exp = crud.retry(session, experiment_id=exp.id, extra_attempts=settings.max_attempts)
    except crud.Conflict as err:
        raise HTTPException(status_code=409, detail=str(err)) from None
    warning = _enqueue(celery, [exp])
    twins = crud.twins(session, spec_hash=exp.spec_hash, exclude_id=exp.id)
    return ExperimentCreated.from_row(exp, twins=twins, warning=warning)


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
    _remove_run_dir(settings.runs_dir(), experiment_id)
    return Response(status_code=204)


def _remove_run_dir(runs_dir: Path, experiment_id: str) -> None:
    """Remove runs_dir/<id>, never anything outside runs_dir (a symlink is unlinked, not
    followed; the id is 32 hex digits, checked by the dependency that loaded the row)."""
    path = runs_dir / experiment_id
    try:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir() and path.resolve().parent == runs_dir.resolve():
            shutil.rmtree(path)
    except OSError as exc:
        logger.warning("could not remove the run directory %s: %s", path, exc)


# ----------------------------------------------------------------------------- MLflow


def _split_keys(keys: Sequence[str]) -> list[str]:
    out = list(dict.fromkeys(k.strip() for item in keys for k in item.split(",") if k.strip()))
    if len(out) > MAX_KEYS:
        raise unprocessable("query.keys", f"at most {MAX_KEYS} keys per request, got {len(out)}")
    return out


def _series(steps: Any, values: Any, max_points: int) -> MetricSeries:
    small_steps, small_values = downsample(steps, values, max_points)
    finite = [v if v == v and abs(v) != float("inf") else None for v in small_values]
    return MetricSeries(steps=small_steps, values=finite, total=len(steps))


@router.get(
    "/{experiment_id}/metrics",
    response_model=MetricKeysPublic | MetricsPublic,
    responses={404: {"description": "unknown experiment or metric key"}},
)
def get_metrics(
    exp: ExperimentDep,
    reader: MlflowDep,
    keys: Annotated[list[str] | None, Query(description="repeatable or comma-separated")] = None,
    max_points: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> MetricKeysPublic | MetricsPublic:
    """Without keys: the run's metric keys. With keys: each history, downsampled on the server
    to at most max_points points (first, last and each bucket's min and max kept)."""
    wanted = _split_keys(keys or [])
    run_id = exp.mlflow_run_id
    try:
        if not wanted:
            return MetricKeysPublic(keys=reader.metric_keys(run_id) if run_id else [])
        metrics = {}
        for key in wanted:
            history = reader.metric_history(run_id, key) if run_id else None
            if history is None:
                raise HTTPException(
                    status_code=404,
                    detail=f"metric {key[:250]!r} not found for experiment {exp.id}",
                )
            metrics[key] = _series(*history, max_points)
    except MlflowUnavailable as err:
        raise HTTPException(status_code=503, detail=str(err)) from None
    return MetricsPublic(metrics=metrics)


@router.get("/{experiment_id}/artifacts", response_model=ArtifactsPublic)
def list_artifacts(exp: ExperimentDep, reader: MlflowDep, request: Request) -> ArtifactsPublic:
    """Every file and folder the experiment's MLflow run holds, with download URLs."""
    if not exp.mlflow_run_id:
        return ArtifactsPublic(artifacts=[])
    try:
        items = reader.list_artifacts(exp.mlflow_run_id)
    except MlflowUnavailable as err:
        raise HTTPException(status_code=503, detail=str(err)) from None
    base = f"{request.scope.get('root_path', '')}/experiments/{exp.id}/artifacts/"
    return ArtifactsPublic(artifacts=[{**a, "url": base + quote(a["path"])} for a in items])


def _check_artifact_path(path: str) -> None:
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise HTTPException(
            status_code=400,
            detail=f"invalid artifact path {path[:200]!r}: give a relative path without '..'",
        )


@router.get(
    "/{experiment_id}/artifacts/{path:path}",
    response_class=FileResponse,
    responses={400: {"description": "bad path or a folder"}, 404: {}},
)
def download_artifact(exp: ExperimentDep, reader: MlflowDep, path: str) -> FileResponse:
    """One artifact file, as an attachment."""
    _check_artifact_path(path)
    if not exp.mlflow_run_id:
        raise HTTPException(status_code=404, detail=f"artifact {path!r} not found")
    tmp = tempfile.mkdtemp(prefix="igm-artifact-")
    try:
        local = reader.download_artifact(exp.mlflow_run_id, path, Path(tmp))
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, ArtifactNotFound):
            raise HTTPException(status_code=404, detail=f"artifact {path!r} not found") from None
        if isinstance(err, ArtifactIsDirectory):
            raise HTTPException(
                status_code=400,
                detail=f"{path!r} is a folder; list it with GET /experiments/{exp.id}/artifacts",
            ) from None
        if isinstance(err, MlflowUnavailable):
            raise HTTPException(status_code=503, detail=str(err)) from None
        raise
    return FileResponse(
        local,
        filename=posixpath.basename(path),
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )
