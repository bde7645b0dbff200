"""What every training method shares: stages, the step context, fusion and gradient statistics.

A method decides what one training step computes (losses, backward passes, gradient changes) and
what happens between stages; the trainer owns the loop, the optimizer, evaluation and tracking.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from igm_core.models import MultimodalModel


@dataclass(frozen=True)
class Stage:
    index: int
    modalities: tuple[str, ...]  # trained in this stage
    epochs: int


@dataclass
class TransitionData:
    """How a method reads the training set between stages (inputs only, in order)."""

    batches: Callable[[str], Iterable[torch.Tensor]]
    batch_size: int


@dataclass
class StepContext:
    stage: Stage
    epoch: int  # within the stage
    step: int  # global, counted from the start of training
    log: bool  # compute gradient statistics on this step
    seed: int  # seeds this step's random draws (mixup, noise), so a resumed run repeats them
    stats: dict[str, float | torch.Tensor] = field(default_factory=dict)
    batch: int = 0  # mini-batch index within the epoch
    batches: int = 1  # mini-batches per epoch
    # steps the optimizer and clears the gradients, for a method that updates more than once per
    # mini-batch (MLA); the trainer still steps once after `step` returns
    step_optimizer: Callable[[], None] | None = None

    def generator(self, device: torch.device) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(self.seed)


def grad_norm(params: list[torch.nn.Parameter]) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class Method(ABC):
    """Base class; subclasses implement `step` and may change `stages`. `modalities` are the
    ones the method trains and evaluates (the spec's, or the unimodal one)."""

    def __init__(
        self,
        params: dict[str, Any],
        model: MultimodalModel,
        spec: Any,
        device: torch.device,
        autocast: Any = contextlib.nullcontext,
    ) -> None:
        self.params = params
        self.model = model
        self.spec = spec
        self.device = device
        self.autocast = autocast
        self.modalities = list(spec.used_modalities)

    # -- schedule
    def stages(self) -> list[Stage]:
        return [Stage(0, tuple(self.modalities), self.spec.schedule.epochs)]

    def eval_modalities(self) -> list[str]:
        return list(self.modalities)

    # -- one step: gradients only; the trainer calls optimizer.step() afterwards
    @abstractmethod
    def step(self, xs: dict[str, torch.Tensor], y: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Leave the gradients of this step in .grad and return the (detached) loss."""

    def log_branch_grads(self, m: str, ctx: StepContext) -> None:
        ctx.stats[f"grad/{m}/encoder_norm"] = grad_norm(list(self.model.encoders[m].parameters()))
        ctx.stats[f"grad/{m}/head_norm"] = grad_norm(list(self.model.head_of(m).parameters()))
        ctx.stats[f"grad/{m}/norm"] = grad_norm(self.model.branch_parameters(m))

    # -- between stages
    def on_stage_start(self, stage: Stage, fresh: bool = True) -> None:  # noqa: B027
        """Called when a stage starts (fresh) or resumes part-way (not fresh)."""

    def on_stage_end(
        self, stage: Stage, next_stage: Stage | None, data: TransitionData
    ) -> dict[str, float]:
        """Called after a stage's last epoch; returns metrics to log."""
        return {}

    # -- evaluation
    # late-fusion rules the method can compare on one trained model (result["fusions"])
    fusions: tuple[str, ...] = ()

    def fuse(self, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        """Fused class probabilities from per-modality logits (default: softmax of mean logits)."""
        return F.softmax(torch.stack([v.float() for v in logits.values()]).mean(0), dim=1)

    def fuse_as(self, logits: dict[str, torch.Tensor], fusion: str) -> torch.Tensor:
        """Fused probabilities by one of `fusions` (whatever the configured one is)."""
        raise ValueError(f"{type(self).__name__} offers no choice of fusion")

    @property
    def calibrates(self) -> bool:
        """Does the configured fusion need `calibrate` on the validation split before `fuse`?"""
        return False

    def calibrate(self, logits: dict[str, torch.Tensor], y: torch.Tensor) -> dict[str, Any]:
        """Fit the fusion's parameters on VALIDATION logits and labels; what was fitted."""
        return {}

    def diagnostics(self) -> dict[str, Any]:
        """Method-specific diagnostics for result.json."""
        return {}

    # -- checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027
        """Restore what state_dict returned (nothing for stateless methods)."""
