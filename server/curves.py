"""Per-step statistics of seed groups, for the compare page's curves: the igm compare statistics
(mean and a 95% Student t-interval over seeds) computed at every point of a step grid.

Each run's history is first averaged within the bins of a common grid (bins of equal width over
the group's steps), so runs whose points fall at different steps still meet in a bin; then, per
bin, the runs that have a point there give the mean, the sample std and the t-interval (none
with fewer than MIN_SEEDS runs, as in the report; clipped to [0, 1] for an accuracy-like key).
Runs that differ only in their seed log at the same steps; with as many bins as distinct steps
(at most max_points), evenly spaced points keep a bin each. Where the points of a curve stop for
a stretch (a key of one modality while another modality's stage trains) a point with no value
(`null`) marks the break, so a chart does not draw a line across it. Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# t quantiles of every interval the web process shows (here and in igm_core.compare.stats, which
# imports it lazily for the CLI); loaded with the app rather than on the first comparison opened
from scipy import special

from igm_core.compare.labels import differing, flatten
from igm_core.compare.pairs import MIN_SEEDS

MAX_DIFF_KEYS = 200
GAP_FACTOR = 3.0  # a stretch this many times a curve's median spacing, without points, breaks it
BOUNDED = ("acc", "macro_f1", "map")  # last parts of the keys whose values lie in [0, 1]


def bounds_of(key: str) -> tuple[float, float] | None:
    """[0, 1] for an accuracy-like key (`val/fused/acc`), else None."""
    return (0.0, 1.0) if key.rsplit("/", 1)[-1] in BOUNDED else None


def _t_quantiles(dof: np.ndarray, confidence: float) -> np.ndarray:
    out = np.full(dof.shape, np.nan)
    ok = dof > 0
    out[ok] = special.stdtrit(dof[ok], (1.0 + confidence) / 2.0)
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
    histories: Sequence[tuple[np.ndarray, np.ndarray]],
    max_points: int,
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> dict[str, list[Any]]:
    """The group curve of several runs' histories of one key: steps, mean, lo, hi and n (runs
    with a point there) at no more than max_points steps (and a break point, n = 0, in each gap);
    lo and hi are None where n < MIN_SEEDS, and clipped to `bounds` when given."""
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
    half[n < MIN_SEEDS] = np.nan
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = np.maximum(lo, bounds[0]), np.minimum(hi, bounds[1])
    return _broken(np.round(steps).astype(np.int64), mean, lo, hi, n.astype(np.int64))


def _broken(steps: np.ndarray, *columns: np.ndarray) -> dict[str, list[Any]]:
    """The curve as lists, with a point of no value (n = 0) in the middle of each stretch longer
    than GAP_FACTOR times the median spacing of its points."""
    gaps = np.diff(steps)
    wide = np.flatnonzero(gaps > GAP_FACTOR * np.median(gaps)) if len(gaps) >= 2 else []
    at = np.asarray(wide, dtype=np.int64) + 1
    steps = np.insert(steps, at, steps[at - 1] + gaps[at - 1] // 2)
    mean, lo, hi, n = (np.insert(c.astype(np.float64), at, np.nan) for c in columns)

    def listed(a: np.ndarray) -> list[float | None]:
        return [None if not np.isfinite(x) else float(x) for x in a]

    return {
        "steps": steps.tolist(),
        "mean": listed(mean),
        "lo": listed(lo),
        "hi": listed(hi),
        "n": np.nan_to_num(n).astype(int).tolist(),
    }


def spec_differences(specs: Sequence[Mapping[str, Any]]) -> dict[str, list[str | None]]:
    """The dotted keys whose values are not the same in every spec, with each spec's value
    (None where a spec lacks the key), at most MAX_DIFF_KEYS of them, sorted (the flattening
    and comparison that label seed groups: igm_core.compare.labels)."""
    flat = [flatten(s) for s in specs]
    return {k: [f.get(k) for f in flat] for k in differing(flat)[:MAX_DIFF_KEYS]}
