"""MLA (Zhang et al., "Multimodal Representation Learning by Alternating Unimodal Adaptation",
CVPR 2024), as its paper and released code define it, and this project's earlier stage-wise
variant as a named option.

`alternation: step` (the default): every mini-batch trains each modality in turn, in the spec's
modality order, over ONE head shared by all modalities (the spec's model gets shared_head: true):
modality m's loss, backward, an optimizer step, then the next modality on the same mini-batch.
The trainer's step counter, learning-rate schedule and checkpoints count mini-batches. One
deliberate difference: the released code runs on torch 1.8, whose zero_grad() leaves zero tensors
rather than None, so during the second modality's update the first modality's encoder (whose
gradient is then zero) still moves by its momentum and weight decay; here gradients are cleared to
None and the optimizer skips them, so each encoder moves once per mini-batch, by its own update.

Gradient modification (`project`): the MLA paper protects the shared head with an OWM projector.
`project: true` applies the paper's OWM rule, P <- P - k k^T / (alpha_t + r^T k) with k = P r and
r the batch mean of the head layer's input (a scalar denominator), with the released code's alpha
schedule, alpha_t = alpha * 0.1 ** (1 + b / B) at mini-batch b of an epoch of B (alpha = 1), and
its normalisation P <- P / ||P||_F, then the head weight gradient G <- G P^T. The projector is
folded with the current modality's features before its own gradient is projected, and the first
update of a run is skipped, as in the release. This is not the released expression: there r is a
1 x d row, so its denominator alpha + k r is a d x d matrix (an outer product) that divides k k^T
element by element, which is no OWM projection. Nor does the release apply it at all: its plug-in
looks for a parameter named "module.weight" in the head, whose parameters are named "weight" and
"bias". So `project: false` (the default for alternation step) reproduces the released behaviour,
and `project: true` is a sensitivity option: one projector per Linear layer of the shared head, a
single one with the release's one-Linear head (`model.head_hidden: []`).

Inference (`fusion: entropy_logits`, the default): per sample, each modality's weight is
softmax(-entropy of its softmax) across modalities (exp(max entropy - entropy), normalised, as
the paper writes it), applied to the head outputs (logits), then a softmax. The released code
computes that entropy over the whole batch (a softmax along the batch axis), giving one weight
per modality per batch, so its predictions depend on the batch; the per-sample rule is the
paper's.

`alternation: stage`: one modality per stage (per-modality heads unless the spec shares one),
with an OWM projector per layer position fed with the input batch means of every finished stage
and applied to all later gradients of that layer, fixed alpha, no normalisation. With
`fusion: mean` it is this project's earlier MLA.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from igm_core import gm
from igm_core.methods.alternating import Alternating
from igm_core.methods.base import Method, Stage, StepContext
from igm_core.methods.projected import Projected


def entropy_logit_fusion(logits: dict[str, torch.Tensor]) -> torch.Tensor:
    """softmax(sum_m w_m z_m), w = softmax over modalities of -entropy(softmax(z_m)), per sample."""
    z = torch.stack([v.float() for v in logits.values()])  # M x N x C
    logp = F.log_softmax(z, dim=2)
    entropy = -(logp.exp() * logp).sum(-1)  # M x N
    w = F.softmax(-entropy, dim=0)
    return F.softmax((w[..., None] * z).sum(0), dim=1)


def owm_alpha(base: float, batch: int, batches: int) -> float:
    """The released schedule: base * 0.1 ** (1 + b / B), from 0.1 base down to ~0.01 base."""
    return base * 0.1 ** (1 + batch / max(batches, 1))


class _MLAFusion:
    """MLA's own fusion next to the shared ones (mean, entropy, ...) of the alternating methods."""

    params: dict[str, Any]
    fusions = (*getattr(Alternating, "fusions", ()), "entropy_logits")

    def fuse(self, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.params["fusion"] == "entropy_logits":
            return entropy_logit_fusion(logits)
        return super().fuse(logits)  # type: ignore[misc]

    def fuse_as(self, logits: dict[str, torch.Tensor], fusion: str) -> torch.Tensor:
        if fusion == "entropy_logits":
            return entropy_logit_fusion(logits)
        return super().fuse_as(logits, fusion)  # type: ignore[misc]


class MLAStage(_MLAFusion, Projected):
    """The stage-wise variant (`alternation: stage`)."""

    applies_to_source = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owm: dict[str, torch.Tensor] = {}  # float64 projectors, accumulated over all stages

    def projected_layers(self, m: str) -> dict[str, torch.nn.Module]:
        return super().projected_layers(m) if self.params["project"] else {}

    def build(self, k: str, means: dict[str, torch.Tensor]) -> dict[str, float]:
        metrics = {}
        for name, z in means.items():
            p = gm.owm_projector(z.cpu(), self.params["alpha"], self.owm.get(name))
            self.owm[name] = p
            self.proj[name] = p.float().to(self.device)
            metrics[f"gm/{k}/{name}.trace_ratio"] = float(torch.trace(p)) / p.shape[0]
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "owm": self.owm}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.owm = dict(state.get("owm", {}))


