"""Samples per second through the audio-visual loader: decoding WAV/JPEG vs the prepared cache.

Generates CREMA-D-shaped data in a temporary folder (3 s clips at 44.1 kHz, so every clip is
resampled, with 1-3 frames of 640 x 360 JPEG each), then times full training epochs (random
crops, flips and frame choice) through DatasetSplit with 0 and 2 DataLoader workers, decoding
every sample and reading the `igm prepare` cache. Worker start-up is included: the trainer
starts a loader per epoch too.

    .venv/bin/python bench/bench_loader.py [--clips 64] [--epochs 2] [--batch 16] [--workers 0,2]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from igm_core.data import av, av_meta, av_prepare


def make_data(root: Path, clips: int, seed: int = 0) -> Path:
    """CREMA-D layout: 3 s noisy tones at 44.1 kHz and 1-3 noisy 640 x 360 frames per clip."""
    rng = np.random.default_rng(seed)
    rows = {"train": [], "test": []}
    t = np.arange(3 * 44100) / 44100
    for k in range(clips):
        cls = k % len(av_meta.CREMA_D_CLASSES)
        name = f"clip_{k:04d}"
        wave = 0.3 * np.sin(2 * np.pi * (200 + 100 * cls) * t) + 0.05 * rng.standard_normal(t.size)
        (root / "AudioWAV").mkdir(parents=True, exist_ok=True)
        sf.write(root / "AudioWAV" / f"{name}.wav", wave.astype(np.float32), 44100)
        folder = root / av_meta.FRAMES_DIR / name
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(1 + k % 3):
            # noise makes the JPEGs as costly to decode as real footage, unlike flat colour
            img = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
            Image.fromarray(img).save(folder / f"{f:05d}.jpg", quality=85)
        rows["train" if k % 8 else "test"].append((name, av_meta.CREMA_D_CLASSES[cls]))
    for split, items in rows.items():
        path = root / av_meta.ANNOTATIONS / f"{split}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fp:
            csv.writer(fp).writerows(items)
    return root


def samples_per_second(root: Path, cache: bool, workers: int, epochs: int, batch: int) -> float:
    """Training epochs over train + val through the real DatasetSplit; samples per second."""
    params = av_meta.CremaDParams(root=str(root), cache=cache, num_workers=workers)
    data = av.load_crema_d(params, seed=0)
    assert (data.info["cache"]["train"] is not None) == cache
    n, start = 0, time.perf_counter()
    for epoch in range(epochs):
        for name in ("train", "val"):
            gen = torch.Generator().manual_seed(epoch)
            for _, y in data.splits[name].batches(batch, generator=gen):
                n += len(y)
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", default="0,2", help="comma-separated worker counts")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # as in DataLoader workers; keeps the 0-worker figure comparable
    with tempfile.TemporaryDirectory() as tmp:
        root = make_data(Path(tmp) / "crema_d", args.clips)
        t0 = time.perf_counter()
        reports = av_prepare.prepare("crema_d", str(root), {"num_workers": 2})
        size = sum(r.bytes for r in reports) / 2**20
        print(f"prepare: {time.perf_counter() - t0:.1f} s, cache {size:.1f} MiB")
        print(f"{'workers':>7} {'decode/s':>10} {'cache/s':>10} {'ratio':>7}")
        for workers in (int(w) for w in args.workers.split(",")):
            dec = samples_per_second(root, False, workers, args.epochs, args.batch)
            hit = samples_per_second(root, True, workers, args.epochs, args.batch)
            print(f"{workers:>7} {dec:>10.1f} {hit:>10.1f} {hit / dec:>6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
