"""An experiment's MLflow run: its metric histories (downsampled on the server) and artifacts."""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from server.deps import ExperimentDep, MlflowDep
from server.inputs import unprocessable
from server.mlflow_reader import ArtifactIsDirectory, ArtifactNotFound, MlflowUnavailable
from server.schemas import ArtifactsPublic, MetricKeysPublic, MetricSeries, MetricsPublic

router = APIRouter(prefix="/experiments", tags=["experiments"])

MAX_KEYS = 50
_EMPTY: tuple[list[int], list[float], int] = ([], [], 0)


def _split_keys(keys: Sequence[str]) -> list[str]:
    out = list(dict.fromkeys(k.strip() for item in keys for k in item.split(",") if k.strip()))
    if len(out) > MAX_KEYS:
        raise unprocessable("query.keys", f"at most {MAX_KEYS} keys per request, got {len(out)}")
    return out


def _series(steps: list[int], values: list[float], total: int) -> MetricSeries:
    finite = [v if v == v and abs(v) != float("inf") else None for v in values]
    return MetricSeries(steps=steps, values=finite, total=total)


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
    after_step: Annotated[
        int | None, Query(ge=-1, le=2**62, description="only the points after this step")
    ] = None,
) -> MetricKeysPublic | MetricsPublic:
    """Without keys: the run's metric keys. With keys: each history, downsampled on the server
    to at most max_points points (first, last and each bucket's min and max kept); with
    after_step, only the points logged at later steps (an open chart appends them; `total` then
    counts those), and a key with none of them comes back empty rather than 404."""
    wanted = _split_keys(keys or [])
    run_id = exp.mlflow_run_id
    try:
        if not wanted:
            return MetricKeysPublic(keys=reader.metric_keys(run_id) if run_id else [])
        metrics = {}
        for key in wanted:
            history = (
                reader.metric_downsampled(run_id, key, max_points, after_step, exp.attempts)
                if run_id
                else None
            )
            if history is None and after_step is not None and run_id:
                history = _EMPTY
            if history is None:
                raise HTTPException(
                    status_code=404,
                    detail=f"metric {key[:250]!r} not found for experiment {exp.id}",
                )
            metrics[key] = _series(*history)
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
