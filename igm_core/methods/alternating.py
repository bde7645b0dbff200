"""Alternating unimodal training (stage s trains one modality) and its gradient modifications.

- Alternating: no modification.
- MLA: an OWM projector per layer position, fed with the input batch means of every finished
  stage and applied to all later gradients of that layer (it narrows the update space over time).
- IGM: after the stage of modality k, a flat projection T_k per layer (gm.flat_projection) that
  multiplies the gradient of the same layer of the next modality; plus SAM (standard, reference,
  none).

The projection for the next stage is built in on_stage_end, from a pass over the training set that
runs only up to the last projected layer, and only when a next stage exists to use it.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from igm_core import gm
from igm_core.methods.base import Method, Stage, StepContext, fuse_probs

PLASTICITY_LAYER = "head.0"


@dataclass
class TransitionData:
    """How a method reads the training set between stages (inputs only, in order)."""

    batches: Callable[[str], Iterable[torch.Tensor]]
    batch_size: int


class Alternating(Method):
    kind = "alternating"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_grad: torch.Tensor | None = None
        self._switch_pending = False
        self.plasticity: list[dict[str, Any]] = []

    def stages(self) -> list[Stage]:
        sched = self.spec.schedule
        order = sched.modality_order
        return [Stage(i, (order[i % len(order)],), e) for i, e in enumerate(sched.stage_epochs)]

    def fuse(self, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        return fuse_probs(logits, self.params["fusion"])

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


def unit_steps(loss: torch.Tensor, tensors: list[torch.Tensor], rho: float) -> list[torch.Tensor]:
    """rho * g / ||g|| per tensor, for the gradient g of loss (zero where a tensor is unused)."""
    grads = torch.autograd.grad(loss, tensors, retain_graph=True, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads, strict=True)]
    norms = torch._foreach_add(torch._foreach_norm(grads), 1e-12)
    return [g * (rho / n) for g, n in zip(grads, norms, strict=True)]


def forward_with(
    head: torch.nn.Module, x: torch.Tensor, weights: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Run `head` with substitute weights (keeps the graph of both the weights and x)."""
    layers = list(head) if isinstance(head, torch.nn.Sequential) else []
    if layers and all(isinstance(layer, torch.nn.Linear | torch.nn.ReLU) for layer in layers):
        for i, layer in enumerate(layers):  # the paper's head: a cheap direct path
            if isinstance(layer, torch.nn.Linear):
                x = F.linear(x, weights[f"{i}.weight"], weights.get(f"{i}.bias"))
            else:
                x = F.relu(x)
        return x
    return torch.func.functional_call(head, weights, (x,))


class _Projected(Alternating):
    """Alternation whose later stages multiply some layers' weight gradients by a matrix."""

    scope_param = "scope"
    applies_to_source = True  # does the projection also apply when the same modality trains?

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proj: dict[str, torch.Tensor | gm.LowRankProjection] = {}
        self.source: str | None = None  # modality whose stage built self.proj

    def projected_layers(self, m: str) -> dict[str, torch.nn.Module]:
        branch = self.model.branch_modules(m)
        return {n: branch[n] for n in gm.select_layers(branch, self.params[self.scope_param])}

    def modify(self, m: str, ctx: StepContext) -> None:
        if not self.proj or (m == self.source and not self.applies_to_source):
            return
        branch = self.model.branch_modules(m)
        before, after = [], []
        for name, t in self.proj.items():
            layer = branch.get(name)
            if layer is None or layer.weight.grad is None or gm.input_dim(layer) != t.shape[0]:
                continue
            g = layer.weight.grad
            new = gm.project_weight_grad(g, t)
            if ctx.log:
                before.append(g.float().square().sum())
                after.append(new.float().square().sum())
            layer.weight.grad = new
        if before:
            b, a = torch.stack(before).sum().sqrt(), torch.stack(after).sum().sqrt()
            ctx.stats[f"gm/{m}/norm_before"] = b
            ctx.stats[f"gm/{m}/norm_after"] = a
            ctx.stats[f"gm/{m}/kept_ratio"] = a / b.clamp_min(1e-30)

    def on_stage_end(
        self, stage: Stage, next_stage: Stage | None, data: TransitionData
    ) -> dict[str, float]:
        if next_stage is None:
            return {}  # nobody would use a projection built now
        k, nxt = stage.modalities[0], next_stage.modalities[0]
        if k == nxt and not self.applies_to_source:
            return {}
        target = self.model.branch_modules(nxt)
        layers = {
            n: layer
            for n, layer in self.projected_layers(k).items()
            if n in target and gm.input_dim(target[n]) == gm.input_dim(layer)
        }
        if not layers:
            return {}
        start = time.perf_counter()

        def forward(x: torch.Tensor) -> torch.Tensor:
            with self.autocast():
                return self.model.logits(k, x)

        means = gm.collect_batch_means(
            self.model, forward, layers, data.batches(k), data.batch_size
        )
        metrics = self.build(k, means)
        self.source = k
        metrics[f"gm/{k}/transition_s"] = time.perf_counter() - start
        return metrics

    @abstractmethod
    def build(self, k: str, means: dict[str, torch.Tensor]) -> dict[str, float]:
        """Turn finished modality k's input batch means into self.proj; metrics to log."""

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "proj": self.proj, "source": self.source}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.proj = {n: t.to(self.device) for n, t in state.get("proj", {}).items()}
        self.source = state.get("source")


