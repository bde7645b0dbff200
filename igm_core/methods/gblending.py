"""Gradient-Blending (Wang, Tran, Feiszli, "What Makes Training Multi-modal Classification Networks
Hard?", CVPR 2020; the authors' release, facebookresearch/VMZ c2/lib/models/loss/loss_creator.py
`add_weighted_loss`, trains with given weights).

Loss: sum_k w_k L_k over the outputs k = each modality's head (its own cross-entropy) and the
fused output ("fused": the cross-entropy of the mean of the logits), the weights summing to 1.
The weights come from the overfitting-to-generalisation estimate on a held-out part V of the
training split (`holdout_fraction`, never trained on; T' is the rest): for each output k, a copy
of the model, from the current weights, trains on T' with L_k alone (the modality's branch, or
every branch for "fused") for n epochs with a fresh optimizer of the spec's kind; with L^T and L^V
the mean L_k over T' and V (eval mode) before (N) and after (N + n),
G = L^V_N - L^V_{N+n}, O = (L^V_{N+n} - L^T_{N+n}) - (L^V_N - L^T_N), w_k ~ max(G, 0) / O^2
(normalised to sum 1; equal weights if no output generalised).
- `mode: offline` (the default): the weights are estimated once, before the first epoch, from
  the initial weights, with n = `estimate_epochs` (default: the whole schedule), then fixed;
  the released code's practice (fixed weights, computed beforehand).
- `mode: online`: re-estimated every `super_epoch` epochs from the current weights, n =
  `super_epoch`.
- `mode: fixed`: the given `weights` (every modality and "fused"), normalised, nothing
  estimated: the released code's interface.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch.nn import functional as F

from igm_core.methods.base import EpochData, Stage, StepContext
from igm_core.methods.joint import Joint

FUSED = "fused"


def blend_weights(gains: dict[str, float], overfits: dict[str, float]) -> dict[str, float]:
    """w_k = max(G_k, 0) / O_k^2, normalised to sum 1 (equal when every G_k <= 0)."""
    raw = {k: max(gains[k], 0.0) / max(overfits[k] ** 2, 1e-12) for k in gains}
    total = sum(raw.values())
    if total <= 0:
        return {k: 1.0 / len(raw) for k in raw}
    return {k: v / total for k, v in raw.items()}


class GBlending(Joint):
    """Joint training on a blend of unimodal and fused losses (see the module text)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outputs = [*self.modalities, FUSED]
        self.weights: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        if self.params["mode"] == "fixed":
            given = self.params["weights"]
            total = sum(given[k] for k in self.outputs)
            self.weights = {k: given[k] / total for k in self.outputs}

    def holdout_fraction(self) -> float:
        return 0.0 if self.params["mode"] == "fixed" else self.params["holdout_fraction"]

    # -- the loss
    def output_losses(
        self, model: torch.nn.Module, xs: dict[str, torch.Tensor], y: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        with self.autocast():
            logits = {m: model.logits(m, xs[m]).float() for m in self.modalities}
        losses = {m: F.cross_entropy(v, y) for m, v in logits.items()}
        losses[FUSED] = F.cross_entropy(torch.stack(list(logits.values())).mean(0), y)
        return losses

    def output_loss(
        self, model: torch.nn.Module, k: str, xs: dict[str, torch.Tensor], y: torch.Tensor
    ) -> torch.Tensor:
        """L_k alone (only modality k's branch runs for a unimodal output)."""
        if k == FUSED:
            return self.output_losses(model, xs, y)[FUSED]
        with self.autocast():
            return F.cross_entropy(model.logits(k, xs[k]).float(), y)

    def step(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        losses = self.output_losses(self.model, xs, y)
        loss = sum(self.weights[k] * losses[k] for k in self.outputs)
        loss.backward()
        if ctx.log:
            for k in self.outputs:
                ctx.stats[f"gblend/{k}/weight"] = self.weights[k]
                ctx.stats[f"gblend/{k}/loss"] = losses[k].detach()
            for m in self.modalities:
                self.log_branch_grads(m, ctx)
        return loss.detach()

    # -- the estimate
    def due(self, epoch: int) -> bool:
        mode = self.params["mode"]
        return (mode == "offline" and epoch == 0) or (
            mode == "online" and epoch % self.params["super_epoch"] == 0
        )

    def on_epoch_start(self, stage: Stage, epoch: int, data: EpochData) -> dict[str, float]:
        if not self.due(epoch):
            return {}
        n = self.params["super_epoch"] if self.params["mode"] == "online" else None
        n = n or self.params["estimate_epochs"] or stage.epochs
        gains, overfits = {}, {}
        for i, k in enumerate(self.outputs):
            gains[k], overfits[k] = self.estimate(k, n, data, data.seed + i)
        self.weights = blend_weights(gains, overfits)
        self.history.append(
            {
                "epoch": epoch,
                "epochs": n,
                "sizes": {"train": len(data.train), "holdout": len(data.holdout)},
                "weights": dict(self.weights),
                "G": gains,
                "O": overfits,
            }
        )
        metrics = {}
        for k in self.outputs:
            metrics[f"gblend/{k}/weight"] = self.weights[k]
            metrics[f"gblend/{k}/generalization"] = gains[k]
            metrics[f"gblend/{k}/overfitting"] = overfits[k]
        return metrics

    @torch.no_grad()
    def mean_loss(self, model: torch.nn.Module, k: str, split: Any, data: EpochData) -> float:
        model.eval()
        total, n = 0.0, 0
        mods = self.modalities if k == FUSED else [k]
        for xs, y in split.batches(data.batch_size, modalities=mods, device=data.device):
            total += float(self.output_loss(model, k, xs, y)) * len(y)
            n += len(y)
        model.train()
        return total / n

    def estimate(self, k: str, epochs: int, data: EpochData, seed: int) -> tuple[float, float]:
        """(G, O) of output k over `epochs` epochs of training a copy on L_k alone."""
        twin = copy.deepcopy(self.model)
        params = (
            list(twin.parameters())
            if k == FUSED
            else [*twin.encoders[k].parameters(), *twin.head_of(k).parameters()]
        )
        opt = data.make_optimizer(params)
        before = [self.mean_loss(twin, k, s, data) for s in (data.train, data.holdout)]
        gen = torch.Generator().manual_seed(seed % (2**63 - 1))
        twin.train()
        mods = self.modalities if k == FUSED else [k]
        for _ in range(epochs):
            batches = data.train.batches(
                data.batch_size, modalities=mods, generator=gen, device=data.device
            )
            for xs, y in batches:
                opt.zero_grad(set_to_none=True)
                self.output_loss(twin, k, xs, y).backward()
                opt.step()
        after = [self.mean_loss(twin, k, s, data) for s in (data.train, data.holdout)]
        gain = before[1] - after[1]
        overfit = (after[1] - after[0]) - (before[1] - before[0])
        return gain, overfit

    def diagnostics(self) -> dict[str, Any]:
        return {"gblend": {"weights": self.weights, "estimates": self.history}}

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weights = dict(state.get("weights", self.weights))
        self.history = list(state.get("history", []))
