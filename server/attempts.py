"""An experiment's attempts: which MLflow runs it has, from which step each resumed, and its
metric histories stitched across those runs, each step once. Every attempt rule lives here:
worker.runner and crud.set_mlflow_run write with it, the routes and the timeline read with it.

- Each attempt logs into an MLflow run of its own. The row keeps them in attempt order in
  `attempt_runs` ([{"attempt", "run_id", "from_step"}], written by record_run) and the latest
  in `mlflow_run_id`; a row from before attempt_runs existed has its one run, from step 0.
- from_step: 0 for an attempt that starts from scratch (no checkpoint); None while an attempt
  that found a checkpoint has not loaded it yet (it has logged nothing); then the step of the
  checkpoint it resumed from.
- An attempt stopped by its worker's shutdown (it kept its checkpoint and went back to the
  queue, crud.requeue) has `"ended": "stopped"` in its entry; it does not count against the
  attempt cap.
- Stitching: a run taken over by another worker (or retried) resumes from its last checkpoint,
  so the steps between that checkpoint and the stop were logged by both attempts. The stitched
  history keeps an earlier attempt's points up to the step the next attempt resumed from and the
  next attempt's points from there on (its value wins at a step both logged). An attempt whose
  resume step is unknown logged nothing and is left out.
Torch-free; MLflow is read through a server.metric_store.MetricStore.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from server.downsample import downsample

if TYPE_CHECKING:  # the rules themselves read no store: the row's writers import them too
    from server.metric_store import Downsampled, History, MetricStore

Run = tuple[str, int | None]  # (MLflow run id, step it resumed from)
Runs = Sequence[Run]  # in attempt order

# ----------------------------------------------------------------------------- writing


def start_step(has_checkpoint: bool) -> int | None:
    """An attempt's from_step when it starts: 0 from scratch, None until it resumes."""
    return None if has_checkpoint else 0


def record_run(
    attempt_runs: list[dict[str, Any]] | None,
    current_run_id: str | None,
    *,
    run_id: str,
    attempt: int | None,
    from_step: int | None,
) -> list[dict[str, Any]]:
    """The row's attempt runs with this attempt's run appended (or, for a run already listed,
    its from_step set: the step its checkpoint resumed from). A row's run from before attempt
    runs were recorded (`current_run_id`) comes first, from step 0."""
    runs = [dict(r) for r in attempt_runs or []]
    if not runs and current_run_id and current_run_id != run_id:
        runs.append({"attempt": None, "run_id": current_run_id, "from_step": 0})
    mine = next((r for r in runs if r["run_id"] == run_id), None)
    if mine is None:
        runs.append({"attempt": attempt, "run_id": run_id, "from_step": from_step})
    else:
        mine["from_step"] = from_step
    return runs


def mark_stopped(attempt_runs: list[dict[str, Any]] | None, attempt: int) -> list[dict]:
    """The row's attempt runs with attempt `attempt`'s run marked as stopped (its worker shut
    down); unchanged when that attempt started no run (it stopped while waiting for MLflow)."""
    runs = [dict(r) for r in attempt_runs or []]
    for r in runs:
        if r["attempt"] == attempt:
            r["ended"] = "stopped"
    return runs


def runs_of(attempt_runs: list[dict[str, Any]] | None, mlflow_run_id: str | None) -> list[Run]:
    """(MLflow run id, step it resumed from) of each attempt that has a run, in order."""
    if attempt_runs:
        return [(r["run_id"], r.get("from_step")) for r in attempt_runs]
    return [(mlflow_run_id, 0)] if mlflow_run_id else []


# ----------------------------------------------------------------------------- stitching


def logged(runs: Runs) -> Iterator[tuple[int, str]]:
    """(index, run id) of the attempts that may have logged: the first, and each later one
    whose resume step is known."""
    for i, (run_id, from_step) in enumerate(runs):
        if not i or from_step is not None:
            yield i, run_id


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
    for _, run_id in logged(runs):
        keys.update(store.metric_keys(run_id))
    return sorted(keys)


def metric_history(
    store: MetricStore, runs: Runs, key: str, after_step: int | None = None
) -> History | None:
    """The stitched history of one key (only steps after after_step, when given); None when no
    attempt logged it (there)."""
    if len(runs) == 1:  # the common case: one run, read as it is
        return store.metric_history(runs[0][0], key, after_step)
    read = dict(logged(runs))
    return merge(
        [
            (from_step, store.metric_history(read[i], key, after_step) if i in read else None)
            for i, (_, from_step) in enumerate(runs)
        ]
    )


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


def metric_times(
    store: MetricStore, runs: Runs, key: str, last_only: bool = False
) -> list[tuple[int, int]]:
    """(step, timestamp in ms) of one key's stitched points, each step once; with last_only the
    last of them (the last point of each attempt, stitched: an index seek per attempt)."""
    if len(runs) == 1:
        return store.metric_times(runs[0][0], key, last_only)
    read = dict(logged(runs))
    parts = []
    for i, (_, from_step) in enumerate(runs):
        points = store.metric_times(read[i], key, last_only) if i in read else []
        times = (np.array([s for s, _ in points], dtype=np.int64), np.array([t for _, t in points]))
        parts.append((from_step, times if points else None))
    stitched = merge(parts)
    if stitched is None:
        return []
    points = [(int(s), int(t)) for s, t in zip(*stitched, strict=True)]
    return points[-1:] if last_only else points
