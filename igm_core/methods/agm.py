"""AGM: Adaptive Gradient Modulation (Li, Li, Hu, Lei, Li, Zhou, ICCV 2023; code
lihong2303/AGM_ICCV2023, model/CREMAD_net.py GradMod and run/CREMAD_main.py train).

Mono-modal responses: with f(S) the fused output (the mean of the logits) when the inputs of the
modalities outside S are set to zero (those zero-input passes in eval mode, with gradient), each
modality's response is its Shapley value over the coalitions with an empty coalition worth zero
(the paper's S != empty), so that the responses sum to f(all); with two modalities
phi_a = (f(a, v) - f(0, v) + f(a, 0)) / 2, the released formula.
The loss is CE(sum_m phi_m, y), the joint loss; the backward pass scales the gradient flowing
through phi_m by a coefficient c_m (the released backward hooks), so every parameter phi_m depends
on (encoders and heads) gets c_m times its share.
Coefficients, per step: s_m = mean_i -log max(softmax(phi_m)_i[y_i], 1e-8); the running mean S_m
of s_m over every step so far; with M modalities
ratio_m = exp(M/(M-1) (mean_k s_k - s_m)), the target exp(M/(M-1) (mean_k S_k - S_m)) (with two:
exp(s_v - s_a) and its running counterpart, as released), and
c_m = exp(alpha min(target_m - ratio_m, 10)); S_m is updated after c_m is computed, on every
step. Outside the modulation window (modulation_start..modulation_end, epochs from 0) c_m = 1.
When an element of a head's last (classifying) layer gradient leaves [-clip, clip], the gradients
of every parameter are clipped to a total norm of `clip` (the released rule, threshold 1.0).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch.nn import functional as F

from igm_core.methods.base import StepContext
from igm_core.methods.joint import Joint


def scale_grad(x: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """x forward (bit for bit); c times the incoming gradient backward."""
    return x.detach() + c * (x - x.detach())


def shapley_responses(full: dict[str, torch.Tensor], zero: dict[str, torch.Tensor]) -> dict:
    """phi_m for f(S) = mean over modalities of (full if in S else zero), with f(empty) = 0."""
    names = list(full)
    n = len(names)

    def value(coalition: tuple[str, ...]) -> torch.Tensor | float:
        if not coalition:
            return 0.0
        return torch.stack([full[m] if m in coalition else zero[m] for m in names]).mean(0)

    phi = {}
    for m in names:
        others = [o for o in names if o != m]
        total: Any = 0.0
        for r in range(n):
            weight = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for subset in itertools.combinations(others, r):
                total = total + weight * (value((*subset, m)) - value(subset))
        phi[m] = total
    return phi


def agm_scores(phi: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """s_m = mean_i -log max(softmax(phi_m)_i[y_i], 1e-8)."""
    return torch.stack(
        [
            -F.softmax(v.float(), 1).gather(1, y[:, None]).clamp_min(1e-8).log().mean()
            for v in phi.values()
        ]
    )


def agm_coefficients(scores: torch.Tensor, running: torch.Tensor, alpha: float) -> torch.Tensor:
    """c_m = exp(alpha min(target_m - ratio_m, 10)) from the step's and the running scores."""
    n = len(scores)
    ratio = torch.exp(n / (n - 1) * (scores.mean() - scores))
    target = torch.exp(n / (n - 1) * (running.mean() - running))
    return torch.exp(alpha * torch.clamp(target - ratio, max=10.0))


class AGM(Joint):
    """Joint training with Shapley-based adaptive gradient modulation (see the module text)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.running = torch.zeros(len(self.modalities), dtype=torch.float64)

    def in_window(self, epoch: int) -> bool:
        end = self.params["modulation_end"]
        return self.params["modulation_start"] <= epoch <= (math.inf if end is None else end)

    def zero_logits(self, xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each modality's logits for an all-zero input, its branch in eval mode."""
        out = {}
        for m in self.modalities:
            encoder, head = self.model.encoders[m], self.model.head_of(m)
            modes = [encoder.training, head.training]
            encoder.eval()
            head.eval()
            out[m] = self.model.logits(m, torch.zeros_like(xs[m]))
            encoder.train(modes[0])
            head.train(modes[1])
        return out

    def step(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if len(self.modalities) < 2:
            return super().step(xs, y, ctx)
        with self.autocast():
            full = self.model(xs)
            zero = self.zero_logits(xs)
            phi = {m: v.float() for m, v in shapley_responses(full, zero).items()}
        scores = agm_scores({m: v.detach() for m, v in phi.items()}, y).double().cpu()
        coeffs = agm_coefficients(scores, self.running, self.params["alpha"])
        if not self.in_window(ctx.epoch):
            coeffs = torch.ones_like(coeffs)
        t = ctx.step + 1  # the released running mean counts every step of the run
        self.running = self.running * (t - 1) / t + scores / t
        out = sum(scale_grad(phi[m], float(coeffs[i])) for i, m in enumerate(self.modalities))
        loss = F.cross_entropy(out, y)
        loss.backward()
        self.clip()
        if ctx.log:
            for i, m in enumerate(self.modalities):
                ctx.stats[f"agm/{m}/coeff"] = float(coeffs[i])
                ctx.stats[f"agm/{m}/score"] = float(scores[i])
                ctx.stats[f"agm/{m}/running_score"] = float(self.running[i])
                self.log_branch_grads(m, ctx)
        return loss.detach()

    def clip(self) -> None:
        bound = self.params["clip"]
        if bound is None:
            return
        last = [list(self.model.head_of(m).children())[-1].weight.grad for m in self.modalities]
        if any(g is not None and bool(g.abs().max() > bound) for g in last):
            torch.nn.utils.clip_grad_norm_(list(self.model.parameters()), max_norm=bound)

    def diagnostics(self) -> dict[str, Any]:
        return {"agm_running_score": dict(zip(self.modalities, self.running.tolist(), strict=True))}

    def state_dict(self) -> dict[str, Any]:
        return {"running": self.running}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "running" in state:
            self.running = state["running"].double().cpu()
