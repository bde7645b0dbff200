"""ReconBoost (Hua, Xu, Bao, Yang, Huang, ICML 2024; code huacong/ReconBoost, train.py and
models/dynamic_net.py).

The schedule's stages are boosting rounds: round r (its epochs from schedule.stage_epochs) boosts
modality order[r mod M], then `correct_epochs` epochs of global rectification follow; the trainer
runs them as two stages, each with a fresh optimizer.
- Boosting (modality m; its encoder and, with `shared_head`, the one head all modalities share):
  with F the ensemble's output, boost_rate times the sum of the logits of the modalities boosted
  in earlier rounds (no gradient; nothing yet in the first round), q = softmax(F)[y] (1 while the
  ensemble is empty), the per-sample loss is
  (-w1 log p_m[y] + w2 q log p_m[y]) / C, the reconcilement term lowering the weight of samples
  the other modalities already get right (`weight1` 5, `weight2` 1, C classes).
- Global rectification: every modality boosted so far (encoders, head) and the learnable scalar
  boost_rate (initial `boost_rate`) train on CE(boost_rate sum_m logits_m, y).
- Prediction: softmax(boost_rate sum_m logits_m).
- The learning rate of both phases is the spec's, times lr_decay_gamma every lr_decay_rounds
  rounds (0.1 every 30 for CREMA-D in the released code).
The released code adds alpha MSE(softmax(p_m), softmax(p_prev)) with both sides detached: it
carries no gradient, so it is logged here (`reconboost/<m>/ga_loss`) and not added. A checkpoint
may be selected after a complete round (after its rectification), when the released code tests;
boost_rate is the method's (not the model's), so the test fusion uses its final value (a positive
scale: accuracy and macro-F1 are those of the selected weights, loss and mAP use the final scale).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from igm_core.methods.base import Method, Stage, StepContext


def boosting_loss(
    logits: torch.Tensor, y: torch.Tensor, q: torch.Tensor, w1: float, w2: float
) -> torch.Tensor:
    """mean_i (-w1 log p[y_i] + w2 q_i log p[y_i]) / C."""
    logp = F.log_softmax(logits.float(), 1).gather(1, y[:, None]).squeeze(1)
    return ((-w1 * logp + w2 * q * logp) / logits.shape[1]).mean()


class ReconBoost(Method):
    """Alternating boosting with reconcilement and global rectification (see the module text)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.boost_rate = torch.nn.Parameter(
            torch.tensor(float(self.params["boost_rate"]), device=self.device)
        )
        self.kinds: dict[int, str] = {}
        self.members: dict[int, tuple[str, ...]] = {}  # the ensemble before each stage
        self.stages()

    def stages(self) -> list[Stage]:
        sched = self.spec.schedule
        order = sched.modality_order
        out: list[Stage] = []
        boosted: list[str] = []
        for r, epochs in enumerate(sched.stage_epochs):
            m = order[r % len(order)]
            earlier = tuple(boosted)
            out.append(Stage(2 * r, (m,), epochs, inputs=(m, *(o for o in earlier if o != m))))
            self.kinds[2 * r], self.members[2 * r] = "boost", earlier
            if m not in boosted:
                boosted.append(m)
            ensemble = tuple(o for o in order if o in boosted)
            out.append(Stage(2 * r + 1, ensemble, self.params["correct_epochs"]))
            self.kinds[2 * r + 1], self.members[2 * r + 1] = "rectify", ensemble
        return out

    def stage_parameters(self, stage: Stage) -> list[torch.nn.Parameter]:
        params = super().stage_parameters(stage)
        return [*params, self.boost_rate] if self.kinds[stage.index] == "rectify" else params

    def lr_scale(self, stage: Stage) -> float:
        rounds = stage.index // 2
        return self.params["lr_decay_gamma"] ** (rounds // self.params["lr_decay_rounds"])

    def selectable(self, stage: Stage, epoch: int) -> bool:
        return self.kinds[stage.index] == "rectify" and epoch == stage.epochs - 1

    def fuse(self, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        total = torch.stack([v.float() for v in logits.values()]).sum(0)
        return F.softmax(self.boost_rate.detach().float() * total, dim=1)

    def step(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self.kinds[ctx.stage.index] == "rectify":
            return self.rectify(xs, y, ctx)
        m = ctx.stage.modalities[0]
        others = [o for o in self.members[ctx.stage.index] if o != m]
        with self.autocast():
            logits = self.model.logits(m, xs[m])
            with torch.no_grad():
                if others:
                    ens = {o: self.model.logits(o, xs[o]).float() for o in others}
                    joint = self.boost_rate.detach() * torch.stack(list(ens.values())).sum(0)
                    q = F.softmax(joint, 1).gather(1, y[:, None]).squeeze(1)
                else:
                    q = torch.ones(len(y), device=y.device)
        loss = boosting_loss(logits, y, q, self.params["weight1"], self.params["weight2"])
        loss.backward()
        if ctx.log:
            self.log_branch_grads(m, ctx)
            ctx.stats[f"reconboost/{m}/q_join"] = q.mean()
            if others:
                p_m = F.softmax(logits.detach().float(), 1)
                p_prev = F.softmax(ens[others[-1]], 1)
                ctx.stats[f"reconboost/{m}/ga_loss"] = F.mse_loss(p_m, p_prev)
        return loss.detach()

    def rectify(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext):
        mods = ctx.stage.modalities
        with self.autocast():
            total = torch.stack([self.model.logits(m, xs[m]).float() for m in mods]).sum(0)
            loss = F.cross_entropy(self.boost_rate * total, y)
        loss.backward()
        if ctx.log:
            for m in mods:
                self.log_branch_grads(m, ctx)
            ctx.stats["reconboost/fused/boost_rate"] = self.boost_rate.detach()
        return loss.detach()

    def diagnostics(self) -> dict[str, Any]:
        return {"boost_rate": float(self.boost_rate.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {"boost_rate": self.boost_rate.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "boost_rate" in state:
            with torch.no_grad():
                self.boost_rate.copy_(state["boost_rate"])
