"""One modality trained alone: the unimodal reference rows."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from igm_core.methods.base import Method, Stage, StepContext


class Unimodal(Method):
    kind = "unimodal"

    @property
    def modality(self) -> str:
        return self.params["modality"]

    def stages(self) -> list[Stage]:
        return [Stage(0, (self.modality,), self.spec.schedule.epochs)]

    def eval_modalities(self) -> list[str]:
        return [self.modality]

    def step(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        m = self.modality
        with self.autocast():
            loss = F.cross_entropy(self.model.logits(m, xs[m]).float(), y)
        loss.backward()
        if ctx.log:
            self.log_branch_grads(m, ctx)
        return loss.detach()
