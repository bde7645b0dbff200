"""MMPareto (Wei, Hu, ICML 2024; code GeWu-Lab/MMPareto_ICML2024, code/MMPareto.py).

Loss: the fused cross-entropy plus every modality's own cross-entropy, L = L_mm + sum_m L_m. For
each modality's encoder the two gradients that reach it, g_mm (from L_mm) and g_m (from L_m),
are integrated:
- if cos(g_mm, g_m) > 0 (over the whole encoder): weights (0.5, 0.5);
- otherwise the minimum-norm point of their convex hull, w g_mm + (1 - w) g_m with
  w = (g_m.g_m - g_mm.g_m) / |g_mm - g_m|^2, clipped to [0.001, 0.999] (the released
  MinNormSolver for two vectors);
- then, per parameter tensor, the Pareto direction 2 (w_mm g_mm + w_m g_m) takes the larger of
  its own norm and the norm of the plain sum g_mm + g_m, times gamma (1.5 in the released code).
Heads keep the plain gradient of L (the released code skips every parameter named "head").
The per-step case (agreeing or conflicting gradients) is counted per modality.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from igm_core.methods.base import StepContext
from igm_core.methods.joint import Joint


def min_norm_weight(g1: torch.Tensor, g2: torch.Tensor) -> float:
    """w minimising |w g1 + (1 - w) g2| (two flattened gradients), as the released solver does:
    0.999 when g1.g2 >= g1.g1, 0.001 when g1.g2 >= g2.g2."""
    v11, v12, v22 = float(g1 @ g1), float(g1 @ g2), float(g2 @ g2)
    if v12 >= v11:
        return 0.999
    if v12 >= v22:
        return 0.001
    return -(v12 - v22) / (v11 + v22 - 2 * v12)


def pareto_grads(
    g_mm: list[torch.Tensor], g_m: list[torch.Tensor], gamma: float
) -> tuple[list[torch.Tensor], float, float]:
    """The integrated gradient of each tensor, the cosine and the weight of g_mm."""
    flat_mm = torch.cat([g.flatten() for g in g_mm]).double()
    flat_m = torch.cat([g.flatten() for g in g_m]).double()
    cos = float(F.cosine_similarity(flat_mm, flat_m, dim=0))
    w = 0.5 if cos > 0 else min_norm_weight(flat_mm, flat_m)
    out = []
    for a, b in zip(g_mm, g_m, strict=True):
        new = 2 * w * a + 2 * (1 - w) * b
        ratio = torch.linalg.vector_norm(a + b) / torch.linalg.vector_norm(new).clamp_min(1e-30)
        out.append(torch.where(ratio > 1, ratio * new * gamma, new * gamma))
    return out, cos, w


class MMPareto(Joint):
    """Joint training with the Pareto integration of multimodal and unimodal gradients."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cases = {m: {"agree": 0, "conflict": 0} for m in self.modalities}

    def step(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        with self.autocast():
            logits = self.model(xs)
            loss_mm = F.cross_entropy(torch.stack(list(logits.values())).mean(0).float(), y)
            losses = {m: F.cross_entropy(v.float(), y) for m, v in logits.items()}
        total = loss_mm + sum(losses.values())
        encoders = {m: list(self.model.encoders[m].parameters()) for m in self.modalities}
        flat = [p for m in self.modalities for p in encoders[m]]
        g_mm = dict(
            zip(map(id, flat), torch.autograd.grad(loss_mm, flat, retain_graph=True), strict=True)
        )
        g_uni = {
            m: torch.autograd.grad(losses[m], encoders[m], retain_graph=True)
            for m in self.modalities
        }
        heads = [p for p in self.model.parameters() if id(p) not in g_mm]
        total.backward(inputs=heads)
        for m in self.modalities:
            new, cos, w = pareto_grads(
                [g_mm[id(p)] for p in encoders[m]], list(g_uni[m]), self.params["gamma"]
            )
            for p, g in zip(encoders[m], new, strict=True):
                p.grad = g.to(p.dtype)
            self.cases[m]["agree" if cos > 0 else "conflict"] += 1
            if ctx.log:
                ctx.stats[f"pareto/{m}/cos"] = cos
                ctx.stats[f"pareto/{m}/weight_mm"] = w
                ctx.stats[f"pareto/{m}/conflict"] = float(cos <= 0)
                ctx.stats[f"train/{m}/loss_uni"] = losses[m].detach()
        if ctx.log:
            for m in self.modalities:
                self.log_branch_grads(m, ctx)
        return total.detach()

    def diagnostics(self) -> dict[str, Any]:
        return {"pareto_cases": self.cases}

    def state_dict(self) -> dict[str, Any]:
        return {"cases": self.cases}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "cases" in state:
            self.cases = {m: dict(c) for m, c in state["cases"].items()}
