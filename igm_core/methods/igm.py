"""IGM: after the stage of modality k, a flat projection T_k per layer (from gm) multiplies the
gradient of the same layer of the next modality; plus SAM (standard, reference, none) every step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from igm_core import gm
from igm_core.methods.base import StepContext
from igm_core.methods.projected import Projected
from igm_core.methods.sam import forward_with, frozen_running_stats, grouped_unit_steps


class IGM(Projected):
    scope_param = "gm_scope"
    applies_to_source = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spectra: list[dict[str, Any]] = []
        self._backups: dict[str, list[torch.Tensor]] = {}  # standard SAM's copy of theta

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

        theta is restored exactly (from a copy) before the optimizer steps. The perturbed pass
        leaves batch-norm running statistics untouched: one update per step, from the pass at
        theta, as the common SAM implementations do.
        """
        params = self.model.branch_parameters(m)
        loss = self.ce(m, x, y)
        loss.backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        # eps in the gradients' own storage (they are dropped next), theta into kept buffers:
        # no parameter-sized allocation per step
        torch._foreach_mul_(grads, self.params["rho"] / (norm + 1e-12))
        backup = self._backup_of(m, params)
        with torch.no_grad():
            torch._foreach_copy_(backup, params)
            torch._foreach_add_(params, grads)
        for p in params:
            p.grad = None
        with frozen_running_stats(self.model.encoders[m], self.model.head_of(m)):
            perturbed = self.ce(m, x, y)
            perturbed.backward()
        with torch.no_grad():
            torch._foreach_copy_(params, backup)
        if ctx.log:
            ctx.stats[f"sam/{m}/sharpness"] = perturbed.detach() - loss.detach()
        return loss.detach()

    def _backup_of(self, m: str, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """Buffers for a copy of modality m's parameters, kept from step to step."""
        kept = self._backups.get(m)
        if kept is None or [b.shape for b in kept] != [p.shape for p in params]:
            kept = self._backups[m] = [torch.empty_like(p, requires_grad=False) for p in params]
        return kept

    def _mixup_loss(
        self, m: str, x: torch.Tensor, y: torch.Tensor, ctx: StepContext
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features, logits and the mixup CE of the branch on a mixed input batch."""
        a = self.params["mixup_alpha"]
        lam = float(np.random.default_rng(ctx.seed).beta(a, a)) if a > 0 else 1.0
        # drawn where the data is: a CPU permutation copied to a GPU would stall the stream
        perm = torch.randperm(x.shape[0], generator=ctx.generator(x.device), device=x.device)
        with self.autocast():
            feats = self.model.encoders[m](lam * x + (1 - lam) * x[perm])
            out = self.model.head_of(m)(feats).float()
            loss_mix = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm])
        return feats, out, loss_mix

    def _sam_reference(
        self, m: str, x: torch.Tensor, y: torch.Tensor, ctx: StepContext
    ) -> torch.Tensor:
        """The authors' variant: (1 - beta) mixup CE + beta CE of a perturbed head, never restored.

        Per-tensor normalised perturbations rho g/||g|| of the mixup loss's gradient; the head is
        re-run on the (mixed-input) features with perturbed weights; the perturbation stays in the
        parameters when the optimizer steps. The encoder is perturbed only when rho_encoder > 0,
        which costs one more encoder backward pass. The encoder runs forward once (on the mixed
        input), so batch-norm running statistics are updated once per step here too.
        """
        p = self.params
        encoder, head = self.model.encoders[m], self.model.head_of(m)
        if x.is_floating_point():
            feats, out, loss_mix = self._mixup_loss(m, x, y, ctx)
        else:  # token ids cannot be mixed: the text trains on plain CE, as in the authors' code
            with self.autocast():
                feats = encoder(x)
                out = head(feats).float()
                loss_mix = F.cross_entropy(out, y)

        enc_params = list(encoder.parameters())
        head_named = dict(head.named_parameters())
        eps_enc, eps_head = self._unit_steps(loss_mix, enc_params, list(head_named.values()))
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

    def _unit_steps(
        self, loss: torch.Tensor, enc_params: list[torch.Tensor], head_params: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor] | None, list[torch.Tensor] | None]:
        """The encoder's and the head's perturbations (None where its rho is 0), from one
        backward pass of the mixup loss."""
        p = self.params
        groups = {"enc": (enc_params, p["rho_encoder"]), "head": (head_params, p["rho"])}
        groups = {k: g for k, g in groups.items() if g[1] > 0}
        if not groups:
            return None, None
        steps = dict(zip(groups, grouped_unit_steps(loss, list(groups.values())), strict=True))
        return steps.get("enc"), steps.get("head")
