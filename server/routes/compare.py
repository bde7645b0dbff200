"""GET /compare: seed groups and paired differences of finished experiments (the report of
`igm compare`, computed here from the stored specs and summaries)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from igm_core import compare
from server import ids, queries
from server.deps import SessionDep, sweep_id
from server.inputs import check_choice, no_nul, unprocessable
from server.models import Experiment

router = APIRouter(tags=["compare"])


@router.get("/compare")
def compare_experiments(
    session: SessionDep,
    ids: Annotated[
        list[str] | None,
        Query(description="experiment ids or unique prefixes, repeatable or comma-separated"),
    ] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    sweep: Annotated[
        str | None, Query(max_length=64, description="a sweep id, or a unique prefix of one")
    ] = None,
    metric: Annotated[str, Query(description="fused test metric of the paired comparison")] = "acc",
) -> dict[str, Any]:
    """The succeeded experiments matching every filter, grouped by spec up to the seed: per group
    the mean, std and 95% t-interval of each test metric and per-modality accuracy; for two groups
    on the same dataset and seeds, the paired difference with its interval. At least one filter.
    A sweep's points are labelled by their swept values, and its points that differ only in the
    seed form one group."""
    wanted = [i.strip() for item in ids or [] for i in item.split(",") if i.strip()]
    no_nul(tag=tag, sweep=sweep, **{f"ids.{n}": v for n, v in enumerate(wanted)})
    check_choice(metric, compare.METRICS, "query.metric", "metric")
    if not (wanted or tag or sweep):
        raise unprocessable("query", "give experiment ids, a tag or a sweep to compare")
    if len(wanted) > queries.MAX_COMPARED:
        raise unprocessable("query.ids", f"at most {queries.MAX_COMPARED} ids")
    full = _full_ids(session, wanted)
    results, matched = [], 0  # ids were given and none names an experiment: nothing to compare
    if full or not wanted:
        results, matched = queries.succeeded_results(
            session, ids=list(full.values()), tag=tag, sweep_id=sweep_id(session, sweep)
        )
    labels = queries.sweep_point_labels(session, [exp_id for exp_id, _ in results])
    for exp_id, result in results:
        if exp_id in labels:
            result["spec"] = {**result["spec"], "name": labels[exp_id]}
    try:
        report = compare.report_from_results(results, metric)
    except compare.CompareError as err:
        raise HTTPException(status_code=422, detail=str(err)) from None
    compared = {exp_id for exp_id, _ in results}
    missing = sorted(given for given in wanted if full.get(given) not in compared)
    return {**report, "experiments": [exp_id for exp_id, _ in results], "matched": matched,
            "not_compared": missing}  # fmt: skip


def _full_ids(session: SessionDep, wanted: list[str]) -> dict[str, str]:
    """given id or prefix -> full id, for those that name an experiment; 409 when ambiguous."""
    full = {}
    for given in wanted:
        try:
            found = ids.resolve(session, Experiment, given)
        except ids.AmbiguousId as err:
            raise HTTPException(status_code=409, detail=str(err)) from None
        if found:
            full[given] = found
    return full
