"""PMR: Prototypical Modal Rebalance (Fan et al., CVPR 2023; code
fanyunfeng-bit/Modal-Imbalance-PMR, main_Prototype_grad.py).

Joint training on the cross-entropy of the fused output, plus prototype terms on each modality's
encoder features z_m:
- prototypes: per class, the mean of z_m over a share (`proto_fraction`, 10%) of the training
  split in a shuffled order, eval mode, no gradient; computed before the first epoch and after
  every epoch, from the epoch after the first with momentum: c <- (1 - mu) c_new + mu c_old;
- prototype cross-entropy PCE_m = CE(-||z_m - c_k||_2 over classes k, y) (Euclidean distance);
- imbalance ratio rho from the prototype scores s_m = sum_i softmax(-d(z_m,i, c))[y_i]: with two
  modalities rho = s_a / s_b; the modality with the lower score (the slow learner) gets alpha PCE,
  the other 0 (the released rule; equal scores: neither). With more modalities every modality with
  s_m below the mean of the others' scores gets alpha PCE (this project's extension);
- the prototypical entropy regulariser of the paper (for the dominant modality, early in
  training) is not in the released training script: `entropy_weight` (default 0, as released)
  subtracts mu_e H(softmax(-d(z_m, c))) for each modality whose score is above the others' mean,
  while epoch <= `entropy_end`.
All of it inside the modulation window (epochs modulation_start..modulation_end, from 0); outside
it plain joint training. What is changed is the loss, so only the encoders feel the prototype
terms (prototypes are constants; the heads see the fused cross-entropy only).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from igm_core.methods.base import EpochData, Stage, StepContext
from igm_core.methods.joint import Joint


def prototype_logits(z: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """-||z_i - c_k||_2 (N x K)."""
    return -torch.cdist(z.float(), protos.float())


def pmr_coefficients(scores: torch.Tensor, alpha: float) -> torch.Tensor:
    """alpha for each modality scoring below the mean of the others, 0 otherwise."""
    others = (scores.sum() - scores) / max(len(scores) - 1, 1)
    return torch.where(scores < others, torch.full_like(scores, alpha), torch.zeros_like(scores))


class PMR(Joint):
    """Joint training with prototype cross-entropy for the slow modality (see the module text)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.protos: dict[str, torch.Tensor] = {}  # used in the current epoch
        self.previous: dict[str, torch.Tensor] = {}  # those of the epoch before (momentum)

    def in_window(self, epoch: int) -> bool:
        end = self.params["modulation_end"]
        return self.params["modulation_start"] <= epoch <= (math.inf if end is None else end)

    @torch.no_grad()
    def class_means(self, data: EpochData) -> dict[str, torch.Tensor]:
        """Per-class feature means over the first `proto_fraction` of a shuffled training pass."""
        share = self.params["proto_fraction"]
        n_batches = max(1, int(data.train.num_batches(data.batch_size) * share))
        sums: dict[str, torch.Tensor] = {}
        counts = torch.zeros(data.n_classes, device=data.device)
        self.model.eval()
        gen = data.generator()
        batches = data.train.batches(
            data.batch_size, modalities=self.modalities, generator=gen, device=data.device
        )
        with self.autocast():
            for b, (xs, y) in enumerate(batches):
                if b >= n_batches:
                    break
                onehot = F.one_hot(y, data.n_classes).float()
                counts += onehot.sum(0)
                for m in self.modalities:
                    z = self.model.features(m, xs[m]).float()
                    sums[m] = sums.get(m, 0) + onehot.T @ z
        self.model.train()
        seen = counts > 0
        means = {}
        for m, s in sums.items():
            mean = s / counts.clamp_min(1)[:, None]
            # a class missing from the sample keeps its previous prototype (or the overall mean)
            fallback = self.protos.get(m, (s.sum(0) / counts.sum())[None].expand_as(s))
            means[m] = torch.where(seen[:, None], mean, fallback)
        return means

    def on_epoch_start(self, stage: Stage, epoch: int, data: EpochData) -> dict[str, float]:
        fresh = self.class_means(data)
        mu = self.params["momentum_coef"]
        for m, c in fresh.items():
            # the released loop: plain means before epoch 0 and after it, momentum from then on
            self.protos[m] = (1 - mu) * c + mu * self.previous[m] if epoch >= 2 else c
        self.previous = {m: c.clone() for m, c in self.protos.items()}
        return {
            f"pmr/{m}/proto_spread": float(torch.pdist(c).mean()) if len(c) > 1 else 0.0
            for m, c in self.protos.items()
        }

    def step(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        with self.autocast():
            feats = {m: self.model.features(m, xs[m]) for m in self.modalities}
            logits = {m: self.model.head_of(m)(feats[m]) for m in self.modalities}
            loss = F.cross_entropy(torch.stack(list(logits.values())).mean(0).float(), y)
        total = loss
        if len(self.modalities) > 1 and self.in_window(ctx.epoch):
            total = loss + self.prototype_terms(feats, y, ctx)
        total.backward()
        if ctx.log:
            for m in self.modalities:
                self.log_branch_grads(m, ctx)
        return total.detach()

    def prototype_terms(
        self, feats: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext
    ) -> torch.Tensor:
        p = self.params
        sims = {m: prototype_logits(feats[m], self.protos[m]) for m in self.modalities}
        with torch.no_grad():
            scores = torch.stack(
                [F.softmax(s, 1).gather(1, y[:, None]).sum() for s in sims.values()]
            )
            coeffs = pmr_coefficients(scores, p["alpha"])
            others = (scores.sum() - scores) / (len(scores) - 1)
        extra = torch.zeros((), device=y.device)
        entropy_on = p["entropy_weight"] > 0 and ctx.epoch <= (
            p["entropy_end"] if p["entropy_end"] is not None else math.inf
        )
        for i, (m, s) in enumerate(sims.items()):
            pce = F.cross_entropy(s, y)
            extra = extra + coeffs[i] * pce
            if entropy_on and scores[i] > others[i]:
                logp = F.log_softmax(s, 1)
                extra = extra - p["entropy_weight"] * -(logp.exp() * logp).sum(1).mean()
            if ctx.log:
                d_own = -s.detach().gather(1, y[:, None]).mean()
                ctx.stats[f"pmr/{m}/proto_score"] = scores[i] / len(y)
                ctx.stats[f"pmr/{m}/ratio"] = scores[i] / others[i].clamp_min(1e-12)
                ctx.stats[f"pmr/{m}/coeff"] = coeffs[i]
                ctx.stats[f"pmr/{m}/proto_loss"] = pce.detach()
                ctx.stats[f"pmr/{m}/proto_dist"] = d_own
        return extra

    def state_dict(self) -> dict[str, Any]:
        return {"protos": self.protos, "previous": self.previous}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.protos = {m: c.to(self.device) for m, c in state.get("protos", {}).items()}
        self.previous = {m: c.to(self.device) for m, c in state.get("previous", {}).items()}
