"""Where a run stands (Position), the best checkpoint so far (Best), and the checkpoint file that
lets a stopped run resume exactly: model, method state, optimizer, history, RNG and position.

Files are written atomically (a temporary file, then a rename): a crash mid-write never leaves a
broken checkpoint or result.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"


def derive_seed(*parts: int) -> int:
    """A seed from (run seed, stage, epoch, ...): the data order and random draws of a resumed
    run are those of the run it continues."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


@dataclass
class Position:
    stage: int = 0
    epoch: int = 0
    batch: int = 0
    step: int = 0


@dataclass
class Best:
    score: float = -1.0
    stage: int = -1
    epoch: int = -1
    val: dict[str, Any] = field(default_factory=dict)
    state: dict[str, torch.Tensor] | None = None


@dataclass
class RunState:
    """Everything besides the model and method that a resumed run needs."""

    pos: Position = field(default_factory=Position)
    best: Best = field(default_factory=Best)
    history: list[dict[str, Any]] = field(default_factory=list)
    transitions: list[dict[str, float]] = field(default_factory=list)
    elapsed: float = 0.0  # wall seconds of earlier sessions
    optimizer: dict[str, Any] | None = None  # optimizer and scheduler state inside a stage


def save_atomic(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def save(
    path: Path,
    *,
    spec: Any,
    model: torch.nn.Module,
    method: Any,
    state: RunState,
    elapsed: float,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(
        path,
        {
            "spec": spec.to_dict(),
            "spec_hash": spec.hash(),
            "model": model.state_dict(),
            "method": method.state_dict(),
            "position": vars(state.pos),
            "best": vars(state.best),
            "history": state.history,
            "transitions": state.transitions,
            "elapsed": elapsed,
            "optimizer": None
            if optimizer is None
            else {"opt": optimizer.state_dict(), "sched": scheduler.state_dict()},
            "rng": torch.get_rng_state(),
        },
    )


def load(
    path: Path, *, spec: Any, model: torch.nn.Module, method: Any, device: torch.device
) -> RunState:
    """Restore model, method and the CPU RNG from `path`; the rest of the run's state returned."""
    ck = torch.load(path, map_location=device, weights_only=False)
    if ck["spec_hash"] != spec.hash():
        raise RuntimeError(f"{path} belongs to a different spec; use another --out or --fresh")
    model.load_state_dict(ck["model"])
    method.load_state_dict(ck["method"])
    torch.set_rng_state(ck["rng"].cpu())  # map_location moved it
    return RunState(
        Position(**ck["position"]),
        Best(**ck["best"]),
        ck["history"],
        ck["transitions"],
        ck["elapsed"],
        ck["optimizer"],
    )
