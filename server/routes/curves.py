"""GET /compare/curves: the per-step part of a comparison. Runs that differ only in their seed
form a group (the grouping of igm compare); per group and metric key, the mean over seeds with a
95% t-interval band at each step (server.curves), and the spec keys that differ between runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from igm_core.compare.report import Group
from server import attempts, curves, selection
from server.deps import MlflowDep, SessionDep
from server.filters import Name
from server.inputs import unprocessable
from server.metric_store import MetricStore
from server.models import Experiment
from server.schemas import CurveGroup, CurveRun, CurvesPublic
from server.selection import Ids, SelectionQuery

router = APIRouter(tags=["compare"])

MAX_CURVE_KEYS = 12
DEFAULT_KEYS = 6


def _default_keys(keys: list[str]) -> list[str]:
    """Validation accuracies first (fused, then each modality), then the training losses."""
    val = [k for k in keys if k.startswith("val/") and k.endswith("/acc")]
    val.sort(key=lambda k: (k != "val/fused/acc", k))
    loss = [k for k in keys if k.startswith("train/") and k.endswith("/loss")]
    return (val + loss)[:DEFAULT_KEYS]


class CurvesQuery(SelectionQuery):
    """GET /compare/curves: a selection, the metric keys and the points per curve."""

    # as recorded in the API schema; prefixes work here too, as in GET /compare
    ids: Annotated[Ids, Field(description="experiment ids, repeatable or comma-separated")] = None
    sweep: Annotated[Name, Field(description="a sweep id")] = None
    keys: Annotated[
        list[str] | None,
        Field(
            description=f"metric keys (at most {MAX_CURVE_KEYS}); default: validation "
            "accuracies and training losses"
        ),
    ] = None
    max_points: Annotated[int, Field(ge=2, le=5000, description="steps per curve")] = 300


@router.get("/compare/curves", response_model=CurvesPublic)
async def compare_curves(
    session: SessionDep, reader: MlflowDep, query: Annotated[CurvesQuery, Query()]
) -> CurvesPublic:
    """Experiments with an MLflow run (running ones too) matching every filter, grouped by spec
    up to the seed: per group and key, mean and 95% t-interval over the seeds at each step of a
    common grid; with the spec keys whose values differ between the runs. At least one filter."""
    asked = list(
        dict.fromkeys(k.strip() for item in query.keys or [] for k in item.split(",") if k.strip())
    )
    if len(asked) > MAX_CURVE_KEYS:
        raise unprocessable("query.keys", f"at most {MAX_CURVE_KEYS} keys, got {len(asked)}")
    exps, groups, matched = await run_in_threadpool(_drawn, session, query)
    await run_in_threadpool(session.close)  # MLflow may be slow: hold no database connection
    every, shown, out = await reader.call(
        _curve_groups, reader.store, exps, groups, asked, query.max_points
    )
    label_of = {str(r.path): g.label for g in groups for r in g.runs}
    return CurvesPublic(
        keys=every,
        shown=shown,
        max_points=query.max_points,
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


def _drawn(session: Session, query: CurvesQuery) -> tuple[list[Experiment], list[Group], int]:
    chosen = selection.chosen(session, query)
    return selection.drawn(session, chosen, selection.every(session, chosen))


def _curve_groups(
    reader: MetricStore,
    exps: list[Experiment],
    groups: list[Group],
    asked: list[str],
    max_points: int,
) -> tuple[list[str], list[str], list[CurveGroup]]:
    """Every key, the keys shown and each group's curves (MLflow calls: run through
    MlflowReader.call). A resumed experiment's histories are stitched across its attempts."""
    run_keys = {e.id: set(attempts.metric_keys(reader, e.runs())) for e in exps}
    every = sorted(set().union(*run_keys.values())) if run_keys else []
    shown = asked or _default_keys(every)
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
            bands[key] = curves.band(histories, max_points, bounds=curves.bounds_of(key))
        out.append(
            CurveGroup(
                label=g.label,
                color_index=g.index,
                method=g.spec.get("method", {}).get("name"),
                dataset=g.spec.get("dataset", {}).get("name"),
                ids=[e.id for e in members],
                seeds=sorted({r.seed for r in g.runs}),
                curves=bands,
            )
        )
    return every, shown, out
