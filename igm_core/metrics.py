"""Classification metrics in torch (they run where the predictions are, CPU or GPU).

Definitions follow scikit-learn's: macro-F1 over the classes present in labels or predictions;
mAP is the macro average over classes with at least one positive of the step-wise average
precision, sum_n (R_n - R_{n-1}) P_n, with one point per distinct score.
"""

from __future__ import annotations

import torch


def accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred == y).double().mean()) if y.numel() else 0.0


def confusion_matrix(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Rows: true class, columns: predicted class."""
    idx = y.long() * n_classes + pred.long()
    return torch.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def macro_f1(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> float:
    cm = confusion_matrix(pred, y, n_classes).double()
    tp = cm.diag()
    support = cm.sum(1)
    predicted = cm.sum(0)
    present = (support + predicted) > 0
    f1 = 2 * tp / (support + predicted).clamp_min(1)
    return float(f1[present].mean()) if present.any() else 0.0


def average_precision(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Average precision of one class: scores (N,), positive (N,) bool."""
    order = torch.argsort(scores, descending=True, stable=True)
    s = scores[order]
    pos = positive[order].double()
    tps = pos.cumsum(0)
    fps = (1 - pos).cumsum(0)
    # one point per distinct score: the last index of each run of equal scores
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]
    tps, fps = tps[last], fps[last]
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    prev = torch.cat([recall.new_zeros(1), recall[:-1]])
    return float(((recall - prev) * precision).sum())


def mean_average_precision(probs: torch.Tensor, y: torch.Tensor, n_classes: int) -> float:
    aps = [average_precision(probs[:, c], y == c) for c in range(n_classes) if bool((y == c).any())]
    return sum(aps) / len(aps) if aps else 0.0


def summarize(probs: torch.Tensor, y: torch.Tensor, n_classes: int) -> dict[str, float]:
    """acc, macro_f1, map and the mean negative log-likelihood of fused probabilities."""
    pred = probs.argmax(1)
    nll = -probs.gather(1, y[:, None]).clamp_min(1e-12).log().mean()
    return {
        "acc": accuracy(pred, y),
        "macro_f1": macro_f1(pred, y, n_classes),
        "map": mean_average_precision(probs, y, n_classes),
        "loss": float(nll),
    }
