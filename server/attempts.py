"""An experiment's metric histories across its attempts' MLflow runs, each step once.

A run taken over by another worker (or retried) resumes from its last checkpoint in a new MLflow
run; the steps between that checkpoint and the crash were logged by both attempts. The stitched
history keeps an earlier attempt's points up to the step the next attempt resumed from and the
next attempt's points from there on (its value wins at a step both logged). An attempt whose
resume step is unknown (None: it died before loading its checkpoint) logged nothing and is left
out. Torch-free; MLflow is read through a server.metric_store.MetricStore.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from server.downsample import downsample
from server.metric_store import Downsampled, History, MetricStore

Runs = Sequence[tuple[str, int | None]]  # (run id, step it resumed from), in attempt order


def merge(parts: Sequence[tuple[int | None, History | None]]) -> History | None:
    """One history from (resume step, history) per attempt in order; None when all are empty."""
    steps: np.ndarray = np.zeros(0, dtype=np.int64)
    values: np.ndarray = np.zeros(0)
    seen = False
    for i, (from_step, history) in enumerate(parts):
        if i and from_step is None:
            continue
        if i:
            keep = steps <= from_step
            steps, values = steps[keep], values[keep]
        if history is None or not len(history[0]):
            continue
        seen = True
        new_steps, new_values = history
        # this attempt wins at every step it logged; within one run the last point of a step wins
        older = ~np.isin(steps, new_steps)
        steps = np.concatenate([steps[older], new_steps])
        values = np.concatenate([values[older], new_values])
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
        last = np.append(steps[1:] != steps[:-1], True)
        steps, values = steps[last], values[last]
    return (steps, values) if seen and len(steps) else None


def metric_keys(store: MetricStore, runs: Runs) -> list[str]:
    """Every metric key any attempt logged, sorted."""
    keys: set[str] = set()
    for i, (run_id, from_step) in enumerate(runs):
        if i and from_step is None:
            continue
        keys.update(store.metric_keys(run_id))
    return sorted(keys)


def metric_history(
    store: MetricStore, runs: Runs, key: str, after_step: int | None = None
) -> History | None:
    """The stitched history of one key (only steps after after_step, when given); None when no
    attempt logged it (there)."""
    if len(runs) == 1:  # the common case: one run, read as it is
        return store.metric_history(runs[0][0], key, after_step)
    parts = []
    for i, (run_id, from_step) in enumerate(runs):
        history = None
        if not i or from_step is not None:
            history = store.metric_history(run_id, key, after_step)
        parts.append((from_step, history))
    return merge(parts)


def metric_downsampled(
    store: MetricStore, runs: Runs, key: str, max_points: int, after_step: int | None = None
) -> Downsampled | None:
    """server.downsample.downsample of the stitched history, and its number of points. One run
    (the common case) is downsampled by the store itself (in SQL on a server database)."""
    if len(runs) == 1:
        return store.metric_downsampled(runs[0][0], key, max_points, after_step)
    history = metric_history(store, runs, key, after_step)
    if history is None:
        return None
    steps, values = downsample(*history, max_points)
    return steps, values, len(history[0])
