"""What the trainer reports while it runs: typed events, shared by every consumer.

`train(..., on_event=f)` calls f with one of these. The command line draws its progress bar from
them, and the service's worker writes `event.progress()` into the experiment row, so the progress
contract (which keys a row's `progress` holds) is written here once. Torch-free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

# the keys of an experiment row's `progress`, as the API documents them
PROGRESS_KEYS = (
    "stage",
    "n_stages",
    "epoch",
    "epochs",
    "step",
    "total_steps",
    "fraction",
    "eta_s",
    "modalities",
    "val_acc",
)


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}

    def progress(self) -> dict[str, Any]:
        """The part of this event that belongs in a progress record (keys of PROGRESS_KEYS)."""
        return {k: v for k, v in asdict(self).items() if k in PROGRESS_KEYS}


@dataclass(frozen=True)
class _AtPosition(Event):
    """An event at a position of the loop: a checkpoint's, to resume from."""

    stage: int
    epoch: int
    batch: int
    step: int


@dataclass(frozen=True)
class Resumed(_AtPosition):
    """Training continues from a checkpoint at this position."""

    type: ClassVar[str] = "resumed"


@dataclass(frozen=True)
class StageStart(Event):
    type: ClassVar[str] = "stage_start"
    stage: int
    n_stages: int
    modalities: list[str]
    epochs: int


@dataclass(frozen=True)
class Progress(Event):
    """Sent at most every quarter second, and at the last step."""

    type: ClassVar[str] = "progress"
    stage: int
    n_stages: int
    epoch: int
    epochs: int
    step: int
    total_steps: int
    fraction: float
    eta_s: float | None
    modalities: list[str]


@dataclass(frozen=True)
class EpochEnd(Event):
    """An epoch was evaluated on the validation split; `best` is the selected checkpoint so far."""

    type: ClassVar[str] = "epoch_end"
    stage: int
    epoch: int
    val: dict[str, Any]
    best: dict[str, Any]

    def progress(self) -> dict[str, Any]:
        return {"stage": self.stage, "epoch": self.epoch, "val_acc": self.val["acc"]}


@dataclass(frozen=True)
class Finished(Event):
    type: ClassVar[str] = "finished"
    test: dict[str, Any]
    best: dict[str, Any] = field(default_factory=dict)

    def progress(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Stopped(_AtPosition):
    """`should_stop` said so; the checkpoint holds this position."""

    type: ClassVar[str] = "stopped"
