"""An experiment's MLflow runs: its metric histories (downsampled on the server, stitched across
attempts by server.attempts) and artifacts.

These routes call MLflow, which may be slow or down: they release the database connection first
(ExperimentRowDep) and run their MLflow calls through MlflowReader.call (its own threads, a
timeout; server.errors answers 503 when MLflow does not answer); the other routes never wait
for it.
"""

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

from server import attempts
from server.deps import ExperimentRowDep, MlflowDep
from server.inputs import unprocessable
from server.metric_store import ArtifactIsDirectory, ArtifactNotFound, Downsampled, MetricStore
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
async def get_metrics(
    exp: ExperimentRowDep,
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
    counts those), and a key with none of them comes back empty rather than 404. An experiment
    resumed by a later attempt shows each step once: the later attempt's values from the step it
    resumed from on. 503 when MLflow does not answer within the configured timeout."""
    wanted = _split_keys(keys or [])
    runs = exp.runs()
    if not wanted:
        found = await reader.call(attempts.metric_keys, reader.store, runs) if runs else []
        return MetricKeysPublic(keys=found)
    histories = await reader.call(_histories, reader.store, runs, wanted, max_points, after_step)
    metrics = {}
    for key, history in zip(wanted, histories, strict=True):
        if history is None and after_step is not None and runs:
            history = _EMPTY
        if history is None:
            raise HTTPException(
                status_code=404,
                detail=f"metric {key[:250]!r} not found for experiment {exp.id}",
            )
        metrics[key] = _series(*history)
    return MetricsPublic(metrics=metrics)


def _histories(
    store: MetricStore,
    runs: attempts.Runs,
    keys: list[str],
    max_points: int,
    after_step: int | None,
) -> list[Downsampled | None]:
    if not runs:
        return [None] * len(keys)
    return [attempts.metric_downsampled(store, runs, k, max_points, after_step) for k in keys]


@router.get("/{experiment_id}/artifacts", response_model=ArtifactsPublic)
async def list_artifacts(
    exp: ExperimentRowDep, reader: MlflowDep, request: Request
) -> ArtifactsPublic:
    """Every file and folder the experiment's (latest) MLflow run holds, with download URLs."""
    if not exp.mlflow_run_id:
        return ArtifactsPublic(artifacts=[])
    items = await reader.call(reader.artifacts.list, exp.mlflow_run_id)
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
async def download_artifact(exp: ExperimentRowDep, reader: MlflowDep, path: str) -> FileResponse:
    """One artifact file, as an attachment."""
    _check_artifact_path(path)
    if not exp.mlflow_run_id:
        raise HTTPException(status_code=404, detail=f"artifact {path!r} not found")
    tmp = tempfile.mkdtemp(prefix="igm-artifact-")
    local: Path | None = None
    try:
        local = await reader.call(reader.artifacts.download, exp.mlflow_run_id, path, Path(tmp))
    except ArtifactNotFound:
        raise HTTPException(status_code=404, detail=f"artifact {path!r} not found") from None
    except ArtifactIsDirectory:
        raise HTTPException(
            status_code=400,
            detail=f"{path!r} is a folder; list it with GET /experiments/{exp.id}/artifacts",
        ) from None
    finally:
        if local is None:  # nothing to send: the folder goes now rather than after the answer
            shutil.rmtree(tmp, ignore_errors=True)
    return FileResponse(
        local,
        filename=posixpath.basename(path),
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )
