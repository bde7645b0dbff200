"""Alternation whose later stages multiply some layers' weight gradients by a matrix built from
what the previous stage's modality saw (MLA's orthogonal projector, IGM's flat projection).

The matrix for the next stage is built in on_stage_end, from a pass over the training set that runs
only up to the last projected layer, and only when a next stage exists to use it.
"""

from __future__ import annotations

import itertools
import time
from abc import abstractmethod
from typing import Any

import torch

from igm_core import gm
from igm_core.methods.alternating import Alternating
from igm_core.methods.base import Stage, StepContext, TransitionData


class Projected(Alternating):
    """Alternation whose later stages multiply some layers' weight gradients by a matrix."""

    scope_param = "scope"
    applies_to_source = True  # does the projection also apply when the same modality trains?

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proj: dict[str, torch.Tensor | gm.LowRankProjection] = {}
        self.source: str | None = None  # modality whose stage built self.proj
        self._check_pairs()

    def _check_pairs(self) -> None:
        """Refuse a model in which a modality's projected layers have no counterpart (same name,
        same input size) in the branch of the modality trained after it: the projection would
        silently do nothing. A head of one Linear layer (model.head_hidden: []) takes the
        encoder's features, so its projection needs encoders with equal out_dim."""
        stages = [s.modalities[0] for s in self.stages()]
        for k, nxt in dict.fromkeys(itertools.pairwise(stages)):
            if k == nxt and not self.applies_to_source:
                continue
            layers = self.projected_layers(k)
            target = self.model.branch_modules(nxt)
            if layers and not any(
                n in target and gm.input_dim(target[n]) == gm.input_dim(layer)
                for n, layer in layers.items()
            ):
                sizes = ", ".join(f"{n}: {gm.input_dim(layer)}" for n, layer in layers.items())
                raise ValueError(
                    f"{self.scope_param} {self.params[self.scope_param]!r}: no projected layer of "
                    f"{k!r} ({sizes} inputs) has a layer of the same name and input size in "
                    f"{nxt!r}'s branch, so the projection would do nothing; give the encoders the "
                    "same out_dim or the head a hidden layer (model.head_hidden)"
                )

    def projected_layers(self, m: str) -> dict[str, torch.nn.Module]:
        branch = self.model.branch_modules(m)
        return {n: branch[n] for n in gm.select_layers(branch, self.params[self.scope_param])}

    def modify(self, m: str, ctx: StepContext) -> None:
        if not self.proj or (m == self.source and not self.applies_to_source):
            return
        branch = self.model.branch_modules(m)
        swap = gm.GradSwap(ctx.log)
        for name, t in self.proj.items():
            layer = branch.get(name)
            if layer is None or layer.weight.grad is None or gm.input_dim(layer) != t.shape[0]:
                continue
            swap.replace(layer, gm.project_weight_grad(layer.weight.grad, t))
        if (norms := swap.norms()) is not None:
            b, a = norms
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