class MLAStep(_MLAFusion, Alternating):
    """The paper's MLA (`alternation: step`): see the module text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.model.shared_head:
            raise ValueError("MLA's step alternation needs a model with one shared head")
        branch = self.model.branch_modules(self.modalities[0])
        self.head_layers = {n: layer for n, layer in branch.items() if n.startswith("head.")}
        self.owm: dict[str, torch.Tensor] = {}  # float64, one projector per head layer
        self.updates = 0  # optimizer steps so far (one per modality per mini-batch)
        self._inputs: dict[str, torch.Tensor] = {}
        if self.params["project"]:
            for name, layer in self.head_layers.items():
                layer.register_forward_pre_hook(self._record_input(name))

    def _record_input(self, name: str):
        def hook(module: torch.nn.Module, args: tuple) -> None:
            if module.training and torch.is_grad_enabled():
                x = args[0].detach()
                self._inputs[name] = x.reshape(-1, x.shape[-1]).double().mean(0)

        return hook

    def stages(self) -> list[Stage]:
        return [Stage(0, tuple(self.modalities), self.spec.schedule.epochs)]

    def step(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        losses = []
        for i, m in enumerate(self.modalities):
            if i > 0:
                if ctx.step_optimizer is None:
                    raise RuntimeError("MLA steps the optimizer once per modality: no optimizer")
                ctx.step_optimizer()  # the previous modality's update; the trainer does the last
            loss = self.ce(m, xs[m], y)
            loss.backward()
            if ctx.log:
                self.log_branch_grads(m, ctx)
                ctx.stats[f"mla/{m}/loss"] = loss.detach()
            if self.params["project"]:
                self.project(m, ctx)
            self.updates += 1
            losses.append(loss.detach())
        return torch.stack(losses).mean()

    def project(self, m: str, ctx: StepContext) -> None:
        """Fold this batch's head inputs into the projectors and project the head's gradients."""
        if self.updates == 0:  # the released plug-in skips the first update of a run
            return
        alpha = owm_alpha(self.params["alpha"], ctx.batch, ctx.batches)
        swap = gm.GradSwap(ctx.log)
        for name, layer in self.head_layers.items():
            r = self._inputs[name]
            p = self.owm.get(name)
            if p is None:
                p = torch.eye(r.shape[0], dtype=torch.float64, device=r.device)
            p = gm.owm_update(p, r, alpha)
            p = p / torch.linalg.matrix_norm(p)
            self.owm[name] = p
            g = layer.weight.grad
            swap.replace(layer, g @ p.T.to(g.dtype))
        if (norms := swap.norms()) is not None:
            b, a = norms
            ctx.stats[f"gm/{m}/kept_ratio"] = a / b.clamp_min(1e-30)
            ctx.stats[f"gm/{m}/owm_alpha"] = alpha

    def diagnostics(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def state_dict(self) -> dict[str, Any]:
        return {"owm": self.owm, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.owm = {n: p.to(self.device) for n, p in state.get("owm", {}).items()}
        self.updates = int(state.get("updates", 0))


def make_mla(params: dict[str, Any], model: Any, spec: Any, *args: Any, **kwargs: Any) -> Method:
    """The MLA entry's factory: the class for the chosen alternation."""
    cls = MLAStep if params["alternation"] == "step" else MLAStage
    return cls(params, model, spec, *args, **kwargs)
