"""Creation: one experiment from a resolved spec, or a sweep's experiments with their sweep."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from igm_core.spec import Spec
from server.models import QUEUED, Experiment, ExperimentTag, Sweep, utcnow


def new_id() -> str:
    return uuid.uuid4().hex


def _experiment(
    spec: Spec,
    *,
    priority: int,
    tags: list[str],
    queue: str,
    max_attempts: int,
    sweep_id: str | None,
    sweep_values: dict[str, Any] | None = None,
    submitted_by: str = "local",
) -> Experiment:
    now = utcnow()
    exp = Experiment(
        id=new_id(),
        name=spec.name,
        method=spec.method.name,
        dataset=spec.dataset.name,
        spec=spec.to_dict(),
        spec_hash=spec.hash(),
        status=QUEUED,
        priority=priority,
        queue=queue,
        sweep_id=sweep_id,
        sweep_values=sweep_values,
        submitted_by=submitted_by,
        attempts=0,
        max_attempts=max_attempts,
        cancel_requested=False,
        created_at=now,
        updated_at=now,
    )
    exp.tags = [ExperimentTag(tag=t) for t in dict.fromkeys(tags)]
    return exp


def create_experiment(
    session: Session,
    *,
    spec: Spec,
    priority: int = 0,
    tags: list[str] = (),
    queue: str,
    max_attempts: int,
    submitted_by: str = "local",
) -> Experiment:
    exp = _experiment(
        spec,
        priority=priority,
        tags=list(tags),
        queue=queue,
        max_attempts=max_attempts,
        sweep_id=None,
        submitted_by=submitted_by,
    )
    session.add(exp)
    session.commit()
    return exp


def create_sweep(
    session: Session,
    *,
    name: str,
    base_spec: dict[str, Any],
    grid: dict[str, Any],
    specs: list[Spec],
    priority: int = 0,
    tags: list[str] = (),
    queue: str,
    max_attempts: int,
    random: dict[str, Any] | None = None,
    values: list[dict[str, Any]] | None = None,
    submitted_by: str = "local",
) -> tuple[Sweep, list[Experiment]]:
    """One experiment per spec, grouped under a new sweep, committed together; `values` are the
    swept values of each point, kept with its experiment."""
    sweep = Sweep(
        id=new_id(),
        name=name,
        base_spec=base_spec,
        grid=grid,
        random=random,
        size=len(specs),
        created_at=utcnow(),
    )
    session.add(sweep)
    session.flush()
    exps = [
        _experiment(
            s,
            priority=priority,
            tags=list(tags),
            queue=queue,
            max_attempts=max_attempts,
            sweep_id=sweep.id,
            sweep_values=point,
            submitted_by=submitted_by,
        )
        for s, point in zip(specs, values or [None] * len(specs), strict=True)
    ]
    session.add_all(exps)
    session.commit()
    return sweep, exps
