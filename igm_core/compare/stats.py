"""Statistics of seed groups: Student t-intervals of a mean and of paired differences.

A metric bounded to a range (accuracy, macro-F1, mAP lie in [0, 1], a difference of two of them
in [-1, 1]) gets its t-interval clipped to that range: the true mean lies in the range, so the
clipped interval covers it exactly when the t-interval does (the same coverage), and it never
shows an impossible value. The t quantile comes from scipy.special (lighter to import than
scipy.stats, which the web process would load on its first comparison).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Bounds = tuple[float, float] | None


def t_quantile(confidence: float, dof: float) -> float:
    """The two-sided Student t quantile: t_{(1 + confidence) / 2, dof}."""
    from scipy import special

    return float(special.stdtrit(dof, (1.0 + confidence) / 2.0))


def mean_ci(
    values: Sequence[float], confidence: float = 0.95, bounds: Bounds = None
) -> tuple[float, ...]:
    """(mean, sample std, lower, upper) of a Student t-interval for the mean, clipped to
    `bounds` when given.

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
    half = t_quantile(confidence, n - 1) * std / math.sqrt(n)
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return mean, std, lo, hi


def paired_diff(
    a: dict[int, float], b: dict[int, float], confidence: float = 0.95, bounds: Bounds = None
) -> tuple[float, float, float, int]:
    """(mean, lower, upper, n) of b[s] - a[s] over the seeds both have (paired t-interval,
    clipped to `bounds` when given)."""
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("no seed in common")
    mean, _, lo, hi = mean_ci([b[s] - a[s] for s in common], confidence, bounds)
    return mean, lo, hi, len(common)