class MLA(_Projected):
    applies_to_source = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owm: dict[str, torch.Tensor] = {}  # float64 projectors, accumulated over all stages

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


class IGM(_Projected):
    scope_param = "gm_scope"
    applies_to_source = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spectra: list[dict[str, Any]] = []

    def build(self, k: str, means: dict[str, torch.Tensor]) -> dict[str, float]:
        self.proj = {}
        metrics = {}
        for name, z in means.items():
            t, info = gm.flat_projection_from_means(z, self.params["tau"])
            self.proj[name] = t.to(self.device)
            self.spectra.append({"modality": k, "layer": name, **info})
            metrics[f"gm/{k}/{name}.min_gain"] = info["min_gain"]
            metrics[f"gm/{k}/{name}.eff_rank"] = info["eff_rank"]
        return metrics

    def diagnostics(self) -> dict[str, Any]:
        return {**super().diagnostics(), "spectra": self.spectra}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "spectra": self.spectra}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.spectra = list(state.get("spectra", []))

    # -- SAM
    def loss_backward(
        self, m: str, x: torch.Tensor, y: torch.Tensor, ctx: StepContext
    ) -> torch.Tensor:
        mode = self.params["sam"]
        if mode == "standard" and self.params["rho"] > 0:
            return self._sam_standard(m, x, y, ctx)
        if mode == "reference":
            return self._sam_reference(m, x, y, ctx)
        return super().loss_backward(m, x, y, ctx)

    def _sam_standard(
        self, m: str, x: torch.Tensor, y: torch.Tensor, ctx: StepContext
    ) -> torch.Tensor:
        """min max_{||eps|| <= rho} L: the gradient at theta + rho g/||g|| (one global norm).

        theta is restored exactly (from a copy) before the optimizer steps.
        """
        params = self.model.branch_parameters(m)
        loss = self.ce(m, x, y)
        loss.backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        eps = torch._foreach_mul(grads, self.params["rho"] / (norm + 1e-12))
        backup = [p.detach().clone() for p in params]
        with torch.no_grad():
            torch._foreach_add_(params, eps)
        for p in params:
            p.grad = None
        perturbed = self.ce(m, x, y)
        perturbed.backward()
        with torch.no_grad():
            torch._foreach_copy_(params, backup)
        if ctx.log:
            ctx.stats[f"sam/{m}/sharpness"] = perturbed.detach() - loss.detach()
        return loss.detach()

    def _sam_reference(
        self, m: str, x: torch.Tensor, y: torch.Tensor, ctx: StepContext
    ) -> torch.Tensor:
        """The authors' variant: (1 - beta) mixup CE + beta CE of a perturbed head, never restored.

        Per-tensor normalised perturbations rho g/||g|| of the mixup loss's gradient; the head is
        re-run on the (mixed-input) features with perturbed weights; the perturbation stays in the
        parameters when the optimizer steps. The encoder is perturbed only when rho_encoder > 0,
        which costs one more encoder backward pass.
        """
        p = self.params
        encoder, head = self.model.encoders[m], self.model.head_of(m)
        a = p["mixup_alpha"]
        lam = float(np.random.default_rng(ctx.seed).beta(a, a)) if a > 0 else 1.0
        # drawn where the data is: a CPU permutation copied to a GPU would stall the stream
        perm = torch.randperm(x.shape[0], generator=ctx.generator(x.device), device=x.device)
        with self.autocast():
            feats = encoder(lam * x + (1 - lam) * x[perm])
            out = head(feats).float()
            loss_mix = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm])

        enc_params = list(encoder.parameters())
        head_named = dict(head.named_parameters())
        eps_enc = (
            unit_steps(loss_mix, enc_params, p["rho_encoder"]) if p["rho_encoder"] > 0 else None
        )
        eps_head = (
            unit_steps(loss_mix, list(head_named.values()), p["rho"]) if p["rho"] > 0 else None
        )
        weights = head_named
        if eps_head is not None:
            weights = dict(
                zip(
                    head_named, torch._foreach_add(list(head_named.values()), eps_head), strict=True
                )
            )
        with self.autocast():
            loss_flat = F.cross_entropy(forward_with(head, feats, weights).float(), y)
        beta = p["flat_ratio"]
        loss = (1 - beta) * loss_mix + beta * loss_flat
        loss.backward()
        with torch.no_grad():
            if eps_head is not None:
                torch._foreach_add_(list(head_named.values()), eps_head)
            if eps_enc is not None:
                torch._foreach_add_(enc_params, eps_enc)
        if ctx.log:
            ctx.stats[f"sam/{m}/sharpness"] = loss_flat.detach() - F.cross_entropy(out.detach(), y)
            ctx.stats[f"train/{m}/loss_mixup"] = loss_mix.detach()
            ctx.stats[f"train/{m}/loss_flat"] = loss_flat.detach()
        return loss.detach()
