"""What every training method shares: stages, the step context, fusion and gradient statistics.

A method decides what one training step computes (losses, backward passes, gradient changes) and
what happens between stages; the trainer owns the loop, the optimizer, evaluation and tracking.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

from igm_core.models import MultimodalModel

if TYPE_CHECKING:
    from igm_core.data.base import Split

# Training batches per forward in the covariance pass: large forwards keep a GPU busy; on a CPU
# they only spill the caches (measured slower), so there each batch goes alone.
TRANSITION_CHUNK = {"cuda": 8, "cpu": 1}


@dataclass(frozen=True)
class Stage:
    index: int
    modalities: tuple[str, ...]  # trained in this stage
    epochs: int
    # the modalities whose inputs the stage's batches carry, when more than the trained ones
    # (ReconBoost's boosting stage reads the other modalities' predictions)
    inputs: tuple[str, ...] = ()

    @property
    def loaded(self) -> tuple[str, ...]:
        return self.inputs or self.modalities


@dataclass
class TransitionData:
    """How a method reads the training set between stages (inputs only, in order)."""

    batches: Callable[[str], Iterable[torch.Tensor]]
    batch_size: int


def transition_data(split: Split, batch_size: int, device: torch.device) -> TransitionData:
    """The training inputs, in order, for the covariance pass between stages."""
    chunk = batch_size * TRANSITION_CHUNK.get(device.type, 1)
    return TransitionData(
        batches=lambda m: (xs[m] for xs, _ in split.batches(chunk, modalities=[m], device=device)),
        batch_size=batch_size,
    )


def stage_parameters(model: MultimodalModel, stage: Stage) -> list[torch.nn.Parameter]:
    """The branches of the stage's trained modalities (a shared head once)."""
    seen: dict[int, torch.nn.Parameter] = {}
    for m in stage.modalities:
        for p in model.branch_parameters(m):
            seen.setdefault(id(p), p)
    return list(seen.values())


@dataclass
class EpochData:
    """What a method's epoch hooks may read: never the test split.

    `train` is the split the trainer iterates (less the held-out part, if the method asked for
    one); `holdout` that part; `seed` is derived from (run seed, stage, epoch), so a hook's own
    draws (shuffles, clusterings) repeat when a stopped run resumes; `make_optimizer` builds the
    spec's optimizer, fresh, over the given parameters.
    """

    train: Any
    holdout: Any | None
    val: Any
    n_classes: int
    batch_size: int
    device: torch.device
    seed: int
    make_optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator for this hook's draws (`offset` tells several apart)."""
        return torch.Generator().manual_seed((self.seed + offset) % (2**63 - 1))


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

    # -- what the trainer hands the method
    def holdout_fraction(self) -> float:
        """The share of the training split the trainer holds out for the method (stratified,
        fixed by the seed): it is never trained on, and reaches the hooks as `data.holdout`."""
        return 0.0

    def stage_parameters(self, stage: Stage) -> list[torch.nn.Parameter]:
        """What the stage's optimizer updates: the branches of its trained modalities (a shared
        head once)."""
        return stage_parameters(self.model, stage)

    def lr_scale(self, stage: Stage) -> float:
        """A factor on the spec's learning rate for this stage's optimizer."""
        return 1.0

    def selectable(self, stage: Stage, epoch: int) -> bool:
        """May the model after this epoch be selected as the best (on validation)?"""
        return True

    # -- between epochs: exactly once per epoch, also across a stop and resume
    def on_epoch_start(self, stage: Stage, epoch: int, data: EpochData) -> dict[str, float]:
        """Before the epoch's first step (after the stop check, so a stop before it skips it);
        returns metrics to log."""
        return {}

    def on_epoch_end(self, stage: Stage, epoch: int, data: EpochData) -> dict[str, float]:
        """After the epoch's validation, before its checkpoint; may change the model."""
        return {}

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
