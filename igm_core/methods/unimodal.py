"""One modality trained alone: the unimodal reference rows."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from igm_core.methods.base import Method, StepContext


class Unimodal(Method):
    """self.modalities holds the one modality (catalog rule: the params' `modality`)."""

    def step(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        m = self.modalities[0]
        with self.autocast():
            loss = F.cross_entropy(self.model.logits(m, xs[m]).float(), y)
        loss.backward()
        if ctx.log:
            self.log_branch_grads(m, ctx)
        return loss.detach()
