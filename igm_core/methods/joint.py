"""Joint training: every modality at once, on the cross-entropy of the mean of their logits."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from igm_core.methods.base import Method, StepContext


class Joint(Method):
    def forward_backward(
        self, xs: dict[str, torch.Tensor], y: torch.Tensor
    ) -> tuple[torch.Tensor, dict]:
        with self.autocast():
            logits = self.model(xs)
            loss = F.cross_entropy(torch.stack(list(logits.values())).mean(0).float(), y)
        loss.backward()
        return loss.detach(), logits

    def step(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        loss, _ = self.forward_backward(xs, y)
        if ctx.log:
            for m in self.modalities:
                self.log_branch_grads(m, ctx)
        return loss
