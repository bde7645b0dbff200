"""Evaluating a model on a split: fused metrics, each head's accuracy and confidence, and the
flat metric keys ("val/fused/acc", "val/<modality>/acc", ...) a tracker receives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from igm_core import metrics
from igm_core.methods.base import Method

EVAL_BATCH = 512


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    method: Method,
    split: Any,
    n_classes: int,
    device: torch.device,
    autocast: Callable,
    fit_fusion: bool = False,
) -> dict[str, Any]:
    """Fused metrics, each evaluated head's accuracy and confidence, the predictions and logits.

    fit_fusion: fit the fusion's parameters on this split's labels first (`Method.calibrate`);
    the trainer asks for it on the validation split only.
    """
    model.eval()
    mods = method.eval_modalities()
    chunks: dict[str, list[torch.Tensor]] = {m: [] for m in mods}
    for xs, _ in split.batches(EVAL_BATCH, modalities=mods, device=device):
        with autocast():
            for m in mods:
                chunks[m].append(model.logits(m, xs[m]).float())
    model.train()
    y = split.y.to(device)
    logits = {m: torch.cat(c) for m, c in chunks.items()}
    calibration = method.calibrate(logits, y) if fit_fusion else {}
    fused = method.fuse(logits)
    out = metrics.summarize(fused, y, n_classes)
    out["modality_acc"] = {m: metrics.accuracy(v.argmax(1), y) for m, v in logits.items()}
    conf = {m: float(v.softmax(1).gather(1, y[:, None]).mean()) for m, v in logits.items()}
    out["confidence"] = conf
    out["preds"] = {"fused": fused.argmax(1).cpu()} | {
        m: v.argmax(1).cpu() for m, v in logits.items()
    }
    if calibration:
        out["calibration"] = calibration
    out["logits"] = logits
    return out


def compare_fusions(
    method: Method,
    val: dict[str, Any],
    test: dict[str, Any],
    val_y: torch.Tensor,
    test_y: torch.Tensor,
    n_classes: int,
) -> dict[str, dict[str, float]]:
    """Validation and test metrics of every fusion the method offers, on the same logits.

    `val` must come from an evaluation with fit_fusion (the calibrated fusion's temperatures
    were fitted on its labels); test labels are only scored against.
    """
    table = {}
    for name in method.fusions:
        pv = method.fuse_as(val["logits"], name)
        pt = method.fuse_as(test["logits"], name)
        t = metrics.summarize(pt, test_y.to(pt.device), n_classes)
        table[name] = {"val_acc": metrics.accuracy(pv.argmax(1), val_y.to(pv.device))} | {
            f"test_{k}": v for k, v in t.items()
        }
    return table


def flat_metrics(prefix: str, ev: dict[str, Any]) -> dict[str, float]:
    """An evaluation as tracker metrics: `<prefix>/fused/<metric>`, `<prefix>/<m>/acc`, ..."""
    flat = {f"{prefix}/fused/{k}": ev[k] for k in ("acc", "macro_f1", "map", "loss")}
    accs = ev["modality_acc"]
    for m, acc in accs.items():
        flat[f"{prefix}/{m}/acc"] = acc
        others = [c for o, c in ev["confidence"].items() if o != m]
        flat[f"{prefix}/{m}/confidence"] = ev["confidence"][m]
        if others:
            flat[f"{prefix}/{m}/confidence_ratio"] = ev["confidence"][m] / max(
                sum(others) / len(others), 1e-12
            )
    if len(accs) > 1:
        flat[f"{prefix}/fused/modality_gap"] = max(accs.values()) - min(accs.values())
    return flat


def public(ev: dict[str, Any]) -> dict[str, Any]:
    """An evaluation without its predictions and logits (what history and result.json keep)."""
    return {k: v for k, v in ev.items() if k not in ("preds", "logits")}
