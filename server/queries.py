"""Read-only query helpers the routes need beyond server.crud (which owns every write)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, defer

from server.models import SUCCEEDED, Experiment, ExperimentTag, Sweep

MAX_TWINS = 20
_CHUNK = 500  # bound parameters per IN (...)


def twins_of(session: Session, experiments: Sequence[Experiment]) -> dict[str, list[str]]:
    """Like crud.twins for many experiments at once: id -> ids of the other experiments with the
    same spec hash, oldest first, at most MAX_TWINS each."""
    hashes = sorted({exp.spec_hash for exp in experiments})
    by_hash: dict[str, list[str]] = {h: [] for h in hashes}
    for i in range(0, len(hashes), _CHUNK):
        q = (
            select(Experiment.spec_hash, Experiment.id)
            .where(Experiment.spec_hash.in_(hashes[i : i + _CHUNK]))
            .order_by(Experiment.created_at, Experiment.id)
        )
        for spec_hash, exp_id in session.execute(q):
            by_hash[spec_hash].append(exp_id)
    return {
        exp.id: [other for other in by_hash[exp.spec_hash] if other != exp.id][:MAX_TWINS]
        for exp in experiments
    }


MAX_COMPARED = 500


def _chosen(q: Select, *, ids: Sequence[str], tag: str | None, sweep_id: str | None) -> Select:
    """`q` narrowed to the experiments a comparison names: by ids, a tag and a sweep."""
    if ids:
        q = q.where(Experiment.id.in_(list(ids)[:MAX_COMPARED]))
    if sweep_id:
        q = q.where(Experiment.sweep_id == sweep_id)
    if tag:
        tagged = select(ExperimentTag.experiment_id).where(ExperimentTag.tag == tag)
        q = q.where(Experiment.id.in_(tagged))
    return q


def succeeded_results(
    session: Session,
    *,
    ids: Sequence[str] = (),
    tag: str | None = None,
    sweep_id: str | None = None,
) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """(experiment id, result mapping) of the succeeded experiments matching every filter given,
    oldest first, at most MAX_COMPARED; and how many matched. A result mapping holds what
    igm_core.compare reads: the resolved spec, the test metrics and the run's figures."""
    q = select(Experiment.id, Experiment.spec, Experiment.summary).where(
        Experiment.status == SUCCEEDED, Experiment.summary.is_not(None)
    )
    q = _chosen(q, ids=ids, tag=tag, sweep_id=sweep_id)
    rows = session.execute(q.order_by(Experiment.created_at, Experiment.id)).all()
    results = [
        (exp_id, {"spec": spec, "test": summary.get("test"), "run": summary.get("run", {})})
        for exp_id, spec, summary in rows[:MAX_COMPARED]
    ]
    return results, len(rows)


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def sweep_point_labels(session: Session, exp_ids: Sequence[str]) -> dict[str, str]:
    """For the sweep points among `exp_ids`: "<sweep name> (key=value, ...)" with the point's
    swept values but its seed, so that the compare report groups the points of a sweep that
    differ only in their seed, and labels each group by what was swept."""
    labels: dict[str, str] = {}
    ids = list(exp_ids)
    for i in range(0, len(ids), _CHUNK):
        q = (
            select(Experiment.id, Experiment.sweep_values, Sweep.name)
            .join(Sweep, Experiment.sweep_id == Sweep.id)
            .where(Experiment.id.in_(ids[i : i + _CHUNK]))
        )
        for exp_id, values, name in session.execute(q):
            swept = {k: v for k, v in (values or {}).items() if k != "seed"}
            shown = ", ".join(f"{k}={_shown(v)}" for k, v in swept.items())
            labels[exp_id] = f"{name} ({shown})" if shown else name
    return labels


MAX_CURVE_RUNS = 60


def runs_with_metrics(
    session: Session,
    *,
    ids: Sequence[str] = (),
    tag: str | None = None,
    sweep_id: str | None = None,
) -> tuple[list[Experiment], int]:
    """The experiments matching every filter given that have an MLflow run (any status: running
    ones too), oldest first, at most MAX_CURVE_RUNS; and how many matched."""
    q = (
        select(Experiment)
        .options(defer(Experiment.traceback))
        .where(Experiment.mlflow_run_id.is_not(None))
    )
    q = _chosen(q, ids=ids, tag=tag, sweep_id=sweep_id)
    rows = list(session.scalars(q.order_by(Experiment.created_at, Experiment.id)))
    return rows[:MAX_CURVE_RUNS], len(rows)
