"""Alternating unimodal training: stage s trains one modality (its encoder and head), in a cyclic
order; no gradient modification. The base of MLA and IGM (projected.py), and where the plasticity
diagnostic (cosine of a head gradient just before and after a modality switch) is measured.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from igm_core.methods.base import Method, Stage, StepContext
from igm_core.methods.fusion import FUSIONS, fit_temperatures, fuse_probs

PLASTICITY_LAYER = "head.0"


class Alternating(Method):
    fusions = FUSIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_grad: torch.Tensor | None = None
        self._switch_pending = False
        self.plasticity: list[dict[str, Any]] = []
        self.temperatures: dict[str, float] | None = None  # fitted by calibrate (validation)

    def stages(self) -> list[Stage]:
        sched = self.spec.schedule
        order = sched.modality_order
        return [Stage(i, (order[i % len(order)],), e) for i, e in enumerate(sched.stage_epochs)]

    def fuse(self, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fuse_as(logits, self.params["fusion"])

    def fuse_as(self, logits: dict[str, torch.Tensor], fusion: str) -> torch.Tensor:
        weights = self.params.get("fusion_weights")
        return fuse_probs(logits, fusion, weights=weights, temperatures=self.temperatures)

    @property
    def calibrates(self) -> bool:
        return self.params["fusion"] == "calibrated"

    def calibrate(self, logits: dict[str, torch.Tensor], y: torch.Tensor) -> dict[str, Any]:
        self.temperatures = fit_temperatures(logits, y)
        return {"temperatures": dict(self.temperatures)}

    def on_stage_start(self, stage: Stage, fresh: bool = True) -> None:
        self._switch_pending = fresh and stage.index > 0

    def ce(self, m: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return F.cross_entropy(self.model.logits(m, x).float(), y)

    def loss_backward(
        self, m: str, x: torch.Tensor, y: torch.Tensor, ctx: StepContext
    ) -> torch.Tensor:
        loss = self.ce(m, x, y)
        loss.backward()
        return loss.detach()

    def modify(self, m: str, ctx: StepContext) -> None:
        """Change the gradients of modality m before the optimizer step (nothing here)."""

    def step(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        m = ctx.stage.modalities[0]
        loss = self.loss_backward(m, xs[m], y, ctx)
        if ctx.log:
            self.log_branch_grads(m, ctx)
        self.modify(m, ctx)
        self._track_plasticity(m, ctx)
        return loss

    def _track_plasticity(self, m: str, ctx: StepContext) -> None:
        layer = self.model.branch_modules(m).get(PLASTICITY_LAYER)
        if layer is None or layer.weight.grad is None:
            return
        g = layer.weight.grad.detach()
        if (
            self._switch_pending
            and self._last_grad is not None
            and self._last_grad.shape == g.shape
        ):
            cos = F.cosine_similarity(g.flatten().float(), self._last_grad.flatten().float(), dim=0)
            ctx.stats[f"gm/{m}/plasticity_cos"] = cos
            self.plasticity.append({"stage": ctx.stage.index, "modality": m, "cos": float(cos)})
        self._switch_pending = False
        self._last_grad = g.clone()

    def diagnostics(self) -> dict[str, Any]:
        return {"plasticity": self.plasticity}

    def state_dict(self) -> dict[str, Any]:
        return {"last_grad": self._last_grad, "plasticity": self.plasticity}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._last_grad = state.get("last_grad")
        self.plasticity = list(state.get("plasticity", []))
