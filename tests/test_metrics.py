"""Fused metrics agree with scikit-learn's definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, average_precision_score, confusion_matrix, f1_score

from igm_core import metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c = 300, 5
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[y]
    logits[:40] = np.round(logits[:40])  # ties in the scores
    probs = torch.softmax(torch.tensor(logits), 1)
    pred = probs.argmax(1).numpy()
    yt = torch.tensor(y)
    assert metrics.accuracy(probs.argmax(1), yt) == pytest.approx(accuracy_score(y, pred))
    assert metrics.macro_f1(probs.argmax(1), yt, c) == pytest.approx(
        f1_score(y, pred, average="macro")
    )
    expected_map = average_precision_score(np.eye(c)[y], probs.numpy(), average="macro")
    assert metrics.mean_average_precision(probs, yt, c) == pytest.approx(expected_map, abs=1e-10)
    assert (
        metrics.confusion_matrix(probs.argmax(1), yt, c).numpy()
        == confusion_matrix(y, pred, labels=range(c))
    ).all()


def test_macro_f1_with_a_class_never_seen_nor_predicted() -> None:
    y = torch.tensor([0, 0, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0])
    assert metrics.macro_f1(pred, y, 6) == pytest.approx(f1_score(y, pred, average="macro"))


def test_summarize_keys() -> None:
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    out = metrics.summarize(probs, torch.tensor([0, 1, 1]), 2)
    assert out["acc"] == pytest.approx(2 / 3)
    assert out["loss"] == pytest.approx(-(np.log(0.9) + np.log(0.8) + np.log(0.4)) / 3, rel=1e-5)
