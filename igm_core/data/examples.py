"""Tiny example datasets in each registered layout: to try a layout, and for the tests.

Every dataset entry of the catalog names one function here (`example`): given an empty folder it
writes a small dataset there when the layout lives on disk, and returns parameters that train it
in seconds. The audio-visual ones (CREMA-D and Kinetics-Sounds layouts) give each class its own
sine tone (WAV, 1-4 s, alternately 16 kHz and 44.1 kHz so the loader must resample) and its own
frame colour (small JPEGs), so a model can tell classes apart from either modality.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image

from igm_core.data import av_meta

RATES = (16000, 44100)
COLOURS = [
    (220, 40, 40),
    (40, 200, 40),
    (40, 40, 220),
    (220, 220, 40),
    (200, 40, 200),
    (40, 200, 200),
]


def tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_clip(
    root: Path, wav_folder: str, name: str, cls: int, k: int, n_frames: int, size: tuple[int, int]
) -> None:
    """One clip: a tone of class-specific pitch and n_frames JPEGs of a class-specific colour."""
    (root / wav_folder).mkdir(parents=True, exist_ok=True)
    rate = RATES[k % 2]
    sf.write(root / wav_folder / f"{name}.wav", tone(300 + 250 * cls, 1 + k % 4, rate), rate)
    folder = root / av_meta.FRAMES_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    for f in range(n_frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = COLOURS[cls % len(COLOURS)]
        # a moving bright bar, so frames of one clip differ and frame choice is observable
        x = (f * 7) % max(1, w - 4)
        img[:, x : x + 4] = 255
        Image.fromarray(img).save(folder / f"frame_{f:05d}.jpg", quality=90)


def write_csv(path: Path, rows: list[tuple[str, str]], header: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fp:
        writer = csv.writer(fp)
        if header:
            writer.writerow(["clip", "label"])
        writer.writerows(rows)


def make_dataset(
    root: Path,
    dataset: str = "crema_d",
    classes: list[str] | None = None,
    per_class: dict[str, int] | None = None,
    valid: bool = True,
    frames: int = 3,
    size: tuple[int, int] = (48, 36),
) -> Path:
    """Write a dataset; per_class gives clips per class and split (default 2 / 1 / 1)."""
    if classes is None:
        classes = list(av_meta.CREMA_D_CLASSES) if dataset == "crema_d" else ["drum", "dog", "saw"]
    counts = per_class or {"train": 2, "val": 1, "test": 1}
    k = 0
    for split in ("train", "val", "test"):
        if split == "val" and not valid:
            continue
        rows = []
        for cls, label in enumerate(classes):
            for _ in range(counts[split]):
                name = f"{split}_{label}_{k:03d}"
                folder = av_meta.wav_dir(dataset, split)
                write_clip(root, folder, name, cls, k, 1 + k % frames, size)
                rows.append((name, label))
                k += 1
        write_csv(root / av_meta.ANNOTATIONS / av_meta.CSV_NAMES[split], rows, header=k % 2 == 0)
    return root


# ----------------------------------------------------------------------------- per dataset


def write_features(
    root: Path, modalities: tuple[str, ...] = ("audio", "video"), seed: int = 0
) -> Path:
    """root/{train,val,test}.npz: a vector modality, an image-like one, and 4-d extras."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", 60), ("val", 20), ("test", 20)):
        y = rng.integers(0, 3, n)
        arrays = {
            modalities[0]: (rng.normal(size=(n, 7)) + y[:, None]).astype(np.float32),
            modalities[1]: rng.normal(size=(n, 2, 5, 5)).astype(np.float32),
        }
        for extra in modalities[2:]:
            arrays[extra] = rng.normal(size=(n, 4)).astype(np.float32)
        np.savez(root / f"{split}.npz", label=y, **arrays)
    return root


def synthetic(root: Path) -> dict[str, Any]:
    del root  # generated from the seed
    return {"n_train": 240, "n_val": 80, "n_test": 80, "dims": [12, 10]}


def digits(root: Path) -> dict[str, Any]:
    del root  # shipped with scikit-learn
    return {}


def features(root: Path) -> dict[str, Any]:
    return {"root": str(write_features(root))}


def nvgesture_features(root: Path) -> dict[str, Any]:
    return {"root": str(write_features(root, ("rgb", "depth", "flow")))}


def crema_d(root: Path) -> dict[str, Any]:
    make_dataset(root, "crema_d")
    return {"root": str(root), "image_size": 32, "frames": 1, "num_workers": 0}


def kinetics_sounds(root: Path) -> dict[str, Any]:
    make_dataset(root, "kinetics_sounds")
    return {"root": str(root), "image_size": 32, "frames": 1, "num_workers": 0}
