"""GET /compare: seed groups and paired differences of finished experiments (the report of
`igm compare`, computed here from the stored specs and summaries)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from igm_core import compare
from server import queries
from server.deps import SessionDep
from server.inputs import check_choice, no_nul, unprocessable

router = APIRouter(tags=["compare"])


@router.get("/compare")
def compare_experiments(
    session: SessionDep,
    ids: Annotated[
        list[str] | None, Query(description="experiment ids, repeatable or comma-separated")
    ] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    sweep: Annotated[str | None, Query(max_length=64, description="a sweep id")] = None,
    metric: Annotated[str, Query(description="fused test metric of the paired comparison")] = "acc",
) -> dict[str, Any]:
    """The succeeded experiments matching every filter, grouped by spec up to the seed: per group
    the mean, std and 95% t-interval of each test metric and per-modality accuracy; for two groups
    on the same dataset and seeds, the paired difference with its interval. At least one filter."""
    wanted = [i.strip() for item in ids or [] for i in item.split(",") if i.strip()]
    no_nul(tag=tag, sweep=sweep, **{f"ids.{n}": v for n, v in enumerate(wanted)})
    check_choice(metric, compare.METRICS, "query.metric", "metric")
    if not (wanted or tag or sweep):
        raise unprocessable("query", "give experiment ids, a tag or a sweep to compare")
    if len(wanted) > queries.MAX_COMPARED:
        raise unprocessable("query.ids", f"at most {queries.MAX_COMPARED} ids")
    results, matched = queries.succeeded_results(session, ids=wanted, tag=tag, sweep_id=sweep)
    try:
        report = compare.report_from_results(results, metric)
    except compare.CompareError as err:
        raise HTTPException(status_code=422, detail=str(err)) from None
    missing = sorted(set(wanted) - {exp_id for exp_id, _ in results})
    return {**report, "experiments": [exp_id for exp_id, _ in results], "matched": matched,
            "not_compared": missing}  # fmt: skip
