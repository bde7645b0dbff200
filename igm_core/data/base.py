"""In-memory multimodal splits and the batch iterator the trainer uses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from igm_core import catalog

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """One split: a float tensor per modality (first dim N) and int64 labels of shape N."""

    x: dict[str, torch.Tensor]
    y: torch.Tensor

    def __post_init__(self) -> None:
        n = self.y.shape[0]
        for m, t in self.x.items():
            if t.shape[0] != n:
                raise ValueError(f"modality {m!r} has {t.shape[0]} samples, labels have {n}")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batches(
        self,
        batch_size: int,
        *,
        modalities: list[str] | None = None,
        generator: torch.Generator | None = None,
        start: int = 0,
        device: torch.device | str | None = None,
    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """Yield (x, y) batches; shuffled when a generator is given; `start` skips batches."""
        names = modalities or list(self.x)
        order = torch.randperm(len(self), generator=generator) if generator is not None else None
        non_blocking = device is not None and torch.device(device).type == "cuda"
        for b in range(start, self.num_batches(batch_size)):
            sl = slice(b * batch_size, (b + 1) * batch_size)
            idx = order[sl] if order is not None else None
            xs = {}
            for m in names:
                t = self.x[m][idx] if idx is not None else self.x[m][sl]
                xs[m] = t.to(device, non_blocking=non_blocking) if device is not None else t
            y = self.y[idx] if idx is not None else self.y[sl]
            yield xs, (y.to(device, non_blocking=non_blocking) if device is not None else y)


@dataclass
class MultimodalData:
    splits: dict[str, Split]
    n_classes: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(self.splits["train"].x)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {m: tuple(t.shape[1:]) for m, t in self.splits["train"].x.items()}

    def select(self, modalities: list[str]) -> MultimodalData:
        """The same data restricted to (and ordered as) `modalities`."""
        splits = {
            name: Split({m: s.x[m] for m in modalities}, s.y) for name, s in self.splits.items()
        }
        return MultimodalData(splits, self.n_classes, self.info)


def load_dataset(name: str, params: dict[str, Any], seed: int) -> MultimodalData:
    """Build a registered dataset from validated parameters."""
    entry = catalog.DATASETS.get(name)
    return entry.load()(entry.params.model_validate(params), seed)
