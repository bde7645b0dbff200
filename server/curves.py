"""Per-step statistics of seed groups, for the compare page's curves: the igm compare statistics
(mean and a 95% Student t-interval over seeds) computed at every point of a step grid.

Each run's history is first averaged within the bins of a common grid (bins of equal width over
the group's steps), so runs whose points fall at different steps still meet in a bin; then, per
bin, the runs that have a point there give the mean, the sample std and the t-interval (none with
a single run). Runs that differ only in their seed log at the same steps; with as many bins as
distinct steps (at most max_points), evenly spaced points keep a bin each. Torch-free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MAX_DIFF_KEYS = 200


def _t_quantiles(dof: np.ndarray, confidence: float) -> np.ndarray:
    from scipy import stats

    out = np.full(dof.shape, np.nan)
    ok = dof > 0
    out[ok] = stats.t.ppf((1.0 + confidence) / 2.0, dof[ok])
    return out


def binned(steps: np.ndarray, values: np.ndarray, edges_max: int, bins: int) -> np.ndarray:
    """Per bin of [0, edges_max], the mean of the finite values whose steps fall in it (NaN for
    an empty bin), and the mean step of each bin's points (NaN when empty): shape (2, bins)."""
    ok = np.isfinite(values)
    steps, values = steps[ok], values[ok]
    index = np.minimum((steps * bins) // (edges_max + 1), bins - 1).astype(np.int64)
    n = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_value = np.bincount(index, weights=values, minlength=bins) / n
        mean_step = np.bincount(index, weights=steps.astype(np.float64), minlength=bins) / n
    return np.stack([mean_step, mean_value])


def band(
    histories: Sequence[tuple[np.ndarray, np.ndarray]], max_points: int, confidence: float = 0.95
) -> dict[str, list[Any]]:
    """The group curve of several runs' histories of one key: steps, mean, lo, hi and n (runs
    with a point there) at no more than max_points steps; lo and hi are None where n < 2."""
    histories = [(s, v) for s, v in histories if len(s)]
    if not histories:
        return {"steps": [], "mean": [], "lo": [], "hi": [], "n": []}
    last = int(max(s.max() for s, _ in histories))
    distinct = len(np.unique(np.concatenate([s for s, _ in histories])))
    bins = max(1, min(max_points, distinct))
    grids = np.stack([binned(s, v.astype(np.float64), last, bins) for s, v in histories])
    values = grids[:, 1, :]  # (runs, bins)
    n = np.sum(np.isfinite(values), axis=0)
    keep = n > 0
    values, n = values[:, keep], n[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        steps = np.nanmean(grids[:, 0, keep], axis=0)
        mean = np.nanmean(values, axis=0)
        std = np.sqrt(np.nansum((values - mean) ** 2, axis=0) / (n - 1))
        half = _t_quantiles(n - 1, confidence) * std / np.sqrt(n)
    lo, hi = mean - half, mean + half

    def listed(a: np.ndarray) -> list[float | None]:
        return [None if not np.isfinite(x) else float(x) for x in a]

    return {
        "steps": [round(float(s)) for s in steps],
        "mean": listed(mean),
        "lo": listed(lo),
        "hi": listed(hi),
        "n": n.astype(int).tolist(),
    }


def flatten(spec: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A spec as {"dotted.key": JSON text of the value}; lists stay whole."""
    out: dict[str, str] = {}
    for key, value in spec.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = json.dumps(value, sort_keys=True)
    return out


def spec_differences(specs: Sequence[Mapping[str, Any]]) -> dict[str, list[str | None]]:
    """The dotted keys whose values are not the same in every spec, with each spec's value
    (None where a spec lacks the key), at most MAX_DIFF_KEYS of them, sorted."""
    flat = [flatten(s) for s in specs]
    keys = sorted({k for f in flat for k in f})
    differ = [k for k in keys if len({f.get(k) for f in flat}) > 1]
    return {k: [f.get(k) for f in flat] for k in differ[:MAX_DIFF_KEYS]}
