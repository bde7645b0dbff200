"""Which frames of a clip the audio-visual datasets read: listing a clip's frames in time order and
choosing `frames` of them, by the rule the spec names for training and for evaluation.

Rules (`frame_train`, `frame_eval` in av_meta.AVParams), for k frames out of a clip's n:
- `random`: k distinct frames drawn at random, in time order (with replacement when n < k). In
  training the draw comes from the sample's generator (seeded by epoch and index); in evaluation
  from a generator seeded by the clip's position in its split, so every evaluation sees the same.
- `centre`: the centres of k equal spans of the clip: int((i + 0.5) n / k).
- `first`: the first k frames (the last one repeated when n < k). The IGM authors' loaders open
  the first k entries their directory listing returns, whatever index they draw.
- `strided`: every floor(n / k)-th frame from the first: i * floor(n / k) (frame 0 repeated when
  n < k), the MLA authors' loader in training and evaluation alike.
Torch-free.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import numpy as np

from igm_core.data.av_meta import FrameChoice

FRAME_CHOICES: tuple[str, ...] = get_args(FrameChoice)
# the evaluation-time `random` draw: fixed per clip, apart from the training draws
EVAL_FRAME_SEED = 7919
IMAGE_SUFFIXES = {".jpg", ".jpeg"}
_DIGITS = re.compile(r"(\d+)")


def pick_frames(n: int, k: int, rng: np.random.Generator | None) -> list[int]:
    """k frame indices out of n, in time order: centres of k equal spans, or random (training)."""
    if rng is None:
        return [min(n - 1, int((i + 0.5) * n / k)) for i in range(k)]
    if n >= k:
        return sorted(int(i) for i in rng.choice(n, size=k, replace=False))
    return sorted(int(i) for i in rng.integers(0, n, size=k))


def choose_frames(n: int, k: int, how: str, rng: np.random.Generator | None) -> list[int]:
    """k frame indices out of n by the rule `how` (see the module text); `random` needs rng."""
    if how == "random":
        if rng is None:
            raise ValueError("frame choice 'random' needs a random generator")
        return pick_frames(n, k, rng)
    if how == "centre":
        return pick_frames(n, k, None)
    if how == "first":
        return [min(i, n - 1) for i in range(k)]
    if how == "strided":
        return [i * (n // k) for i in range(k)]
    raise ValueError(f"unknown frame choice {how!r}; choose one of: {', '.join(FRAME_CHOICES)}")


def eval_generator(index: int) -> np.random.Generator:
    """The generator of the evaluation-time `random` frame draw of the clip at `index`."""
    return np.random.default_rng([EVAL_FRAME_SEED, index])


def _natural(path: Path) -> list[Any]:
    # frame_2.jpg before frame_10.jpg, whether or not the numbers are zero-padded
    return [int(t) if t.isdigit() else t for t in _DIGITS.split(path.name)]


def list_frames(folder: Path, max_frames: int | None) -> tuple[Path, ...]:
    """The clip's JPEG frames in time order; at most max_frames, evenly spaced."""
    frames = sorted(
        (e for e in folder.iterdir() if e.suffix.lower() in IMAGE_SUFFIXES), key=_natural
    )
    if max_frames is not None and len(frames) > max_frames:
        frames = [frames[i] for i in pick_frames(len(frames), max_frames, None)]
    return tuple(frames)
