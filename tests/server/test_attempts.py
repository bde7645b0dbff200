"""server.attempts without a store: histories stitched across attempts, each step once, the
later attempt winning from the step it resumed from."""

from __future__ import annotations

import numpy as np

from server import attempts


def hist(steps, value: float) -> tuple[np.ndarray, np.ndarray]:
    steps = np.asarray(steps, dtype=np.int64)
    return steps, np.full(len(steps), value)


def test_merge_keeps_each_step_once_and_the_later_attempt_wins_from_its_resume_step() -> None:
    first = hist(range(1, 9), 1.0)  # logged steps 1..8, its checkpoint was at step 5
    second = hist(range(6, 11), 2.0)  # resumed from 5
    steps, values = attempts.merge([(0, first), (5, second)])
    assert steps.tolist() == list(range(1, 11))
    assert values.tolist() == [1.0] * 5 + [2.0] * 5
    # an epoch-end key logged at the checkpoint step itself stays from the first attempt
    steps, values = attempts.merge([(0, hist([5, 8], 1.0)), (5, hist([10], 2.0))])
    assert steps.tolist() == [5, 10] and values.tolist() == [1.0, 2.0]
    # an attempt that died before resuming (None) logged nothing and changes nothing
    steps, _ = attempts.merge([(0, first), (None, None), (5, second)])
    assert steps.tolist() == list(range(1, 11))
    # a third attempt resumed from an earlier checkpoint than the second reached
    steps, values = attempts.merge([(0, first), (5, second), (7, hist([8, 9], 3.0))])
    assert steps.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert values.tolist() == [1.0] * 5 + [2.0, 2.0, 3.0, 3.0]
    assert attempts.merge([(0, None), (3, None)]) is None
