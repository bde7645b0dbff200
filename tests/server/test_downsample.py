"""Unit tests of server.downsample: what a chart of a long metric history is allowed to lose."""

from __future__ import annotations

import math
import random

import pytest

from server.downsample import downsample


def _noisy(n: int, seed: int = 0) -> tuple[list[int], list[float]]:
    rng = random.Random(seed)
    return list(range(n)), [math.sin(i / 50) + rng.gauss(0, 0.3) for i in range(n)]


def _is_subsequence(small: list, big: list) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


@pytest.mark.parametrize("max_points", [4, 5, 10, 101, 1000])
@pytest.mark.parametrize("n", [1001, 5000, 12_345])
def test_keeps_ends_extremes_and_order(n: int, max_points: int) -> None:
    steps, values = _noisy(n, seed=n + max_points)
    values[n // 3] = 50.0  # a spike and a dip a stride would miss
    values[2 * n // 3] = -50.0
    s, v = downsample(steps, values, max_points)
    assert 0 < len(s) == len(v) <= max_points
    assert (s[0], v[0]) == (steps[0], values[0])
    assert (s[-1], v[-1]) == (steps[-1], values[-1])
    assert max(v) == 50.0 and min(v) == -50.0
    assert s == sorted(set(s)), "steps strictly increasing: order kept, no duplicates"
    assert all(values[step] == value for step, value in zip(s, v, strict=True))


def test_every_bucket_keeps_its_min_and_max() -> None:
    steps, values = _noisy(1002, seed=3)
    s, _ = downsample(steps, values, 12)  # 1000 inner points: 5 buckets of 200
    kept = set(s)
    for b in range(5):
        bucket = range(1 + 200 * b, 1 + 200 * (b + 1))
        assert min(bucket, key=values.__getitem__) in kept
        assert max(bucket, key=values.__getitem__) in kept


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000])
def test_short_histories_come_back_unchanged(n: int) -> None:
    steps, values = _noisy(n)
    assert downsample(steps, values, 1000) == (steps, values)
    assert downsample(steps, values, max(n, 1)) == (steps, values)


def test_max_points_one_two_three() -> None:
    steps = list(range(10, 20))
    values = [0.0, 1.0, 2.0, 9.0, 3.0, 2.0, -4.0, 1.0, 0.5, 1.0]
    assert downsample(steps, values, 1) == ([19], [1.0])
    assert downsample(steps, values, 2) == ([10, 19], [0.0, 1.0])
    # the inner point farthest from the mean of the ends (0.5) joins them
    assert downsample(steps, values, 3) == ([10, 13, 19], [0.0, 9.0, 1.0])


def test_odd_budgets_and_repeated_steps() -> None:
    steps = [0, 1, 1, 2, 2, 3, 4, 5, 5, 6]  # a resumed run logs some steps twice
    values = [5.0, 1.0, 7.0, 2.0, 8.0, 0.0, 3.0, 9.0, 4.0, 6.0]
    s, v = downsample(steps, values, 7)  # 2 buckets of 4 inner points
    assert len(s) <= 7
    assert (s[0], v[0], s[-1], v[-1]) == (0, 5.0, 6, 6.0)
    assert 0.0 in v and 9.0 in v
    assert _is_subsequence(list(zip(s, v, strict=True)), list(zip(steps, values, strict=True)))


def test_nan_never_wins_a_bucket() -> None:
    values = [1.0] + [math.nan] * 50 + [2.0, -3.0] + [math.nan] * 46 + [1.5]
    s, v = downsample(list(range(100)), values, 6)
    assert -3.0 in v and 2.0 in v
    assert len(s) <= 6 and s[0] == 0 and s[-1] == 99


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_points"):
        downsample([0, 1], [0.0, 1.0], 0)
    with pytest.raises(ValueError, match="length"):
        downsample([0, 1], [0.0], 5)


def test_a_100k_history_is_bounded() -> None:
    steps, values = _noisy(100_000)
    s, v = downsample(steps, values, 1000)
    assert len(s) <= 1000 and len(v) == len(s) and s[0] == 0 and s[-1] == 99_999
    # its speed is a benchmark figure (bench/bench_dashboard.py), not a test
