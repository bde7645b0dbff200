"""OGM-GE: joint training with on-the-fly gradient modulation and generalization enhancement."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from igm_core.methods.base import StepContext
from igm_core.methods.joint import Joint


class OGMGE(Joint):
    """On-the-fly gradient modulation with generalization enhancement.

    Per step, s_m = sum_i softmax(logits_m)_i[y_i]; a modality whose score exceeds the mean of the
    others (ratio r_m > 1) has its encoder gradients scaled by 1 - tanh(alpha (r_m - 1)); with GE,
    Gaussian noise with the gradient's own std is added to every encoder weight gradient.
    """

    def step(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        loss, logits = self.forward_backward(xs, y)
        p = self.params
        end = p["modulation_end"] if p["modulation_end"] is not None else math.inf
        if len(self.modalities) > 1 and p["modulation_start"] <= ctx.epoch <= end:
            with torch.no_grad():
                scores = torch.stack(
                    [
                        F.softmax(logits[m].float(), 1).gather(1, y[:, None]).sum()
                        for m in self.modalities
                    ]
                )
                others = (scores.sum() - scores) / (len(scores) - 1)
                ratios = scores / others.clamp_min(1e-12)
                coeffs = 1 - torch.tanh(p["alpha"] * F.relu(ratios - 1))
                gen = ctx.generator(self.device) if p["ge"] else None
                for i, m in enumerate(self.modalities):
                    for param in self.model.encoders[m].parameters():
                        g = param.grad
                        if g is None:
                            continue
                        if gen is not None and g.dim() >= 2:
                            noise = torch.randn(
                                g.shape, generator=gen, device=g.device, dtype=g.dtype
                            )
                            param.grad = g * coeffs[i] + noise * (g.std() + 1e-8)
                        else:
                            param.grad = g * coeffs[i]
                if ctx.log:
                    for i, m in enumerate(self.modalities):
                        ctx.stats[f"ogm/{m}/ratio"] = ratios[i]
                        ctx.stats[f"ogm/{m}/coeff"] = coeffs[i]
        if ctx.log:
            for m in self.modalities:
                self.log_branch_grads(m, ctx)
        return loss
