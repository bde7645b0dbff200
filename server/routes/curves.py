"""GET /compare/curves: the per-step part of a comparison. Runs that differ only in their seed
form a group (the grouping of igm compare); per group and metric key, the mean over seeds with a
95% t-interval band at each step (server.curves), and the spec keys that differ between runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from igm_core.compare import group_runs
from igm_core.compare.report import Run
from server import attempts, curves, queries
from server.deps import MlflowDep, SessionDep
from server.inputs import no_nul, unprocessable
from server.metric_store import MetricStore
from server.models import Experiment
from server.schemas import CurveGroup, CurveRun, CurvesPublic

router = APIRouter(tags=["compare"])

MAX_CURVE_KEYS = 12
DEFAULT_KEYS = 6


def _default_keys(keys: list[str]) -> list[str]:
    """Validation accuracies first (fused, then each modality), then the training losses."""
    val = [k for k in keys if k.startswith("val/") and k.endswith("/acc")]
    val.sort(key=lambda k: (k != "val/fused/acc", k))
    loss = [k for k in keys if k.startswith("train/") and k.endswith("/loss")]
    return (val + loss)[:DEFAULT_KEYS]


@router.get("/compare/curves", response_model=CurvesPublic)
async def compare_curves(
    session: SessionDep,
    reader: MlflowDep,
    ids: Annotated[
        list[str] | None, Query(description="experiment ids, repeatable or comma-separated")
    ] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    sweep: Annotated[str | None, Query(max_length=64, description="a sweep id")] = None,
    keys: Annotated[
        list[str] | None,
        Query(
            description=f"metric keys (at most {MAX_CURVE_KEYS}); default: validation "
            "accuracies and training losses"
        ),
    ] = None,
    max_points: Annotated[int, Query(ge=2, le=5000, description="steps per curve")] = 300,
) -> CurvesPublic:
    """Experiments with an MLflow run (running ones too) matching every filter, grouped by spec
    up to the seed: per group and key, mean and 95% t-interval over the seeds at each step of a
    common grid; with the spec keys whose values differ between the runs. At least one filter."""
    wanted = [i.strip() for item in ids or [] for i in item.split(",") if i.strip()]
    no_nul(tag=tag, sweep=sweep, **{f"ids.{n}": v for n, v in enumerate(wanted)})
    if not (wanted or tag or sweep):
        raise unprocessable("query", "give experiment ids, a tag or a sweep to compare")
    if len(wanted) > queries.MAX_COMPARED:
        raise unprocessable("query.ids", f"at most {queries.MAX_COMPARED} ids")
    asked = list(
        dict.fromkeys(k.strip() for item in keys or [] for k in item.split(",") if k.strip())
    )
    if len(asked) > MAX_CURVE_KEYS:
        raise unprocessable("query.keys", f"at most {MAX_CURVE_KEYS} keys, got {len(asked)}")
    exps, matched = await run_in_threadpool(
        queries.runs_with_metrics, session, ids=wanted, tag=tag, sweep_id=sweep
    )
    await run_in_threadpool(session.close)  # MLflow may be slow: hold no database connection
    every, shown, groups, out = await reader.call(
        _curve_groups, reader.store, exps, asked, max_points
    )
    label_of = {str(r.path): g.label for g in groups for r in g.runs}
    return CurvesPublic(
        keys=every,
        shown=shown,
        max_points=max_points,
        runs=[
            CurveRun(
                id=e.id, name=e.name, status=e.status, seed=e.spec.get("seed"), group=label_of[e.id]
            )
            for e in exps
        ],
        groups=out,
        matched=matched,
        spec_differences=curves.spec_differences([e.spec for e in exps]),
    )


def _curve_groups(
    reader: MetricStore, exps: list[Experiment], asked: list[str], max_points: int
) -> tuple[list[str], list[str], list, list[CurveGroup]]:
    """Every key, the keys shown, the seed groups and their curves (MLflow calls: run through
    MlflowReader.call). A resumed experiment's histories are stitched across its attempts."""
    run_keys = {e.id: set(attempts.metric_keys(reader, e.runs())) for e in exps}
    every = sorted(set().union(*run_keys.values())) if run_keys else []
    shown = asked or _default_keys(every)
    groups = group_runs(Run(Path(e.id), {"spec": e.spec}) for e in exps)
    by_id = {e.id: e for e in exps}
    out = []
    for g in groups:
        members = [by_id[str(r.path)] for r in g.runs]
        bands = {}
        for key in shown:
            histories = [
                h
                for e in members
                if key in run_keys[e.id]
                and (h := attempts.metric_history(reader, e.runs(), key)) is not None
            ]
            bands[key] = curves.band(histories, max_points)
        out.append(
            CurveGroup(
                label=g.label,
                method=g.spec.get("method", {}).get("name"),
                dataset=g.spec.get("dataset", {}).get("name"),
                ids=[e.id for e in members],
                seeds=sorted({r.seed for r in g.runs}),
                curves=bands,
            )
        )
    return every, shown, groups, out
