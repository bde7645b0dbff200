"""Statistics of seed groups: Student t-intervals of a mean and of paired differences.

scipy is imported only to compute an interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, ...]:
    """(mean, sample std, lower, upper) of a Student t-interval for the mean.

    With one value: (value, nan, nan, nan), there is no interval. With zero spread the interval
    is the mean itself.
    """
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    mean = math.fsum(values) / n
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    from scipy import stats

    half = float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def paired_diff(
    a: dict[int, float], b: dict[int, float], confidence: float = 0.95
) -> tuple[float, float, float, int]:
    """(mean, lower, upper, n) of b[s] - a[s] over the seeds both have (paired t-interval)."""
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("no seed in common")
    mean, _, lo, hi = mean_ci([b[s] - a[s] for s in common], confidence)
    return mean, lo, hi, len(common)
