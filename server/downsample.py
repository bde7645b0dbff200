"""Downsampling of metric histories for charts: keep the shape, drop the bulk.

`downsample` keeps the first and the last point and splits the points between them into equal
buckets; from each bucket it keeps the point with the smallest and the one with the largest value,
in step order. Spikes and dips therefore survive (the global minimum and maximum are always kept
when there is room for one bucket), which a plain stride would lose. NaN values never win a
bucket; a bucket of NaNs only contributes its first point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["downsample"]


def _first_per_bucket(mask: np.ndarray, bucket: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """For each bucket, the first index where `mask` holds; `fallback[b]` when none does."""
    hits = np.flatnonzero(mask)
    out = fallback.copy()
    found, first = np.unique(bucket[hits], return_index=True)
    out[found] = hits[first]
    return out


def _extreme_of_middle(values: np.ndarray) -> int:
    """Index (into `values`) of the inner point farthest from the mean of the two end points."""
    inner = values[1:-1]
    if np.all(np.isnan(inner)):
        return 1
    ends = np.nanmean(values[[0, -1]]) if not np.all(np.isnan(values[[0, -1]])) else 0.0
    return int(np.nanargmax(np.abs(inner - ends))) + 1


def _bucket_extremes(values: np.ndarray, max_points: int) -> np.ndarray:
    """Sorted indices to keep: both ends plus each bucket's min and max."""
    n = len(values)
    inner = values[1:-1]
    k = (max_points - 2) // 2  # buckets between the ends, two points each
    bounds = (np.arange(k + 1) * len(inner)) // k  # strictly increasing: len(inner) > k
    starts = bounds[:-1]
    bucket = np.repeat(np.arange(k), np.diff(bounds))
    with np.errstate(invalid="ignore"):
        lows = np.fmin.reduceat(inner, starts)
        highs = np.fmax.reduceat(inner, starts)
    lo_idx = _first_per_bucket(inner == lows[bucket], bucket, starts)
    hi_idx = _first_per_bucket(inner == highs[bucket], bucket, starts)
    return np.unique(np.concatenate(([0], lo_idx + 1, hi_idx + 1, [n - 1])))


def downsample(
    steps: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray, max_points: int
) -> tuple[list[int], list[float]]:
    """At most `max_points` (step, value) pairs of a history, in the order given.

    Histories of at most `max_points` points come back unchanged. Otherwise the first and last
    points are kept and the rest is split into (max_points - 2) // 2 buckets, each contributing
    its minimum and maximum. With max_points == 1 only the last point is kept; with 3, the inner
    point farthest from the mean of the end points joins them.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    if len(steps) != len(values):
        raise ValueError(f"steps and values differ in length: {len(steps)} != {len(values)}")
    step_arr = np.asarray(steps, dtype=np.int64)
    value_arr = np.asarray(values, dtype=np.float64)
    n = len(value_arr)
    if n <= max_points:
        keep = np.arange(n)
    elif max_points == 1:
        keep = np.array([n - 1])
    elif max_points == 2:
        keep = np.array([0, n - 1])
    elif max_points == 3:
        keep = np.array([0, _extreme_of_middle(value_arr), n - 1])
    else:
        keep = _bucket_extremes(value_arr, max_points)
    return step_arr[keep].tolist(), value_arr[keep].tolist()
