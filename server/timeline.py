"""An experiment's training timeline for its charts: stages (which modalities each trains, from
which step to which), the steps where epochs end, and the run's clock (step -> seconds).

`read` gathers what MLflow holds of it, stitched across the experiment's attempts
(server.attempts); the rest are pure functions. The resolved spec gives the stages and their
epochs; the steps of the validation metric (logged once at every epoch's end) give the epoch
boundaries, exactly where they have been reached. Beyond them the steps per epoch (every epoch
of a run has the same number of batches) extend the plan; before any epoch has ended, the
progress record's total_steps does. The clock runs from the first attempt's start to the last
point logged, waits between attempts included. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from igm_core.spec import ResolvedSpec
from server import attempts

if TYPE_CHECKING:
    from server.metric_store import MetricStore

EPOCH_KEY = "val/fused/acc"  # logged at every epoch's end, for every method
CLOCK_KEYS = ("train/",)  # per-step keys: their timestamps are the run's clock

Points = list[tuple[int, int]]  # (step, timestamp in ms)


@dataclass
class Logged:
    """What the timeline reads from MLflow: every epoch end's point, each clock key's last
    point, the first attempt's start and the latest run's MLflow experiment."""

    epoch_ends: Points = field(default_factory=list)
    last_points: Points = field(default_factory=list)
    start_ms: int | None = None
    experiment_id: str | None = None


def read(store: MetricStore, runs: attempts.Runs) -> Logged:
    """The timeline's points of an experiment's attempts (`runs`, at least one), stitched."""
    ends = attempts.metric_times(store, runs, EPOCH_KEY)
    last = [
        point
        for key in attempts.metric_keys(store, runs)
        if key.startswith(CLOCK_KEYS)
        for point in attempts.metric_times(store, runs, key, last_only=True)
    ]
    first = store.run_info(runs[0][0])
    latest = first if len(runs) == 1 else store.run_info(runs[-1][0])
    return Logged(
        epoch_ends=ends,
        last_points=last,
        start_ms=first["start_time"] if first else None,
        experiment_id=latest["experiment_id"] if latest else None,
    )


def stage_plan(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """[{stage, modalities, epochs}] of a resolved spec ([] when it cannot be read)."""
    try:
        resolved = ResolvedSpec.model_validate(spec)
    except ValidationError:
        return []
    sched = resolved.schedule
    if sched.stage_epochs:
        order = sched.modality_order or list(resolved.modalities)
        return [
            {"stage": i, "modalities": [order[i % len(order)]], "epochs": e}
            for i, e in enumerate(sched.stage_epochs)
        ]
    return [{"stage": 0, "modalities": resolved.used_modalities, "epochs": sched.epochs or 1}]


def build(
    spec: dict[str, Any], epoch_end_steps: Sequence[int], total_steps: int | None
) -> dict[str, Any]:
    """Stages with their step ranges, every epoch's end step, and the steps per epoch (None
    while neither an epoch end nor the total number of steps is known)."""
    plan = stage_plan(spec)
    total_epochs = sum(s["epochs"] for s in plan)
    ends = sorted({int(s) for s in epoch_end_steps if s > 0})[:total_epochs]
    per_epoch: float | None = None
    if ends:
        per_epoch = float(ends[0])
    elif total_steps and total_epochs:
        per_epoch = total_steps / total_epochs

    def end_of(epoch: int) -> int | None:  # the step where global epoch `epoch` (1-based) ends
        if epoch <= 0:
            return 0
        if epoch <= len(ends):
            return ends[epoch - 1]
        if per_epoch is None:
            return None
        last = ends[-1] if ends else 0
        return round(last + (epoch - len(ends)) * per_epoch)

    stages, done = [], 0
    for stage in plan:
        start, end = end_of(done), end_of(done + stage["epochs"])
        stages.append({**stage, "start_step": start, "end_step": end, "reached": done <= len(ends)})
        done += stage["epochs"]
    epochs = [end_of(e) for e in range(1, total_epochs + 1)]
    return {
        "stages": stages,
        "epoch_end_steps": [e for e in epochs if e is not None],
        "epochs_logged": len(ends),
        "steps_per_epoch": per_epoch,
    }


def clock(points: Sequence[tuple[int, int]], start_ms: int | None) -> dict[str, list[float]]:
    """(step, seconds since the run started) from (step, timestamp ms) points: the epoch ends
    and the last point of each training key, with the run's start at step 0. A chart's wall-time
    axis interpolates between them (steps of one epoch take about the same time)."""
    by_step: dict[int, int] = {}
    for step, ts in points:
        by_step[step] = min(ts, by_step.get(step, ts))
    if start_ms is not None and by_step:
        by_step.setdefault(0, min(start_ms, min(by_step.values())))
    if not by_step:
        return {"steps": [], "seconds": []}
    steps = sorted(by_step)
    origin = min(by_step.values())
    seconds = np.maximum.accumulate([(by_step[s] - origin) / 1000.0 for s in steps])
    return {"steps": steps, "seconds": seconds.tolist()}
