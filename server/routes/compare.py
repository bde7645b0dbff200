"""GET /compare: seed groups of finished experiments, each paired with a baseline group (the
report of `igm compare`, computed here from the stored specs and summaries). What is compared,
and how it is grouped and labelled, is server.selection's, shared with GET /compare/curves."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import Field

from igm_core import compare
from server import selection
from server.deps import SessionDep
from server.filters import choice, text
from server.inputs import unprocessable
from server.selection import SelectionQuery

router = APIRouter(tags=["compare"])


class CompareQuery(SelectionQuery):
    """GET /compare: a selection and the metric of the paired comparison."""

    metric: Annotated[
        str,
        choice("metric", compare.METRICS),
        Field(description="fused test metric of the paired comparison"),
    ] = "acc"
    baseline: Annotated[
        text(300),
        Field(
            description="the group every other is paired with: a group label, or a method "
            "that one group alone has; default: the joint-training group, else the first group"
        ),
    ] = None


@router.get("/compare")
def compare_experiments(
    session: SessionDep, query: Annotated[CompareQuery, Query()]
) -> dict[str, Any]:
    """The succeeded experiments matching every filter, grouped by spec up to the seed: per group
    the mean, std and 95% t-interval (clipped to [0, 1], none below 3 seeds) of each test metric
    and per-modality accuracy; every other group paired with the baseline on their shared seeds,
    as B - baseline in percentage points, for acc, macro_f1, map and each modality's accuracy
    (`modality_acc.<m>`); groups that could not be paired, and why; each metric's lead over its
    runner-up. At least one filter. Groups are labelled, and ordered (`color_index`), over every
    experiment of the selection, as in GET /compare/curves."""
    chosen = selection.chosen(session, query)
    results, matched = selection.compared(session, chosen)
    others = selection.every(session, chosen)
    try:
        report = selection.report(results, query.metric, query.baseline, others)
    except compare.CompareError as err:
        raise HTTPException(status_code=422, detail=str(err)) from None
    except compare.BaselineError as err:
        raise unprocessable("query.baseline", str(err)) from None
    compared = [exp_id for exp_id, _ in results]
    return {**report, "experiments": compared, "matched": matched,
            "not_compared": chosen.not_found(set(compared))}  # fmt: skip
