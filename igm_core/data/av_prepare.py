"""Writing the decoded-clip cache (`igm prepare`): decode every clip of a split once, in
DataLoader worker processes, into a temporary folder renamed into place (see av_cache for the
layout). A cache for the same settings and files already there is kept."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from igm_core.data.atomic import write_atomically
from igm_core.data.av import AVSource, plan
from igm_core.data.av_cache import cache_root, fingerprint, settings
from igm_core.data.av_meta import (
    AVParams,
    Clip,
    CremaDParams,
    KineticsSoundsParams,
    spectrogram_shape,
    store_size,
)

PARAMS: dict[str, type[AVParams]] = {
    "crema_d": CremaDParams,
    "kinetics_sounds": KineticsSoundsParams,
}
Progress = Callable[[str, int, int], None]  # (split, clips done, clips in split)


@dataclass
class SplitReport:
    split: str
    clips: int
    frames: int
    path: Path
    bytes: int
    written: bool  # False: an up-to-date cache was already there


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def _write(tmp: Path, source: Any, p: AVParams, progress: Callable[[int], None]) -> None:
    """Decode every clip of the source into tmp (DataLoader workers decode in parallel)."""
    import torch

    clips = source.clips
    counts = [len(c.frames) for c in clips]
    side = store_size(p)
    audio = np.lib.format.open_memmap(
        tmp / "audio.npy", "w+", np.dtype(p.cache_dtype), (len(clips), *spectrogram_shape(p))
    )
    frames = np.lib.format.open_memmap(
        tmp / "frames.npy", "w+", np.uint8, (sum(counts), side, side, 3)
    )
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    loader = torch.utils.data.DataLoader(
        _Decode(source), batch_size=None, num_workers=p.num_workers, shuffle=False
    )
    for i, (spec, squares) in enumerate(loader):
        audio[i] = spec.numpy()
        frames[offsets[i] : offsets[i + 1]] = squares.numpy()
        progress(i + 1)
    audio.flush()
    frames.flush()
    del audio, frames
    np.save(tmp / "offsets.npy", offsets)


class _Decode:
    """index -> (spectrogram, all frames as squares) of one clip, for the DataLoader."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source.clips)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self.source.decode_audio(index), self.source.decode_frames(index)


def prepare_split(
    split: str, clips: list[Clip], p: AVParams, progress: Progress | None = None
) -> SplitReport:
    """Write one split's cache unless an up-to-date one exists; atomic (temp folder, rename)."""
    report = progress or (lambda s, d, n: None)
    final = cache_root(p) / fingerprint(p, clips)
    n_frames = sum(len(c.frames) for c in clips)
    if (final / "manifest.json").is_file():
        report(split, len(clips), len(clips))
        return SplitReport(split, len(clips), n_frames, final, _size(final), False)
    manifest = {"settings": settings(p), "clips": [c.name for c in clips]}
    source = AVSource(clips, p, None)
    write_atomically(
        final, lambda tmp: _write(tmp, source, p, lambda d: report(split, d, len(clips))), manifest
    )
    return SplitReport(split, len(clips), n_frames, final, _size(final), True)


def prepare(
    dataset: str,
    root: str,
    params: dict[str, Any] | None = None,
    *,
    progress: Progress | None = None,
) -> list[SplitReport]:
    """Decode the train, val and test clips of `dataset` at `root` once, into its cache."""
    if dataset not in PARAMS:
        raise KeyError(f"unknown clip dataset {dataset!r}; choose one of: {', '.join(PARAMS)}")
    p = PARAMS[dataset].model_validate({**(params or {}), "root": root})
    pl = plan(dataset, p)
    return [prepare_split(split, clips, p, progress) for split, clips in pl.clips.items()]
