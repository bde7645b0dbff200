"""The run summary: the part of result.json (igm_core.results.assemble) the service keeps with a
finished experiment, and what the API's `summary` field holds. Declared here once: the worker
writes it (`of`), the API describes it (DESCRIPTION), and `as_result` turns it back into what
igm_core.compare reads. Torch-free.

    test  the fused test metrics of the selected checkpoint (acc, macro_f1, map, loss) and each
          modality's accuracy (modality_acc)
    val   its validation metrics, without the per-modality confidence
    best  which checkpoint was selected: stage, epoch, metric, score
    run   how the run went: wall_time_s, steps, device, precision, torch, sizes
    balance  BalanceBenchmark's measures (igm_core/balance.py): imbalance (each modality's
          Shapley value of fused test accuracy, their gap, every coalition's accuracy; null with
          one modality) and cost (FLOPs of a training step of each kind, of the whole run);
          absent from runs finished before result.json carried it
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

PARTS = ("test", "val", "best", "run", "balance")
DROPPED_FROM_VAL = ("confidence",)  # per-modality detail: result.json keeps it
DESCRIPTION = "test metrics of a finished run"  # the API's words for it (its schema is recorded)


class RunSummary(TypedDict, total=False):
    test: dict[str, Any]
    val: dict[str, Any]
    best: dict[str, Any]
    run: dict[str, Any]
    balance: dict[str, Any]


def of(result: Mapping[str, Any]) -> RunSummary:
    """The summary of a result.json mapping (`balance` when the result has it)."""
    out: RunSummary = {
        "test": result["test"],
        "val": {k: v for k, v in result["val"].items() if k not in DROPPED_FROM_VAL},
        "best": result["best"],
        "run": result["run"],
    }
    if result.get("balance") is not None:
        out["balance"] = result["balance"]
    return out


def as_result(spec: dict[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """What igm_core.compare reads of a result (its spec, test metrics, run figures and balance
    measures), from a stored summary and the experiment's resolved spec."""
    return {
        "spec": spec,
        "test": summary.get("test"),
        "run": summary.get("run", {}),
        "balance": summary.get("balance"),
    }
