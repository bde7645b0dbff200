"""BalanceBenchmark's imbalance and cost measures of a finished run (result.json's `balance`).

Imbalance (BalanceBenchmark, balancemm/evaluation/modalitys.py `Calculate_Shapley`, run on the
test split for the selected model as its train.py does): the value of a coalition S of modalities
is the fused test accuracy with the inputs of every modality outside S set to zero (v(empty) is
the accuracy with every input zero), and each modality's Shapley value is
phi_m = sum over S not holding m of |S|! (M - |S| - 1)! / M! * (v(S + m) - v(S)); the values sum
to v(all) - v(empty). `shapley_gap` (largest minus smallest) is this project's one-number summary
of them; the per-modality values and every coalition's accuracy are kept as well.

Cost (BalanceBenchmark reports training time and FLOPs): the run's wall time is in result.json's
`run`; here, the floating-point operations of one training step of each kind of stage, counted by
torch.utils.flop_counter on a copy of the trained model and method and one training batch, and
`train_flops`, those counts times the steps each stage ran. Work a method does between epochs (a
held-out estimate, prototypes, clustering) is not in it: the methods report such passes in their
diagnostics.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from igm_core import metrics
from igm_core.methods.base import Method, Stage, StepContext


@torch.no_grad()
def zero_input_logits(
    model: torch.nn.Module, split: Any, modalities: list[str], device: torch.device, autocast
) -> dict[str, torch.Tensor]:
    """Each modality's logits (1 x C, eval mode) for an all-zero input of its shape and dtype
    (token ids stay integers: a zero caption is the pad id 0 with its mask off)."""
    model.eval()
    xs, _ = next(iter(split.batches(1, modalities=modalities, device=device)))
    out = {}
    with autocast():
        for m in modalities:
            out[m] = model.logits(m, torch.zeros_like(xs[m])).float()
    model.train()
    return out


def coalition_accuracies(
    method: Method, logits: dict[str, torch.Tensor], zero: dict[str, torch.Tensor], y: torch.Tensor
) -> dict[tuple[str, ...], float]:
    """v(S) for every coalition S (tuples in the modalities' order; () the empty one)."""
    names = list(logits)
    n = next(iter(logits.values())).shape[0]
    values = {}
    for r in range(len(names) + 1):
        for coalition in itertools.combinations(names, r):
            mixed = {m: logits[m] if m in coalition else zero[m].expand(n, -1) for m in names}
            pred = method.fuse(mixed).argmax(1)
            values[coalition] = metrics.accuracy(pred, y.to(pred.device))
    return values


def shapley(values: dict[tuple[str, ...], float], names: list[str]) -> dict[str, float]:
    """Shapley values of the players `names` from the coalition values."""
    n = len(names)
    out = {}
    for m in names:
        others = [o for o in names if o != m]
        phi = 0.0
        for r in range(n):
            weight = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for subset in itertools.combinations(others, r):
                with_m = tuple(o for o in names if o in subset or o == m)
                phi += weight * (values[with_m] - values[subset])
        out[m] = phi
    return out


def imbalance(
    model: torch.nn.Module,
    method: Method,
    split: Any,
    logits: dict[str, torch.Tensor],
    device: torch.device,
    autocast: Callable,
) -> dict[str, Any] | None:
    """The Shapley measure of the test split (None for a one-modality evaluation)."""
    names = list(logits)
    if len(names) < 2:
        return None
    zero = zero_input_logits(model, split, names, device, autocast)
    values = coalition_accuracies(method, logits, zero, split.y)
    phi = shapley(values, names)
    return {
        "shapley_acc": phi,
        "shapley_gap": max(phi.values()) - min(phi.values()),
        "coalition_acc": {"+".join(c) or "none": v for c, v in values.items()},
    }


def step_flops(method: Method, stage: Stage, batch: tuple[dict, torch.Tensor], batches: int) -> int:
    """Floating-point operations of one training step of `stage`, on a copy of the method (and
    of its model): the run's own model and method are left as they are."""
    twin = copy.deepcopy(method)

    def clear() -> None:
        for p in twin.model.parameters():
            p.grad = None

    xs, y = batch
    ctx = StepContext(stage, 0, 0, False, seed=0, batch=0, batches=batches, step_optimizer=clear)
    twin.model.train()
    counter = FlopCounterMode(display=False)
    with counter:
        twin.step(xs, y, ctx)
    return int(counter.get_total_flops())


def cost(method: Method, stages: list[Stage], train: Any, batch_size: int, device) -> dict:
    """FLOPs of one step of each kind of stage, and of every step of the run."""
    batches = train.num_batches(batch_size)
    kinds: dict[tuple, int] = {}
    total = 0
    for stage in stages:
        key = (stage.modalities, stage.loaded)
        if key not in kinds:
            loaded = list(stage.loaded)
            batch = next(iter(train.batches(batch_size, modalities=loaded, device=device)))
            kinds[key] = step_flops(method, stage, batch, batches)
        total += kinds[key] * stage.epochs * batches
    labels = {
        "+".join(mods) + ("" if loaded == mods else " (reads " + "+".join(loaded) + ")"): flops
        for (mods, loaded), flops in kinds.items()
    }
    return {"step_flops": labels, "train_flops": total}


def measure(run: Any, test: dict[str, Any]) -> dict[str, Any]:
    """Both measures for a finished trainer run (its model holds the selected weights)."""
    test_split = run.data.splits["test"]
    out: dict[str, Any] = {
        "imbalance": imbalance(
            run.model, run.method, test_split, test["logits"], run.device, run.autocast
        ),
        "cost": cost(run.method, run.stages, run.train_split, run.spec.batch_size, run.device),
    }
    if run.device.type == "cuda":
        out["cost"]["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(run.device))
    return out
