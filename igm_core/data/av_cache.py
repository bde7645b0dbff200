"""The decoded-clip cache of the audio-visual datasets: its layout, fingerprint and reading.

av_prepare.py writes it (`igm prepare`); av.py reads it, memory-mapped.

Decoding WAV and JPEG files every epoch dominates the CPU time of an audio-visual run, so
`prepare` decodes each split once into root/.igm_cache/<fingerprint>/:

    audio.npy     N x 1 x F x T   float16 or float32 log spectrograms (final, deterministic)
    frames.npy    M x S x S x 3   uint8: every frame of every clip as the canonical S x S square
                                  (S = round(1.15 * image_size)), ragged over clips
    offsets.npy   N + 1           int64: clip i's frames are frames[offsets[i]:offsets[i + 1]]
    manifest.json                 what was hashed, and the clip names

Frames are stored ragged rather than padded to the longest clip, which would multiply the size
for datasets with a few long clips. The crops, flips and frame choice still happen per sample, so
training stays random.

The fingerprint hashes the settings that change the stored tensors (sample rate, seconds, n_fft,
hop, square side, dtype) and a manifest of the split (clip names in order, and the size and
mtime of every WAV and frame file), so a changed parameter, an edited, added or removed file, or
a different clip list never reads a stale cache: it simply is not found. A cache is written in a
temporary folder and renamed into place, so a reader never sees a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from igm_core.data.av_meta import AVParams, Clip, spectrogram_shape, store_size

FORMAT = 1
CACHE_DIR = ".igm_cache"


def settings(p: AVParams) -> dict[str, Any]:
    """The parameters that change what the cache holds."""
    return {
        "format": FORMAT,
        "sample_rate": p.sample_rate,
        "seconds": p.seconds,
        "n_fft": p.n_fft,
        "hop": p.hop,
        "side": store_size(p),
        "dtype": p.cache_dtype,
    }


def _stat(path: Path, root: Path) -> list[Any]:
    st = os.stat(path)
    return [str(path.relative_to(root)), st.st_size, st.st_mtime_ns]


def fingerprint(p: AVParams, clips: list[Clip]) -> str:
    """Hash of the settings and of every file of the split (names, sizes, mtimes)."""
    root = Path(p.root).expanduser().resolve()
    manifest = [[c.name, _stat(c.wav, root), [_stat(f, root) for f in c.frames]] for c in clips]
    blob = json.dumps({"settings": settings(p), "clips": manifest}, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cache_root(p: AVParams) -> Path:
    return Path(p.root).expanduser().resolve() / CACHE_DIR


class CachedSplit:
    """Read access to one split's cache; the arrays are memory-mapped on first use per process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._arrays: dict[str, np.ndarray] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers started by spawn receive a pickled source: let each map the files
        # itself instead of copying the arrays through the pickle.
        return {"path": self.path, "_arrays": None}

    def arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            self._arrays = {
                name: np.load(self.path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                for name in ("audio", "frames", "offsets")
            }
        return self._arrays

    def audio(self, index: int) -> np.ndarray:
        return np.array(self.arrays()["audio"][index], dtype=np.float32)

    def frames(self, index: int, which: list[int]) -> np.ndarray:
        a = self.arrays()
        start = int(a["offsets"][index])
        return np.stack([a["frames"][start + i] for i in which])

    def check(self, p: AVParams, clips: list[Clip]) -> None:
        """Shapes against the plan; a mismatch means a damaged cache (ValueError naming it)."""
        a = self.arrays()
        expect = (len(clips), *spectrogram_shape(p))
        counts = np.array([len(c.frames) for c in clips])
        side = store_size(p)
        if a["audio"].shape != expect:
            shape = a["audio"].shape
            raise ValueError(f"{self.path / 'audio.npy'}: shape {shape}, expected {expect}")
        offsets = a["offsets"]
        if offsets.shape != (len(clips) + 1,) or not np.array_equal(np.diff(offsets), counts):
            raise ValueError(f"{self.path / 'offsets.npy'}: does not match the clips' frame counts")
        if a["frames"].shape != (int(counts.sum()), side, side, 3):
            raise ValueError(f"{self.path / 'frames.npy'}: shape {a['frames'].shape} is wrong")


def open_cache(dataset: str, p: AVParams, clips: list[Clip]) -> CachedSplit | None:
    """The split's up-to-date cache, or None when there is none for these settings and files."""
    del dataset  # the tensors depend on the settings and files only
    path = cache_root(p) / fingerprint(p, clips)
    if not (path / "manifest.json").is_file():
        return None
    cache = CachedSplit(path)
    cache.check(p, clips)
    return cache
