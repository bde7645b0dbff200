"""Multimodal splits and the batch iterator the trainer uses.

Two kinds of split share one interface (len, num_batches, batches, y, shapes, select):
- `Split`: tensors in memory (built-in and feature datasets), sliced per batch;
- `DatasetSplit`: samples loaded per index by a `SampleSource` (decoded or cached audio and frames)
  through a torch DataLoader with worker processes and pinned memory. Each sample's random draws
  (crops, flips, frame choice) come from a generator seeded by (epoch seed, index), so a run is
  reproducible and resumable whatever the number of workers.
A shuffled iteration (a generator given) is training: random transforms; an ordered one is
evaluation: deterministic transforms.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader

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

    @property
    def modalities(self) -> list[str]:
        return list(self.x)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {m: tuple(t.shape[1:]) for m, t in self.x.items()}

    def select(self, modalities: list[str]) -> Split:
        return Split({m: self.x[m] for m in modalities}, self.y)

    def subset(self, indices: list[int]) -> Split:
        """The samples at `indices`, in that order."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return Split({m: t[idx] for m, t in self.x.items()}, self.y[idx])


class SampleSource(Protocol):
    """Loads one sample's modalities; `rng` None means evaluation (deterministic transforms)."""

    modalities: list[str]
    labels: np.ndarray  # int64, one per sample

    def load(
        self, index: int, modalities: list[str], rng: np.random.Generator | None
    ) -> dict[str, torch.Tensor]: ...


class _Indexed(torch.utils.data.Dataset):
    """(index, epoch seed) pairs -> (sample dict, label) through a SampleSource."""

    def __init__(
        self, source: SampleSource, modalities: list[str], order: list[int], seed: int | None
    ) -> None:
        self.source, self.modalities, self.order, self.seed = source, modalities, order, seed

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], int]:
        index = self.order[i]
        rng = None if self.seed is None else np.random.default_rng([self.seed, index])
        return self.source.load(index, self.modalities, rng), int(self.source.labels[index])


@dataclass
class DatasetSplit:
    """A split whose samples a SampleSource loads on demand, batched by a DataLoader."""

    source: SampleSource
    modalities_: list[str] | None = None
    num_workers: int = 0
    pin_memory: bool = True
    indices: list[int] | None = None  # the source's samples this split holds (default: all)

    @property
    def modalities(self) -> list[str]:
        return self.modalities_ or list(self.source.modalities)

    def _index(self) -> list[int]:
        return self.indices if self.indices is not None else list(range(len(self.source.labels)))

    @property
    def y(self) -> torch.Tensor:
        return torch.as_tensor(np.asarray(self.source.labels)[self._index()], dtype=torch.long)

    def __len__(self) -> int:
        return len(self._index())

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def _finish(self, xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The source's work on a whole batch on its device (device-side augmentation), if any."""
        finish = getattr(self.source, "finish_batch", None)
        return finish(xs) if finish is not None else xs

    def shapes(self) -> dict[str, tuple[int, ...]]:
        sample = self.source.load(0, self.modalities, None)
        batch = self._finish({m: t.unsqueeze(0) for m, t in sample.items()})
        return {m: tuple(t.shape[1:]) for m, t in batch.items()}

    def select(self, modalities: list[str]) -> DatasetSplit:
        return DatasetSplit(
            self.source, list(modalities), self.num_workers, self.pin_memory, self.indices
        )

    def subset(self, indices: list[int]) -> DatasetSplit:
        """The samples at `indices` (positions in this split), in that order."""
        index = self._index()
        return DatasetSplit(
            self.source,
            self.modalities_,
            self.num_workers,
            self.pin_memory,
            [index[i] for i in indices],
        )

    def batches(
        self,
        batch_size: int,
        *,
        modalities: list[str] | None = None,
        generator: torch.Generator | None = None,
        start: int = 0,
        device: torch.device | str | None = None,
    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        names = modalities or self.modalities
        order = torch.randperm(len(self), generator=generator) if generator is not None else None
        index = self._index()
        order = [index[i] for i in order.tolist()] if order is not None else index
        seed = None if generator is None else int(torch.randint(2**62, (1,), generator=generator))
        order = order[start * batch_size :]
        on_cuda = device is not None and torch.device(device).type == "cuda"
        loader = DataLoader(
            _Indexed(self.source, names, order, seed),
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and on_cuda,
            persistent_workers=False,
            prefetch_factor=4 if self.num_workers else None,
        )
        if on_cuda:
            yield from self._prefetched(loader, torch.device(device))
            return
        for xs, y in loader:
            if device is not None:
                xs = {m: t.to(device) for m, t in xs.items()}
                y = y.to(device)
            yield self._finish(xs), y

    def _prefetched(
        self, loader: DataLoader, device: torch.device
    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """CUDA: the next batch's pinned host-to-device copies (and its device-side
        augmentation) run on a side stream while the current batch trains."""
        stream = torch.cuda.Stream(device)

        def stage(batch: Any) -> Any:
            xs, y = batch
            with torch.cuda.stream(stream):
                xs = {m: t.to(device, non_blocking=True) for m, t in xs.items()}
                return self._finish(xs), y.to(device, non_blocking=True)

        it = iter(loader)
        ahead = next(it, None)
        ahead = stage(ahead) if ahead is not None else None
        while ahead is not None:
            torch.cuda.current_stream(device).wait_stream(stream)
            xs, y = ahead
            for t in (*xs.values(), y):
                t.record_stream(torch.cuda.current_stream(device))
            nxt = next(it, None)
            ahead = stage(nxt) if nxt is not None else None
            yield xs, y


def hold_out(split: Split | DatasetSplit, fraction: float, seed: int) -> tuple[Any, Any]:
    """(the rest, the held-out part): `fraction` of the split, stratified by label where every
    class has two samples or more, chosen by `seed`; both keep the split's order."""
    from sklearn.model_selection import train_test_split

    y = split.y.numpy()
    n_held = max(1, round(fraction * len(y)))
    if n_held >= len(y):
        raise ValueError(f"cannot hold out {fraction} of a training split of {len(y)} samples")
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 and n_held >= (counts > 0).sum() else None
    rest, held = train_test_split(
        np.arange(len(y)), test_size=n_held, stratify=stratify, random_state=seed % 2**32
    )
    return split.subset(sorted(rest.tolist())), split.subset(sorted(held.tolist()))


@dataclass
class MultimodalData:
    splits: dict[str, Split | DatasetSplit]
    n_classes: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return self.splits["train"].modalities

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return self.splits["train"].shapes()

    def select(self, modalities: list[str]) -> MultimodalData:
        """The same data restricted to (and ordered as) `modalities`."""
        splits = {name: s.select(modalities) for name, s in self.splits.items()}
        return MultimodalData(splits, self.n_classes, self.info)
