"""GET /compare: seed groups and paired differences of finished experiments (the report of
`igm compare`, computed here from the stored specs and summaries). What is compared, and how it
is grouped and labelled, is server.selection's, shared with GET /compare/curves."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import Field

from igm_core import compare
from server import selection
from server.deps import SessionDep
from server.filters import choice
from server.selection import SelectionQuery

router = APIRouter(tags=["compare"])


class CompareQuery(SelectionQuery):
    """GET /compare: a selection and the metric of the paired comparison."""

    metric: Annotated[
        str,
        choice("metric", compare.METRICS),
        Field(description="fused test metric of the paired comparison"),
    ] = "acc"


@router.get("/compare")
def compare_experiments(
    session: SessionDep, query: Annotated[CompareQuery, Query()]
) -> dict[str, Any]:
    """The succeeded experiments matching every filter, grouped by spec up to the seed: per group
    the mean, std and 95% t-interval of each test metric and per-modality accuracy; for two groups
    on the same dataset and seeds, the paired difference with its interval. At least one filter.
    A sweep's points are labelled by their swept values, and its points that differ only in the
    seed form one group."""
    chosen = selection.chosen(session, query)
    results, matched = selection.compared(session, chosen)
    try:
        report = selection.report(results, query.metric)
    except compare.CompareError as err:
        raise HTTPException(status_code=422, detail=str(err)) from None
    compared = [exp_id for exp_id, _ in results]
    return {**report, "experiments": compared, "matched": matched,
            "not_compared": chosen.not_found(set(compared))}  # fmt: skip
