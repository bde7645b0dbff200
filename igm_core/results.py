"""The result of a finished run: result.json's content, and the files of a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from igm_core import metrics
from igm_core.checkpoint import Best, save_atomic, write_json
from igm_core.tracking import Tracker


def assemble(
    *,
    spec: Any,
    best: Best,
    test: dict[str, Any],
    test_y: torch.Tensor,
    n_classes: int,
    history: list[dict[str, Any]],
    transitions: list[dict[str, float]],
    method_diagnostics: dict[str, Any],
    run: dict[str, Any],
    fusions: dict[str, dict[str, float]] | None = None,
    calibration: dict[str, Any] | None = None,
    balance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """result.json: the spec, validation and test metrics of the selected checkpoint, the
    selection, the diagnostics and how the run went; for methods that fuse unimodal outputs, the
    metrics of every fusion on the selected model (`fusions`) and the validation-fitted
    parameters of the calibrated one (`calibration`); BalanceBenchmark's imbalance and cost
    measures of the run (`balance`, igm_core/balance.py)."""
    extra: dict[str, Any] = {}
    if fusions is not None:
        extra["fusions"] = fusions
        extra["calibration"] = calibration
    if balance is not None:
        extra["balance"] = balance
    return {
        "spec": spec.to_dict(),
        "spec_hash": spec.hash(),
        "val": best.val,
        "test": {k: test[k] for k in ("acc", "macro_f1", "map", "loss")}
        | {"modality_acc": test["modality_acc"]},
        "best": {
            "stage": best.stage,
            "epoch": best.epoch,
            "metric": spec.selection,
            "score": best.score,
        },
        "diagnostics": {
            "epochs": history,
            "transitions": transitions,
            "confusion_matrices": {
                name: metrics.confusion_matrix(pred, test_y, n_classes).tolist()
                for name, pred in test["preds"].items()
            },
            "test_confidence": test["confidence"],
            **method_diagnostics,
        },
        "run": run,
        **extra,
    }


def write_run_dir(
    out: Path,
    result: dict[str, Any],
    best_model: dict[str, torch.Tensor],
    final_model: dict[str, torch.Tensor],
    tracker: Tracker,
) -> None:
    """best_model.pt, final_model.pt, result.json, spec.json and confusion_matrices.json, each
    also sent to the tracker (models under checkpoints/)."""
    out.mkdir(parents=True, exist_ok=True)
    spec = result["spec"]
    save_atomic(out / "best_model.pt", {"spec": spec, "model": best_model, "best": result["best"]})
    save_atomic(out / "final_model.pt", {"spec": spec, "model": final_model})
    write_json(out / "result.json", result)
    write_json(out / "spec.json", spec)
    write_json(out / "confusion_matrices.json", result["diagnostics"]["confusion_matrices"])
    for name in ("result.json", "spec.json", "confusion_matrices.json"):
        tracker.log_artifact(out / name)
    for name in ("final_model.pt", "best_model.pt"):
        tracker.log_artifact(out / name, "checkpoints")
