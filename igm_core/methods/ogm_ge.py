"""OGM-GE: joint training with on-the-fly gradient modulation and generalization enhancement
(Peng et al., CVPR 2022).

Per step, s_m = sum_i softmax(logits_m)_i[y_i] and r_m = s_m / (mean of the other modalities'
scores); with two modalities r_a = s_a / s_v. The paper's Eq. 10 (`coefficient: paper`, the
default, as the authors' released code computes it): a dominant modality (r_m > 1) gets
k_m = 1 - tanh(alpha * r_m), every other modality k = 1. `coefficient: continuous` is this
project's earlier variant, 1 - tanh(alpha * (r_m - 1)), which starts at 1 when the modalities are
level instead of jumping to 1 - tanh(alpha); it is a named option, never the default.

What is modulated, as in the released code: the encoders' weight gradients only (the released
code touches the 4-D convolution kernels of the audio and visual encoders; here every encoder
weight tensor of two or more dimensions, i.e. Linear and Conv weights, so that MLP encoders are
modulated too; on a ResNet-18 encoder the two rules coincide). Biases, normalisation parameters
and the heads keep their gradients. With GE, the modulated gradient gets Gaussian noise whose std
is that of the unmodulated gradient: g <- k g + N(0, std(g)^2), applied (as in the released code)
to every encoder weight of every modality while modulation is on, whatever its coefficient.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from igm_core.methods.base import StepContext
from igm_core.methods.joint import Joint


def ogm_ratios(scores: torch.Tensor) -> torch.Tensor:
    """r_m = s_m / mean of the other scores (s_a / s_v with two modalities)."""
    others = (scores.sum() - scores) / (len(scores) - 1)
    return scores / others.clamp_min(1e-12)


def ogm_coefficients(ratios: torch.Tensor, alpha: float, rule: str = "paper") -> torch.Tensor:
    """Gradient coefficients from the ratios: 1 for r <= 1; for r > 1, 1 - tanh(alpha r) (paper)
    or 1 - tanh(alpha (r - 1)) (continuous)."""
    if rule == "paper":
        dominant = 1 - torch.tanh(alpha * ratios)
    elif rule == "continuous":
        dominant = 1 - torch.tanh(alpha * (ratios - 1))
    else:
        raise ValueError(f"unknown OGM coefficient rule {rule!r}")
    return torch.where(ratios > 1, dominant, torch.ones_like(ratios))


def modulated_parameters(encoder: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The encoder's weight tensors (Linear, Conv): what OGM-GE scales; biases and norms not."""
    return [p for p in encoder.parameters() if p.dim() >= 2]


class OGMGE(Joint):
    """On-the-fly gradient modulation with generalization enhancement (see the module text)."""

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
                ratios = ogm_ratios(scores)
                coeffs = ogm_coefficients(ratios, p["alpha"], p["coefficient"])
                gen = ctx.generator(self.device) if p["ge"] else None
                for i, m in enumerate(self.modalities):
                    for param in modulated_parameters(self.model.encoders[m]):
                        g = param.grad
                        if g is None:
                            continue
                        if gen is not None:
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
