"""The `synthetic` dataset: per-modality Gaussian classes generated from the seed.

Each modality carries the label twice: as a linear class mean and, for a share `difficulty` of its
signal, behind an XOR-like code (the sign of a product of two latent coordinates) that only a
nonlinear layer can read. A modality with a strong, linear signal is learned fast and, in joint
training, drives the fused loss down before a weak or harder modality has learned much: the
imbalance that alternating methods address. Noise is independent across modalities, so a well
trained weak modality still adds information to the fused prediction.
"""

from __future__ import annotations

import numpy as np
import torch

from igm_core.data.base import MultimodalData, Split
from igm_core.data.params import SyntheticParams


def _modality(
    rng: np.random.Generator,
    y: np.ndarray,
    n_classes: int,
    dim: int,
    signal: float,
    difficulty: float,
) -> np.ndarray:
    n = y.shape[0]
    bits = max(1, int(np.ceil(np.log2(n_classes))))
    codes = ((np.arange(n_classes)[:, None] >> np.arange(bits)) & 1) * 2.0 - 1.0  # K x bits in ±1
    means = rng.standard_normal((n_classes, dim))
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    linear = means[y] * signal * (1.0 - difficulty)
    # XOR code: coordinates (a, b) per bit with sign(a * b) equal to the class's bit.
    a = rng.choice([-1.0, 1.0], size=(n, bits)) * np.abs(rng.normal(1.0, 0.25, (n, bits)))
    b = np.sign(a) * codes[y] * np.abs(rng.normal(1.0, 0.25, (n, bits)))
    latent = np.concatenate([a, b], axis=1) * signal * difficulty
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    hidden = np.zeros((n, dim))
    hidden[:, : min(dim, 2 * bits)] = latent[:, :dim]
    return linear + hidden @ rotation.T + rng.standard_normal((n, dim))


def load(params: SyntheticParams, seed: int) -> MultimodalData:
    rng = np.random.default_rng([seed, 0x5E7])
    sizes = {"train": params.n_train, "val": params.n_val, "test": params.n_test}
    total = sum(sizes.values())
    y = rng.integers(0, params.n_classes, size=total)
    xs = {
        m: _modality(rng, y, params.n_classes, d, s, q)
        for m, d, s, q in zip(
            params.modalities, params.dims, params.signal, params.difficulty, strict=True
        )
    }
    splits, start = {}, 0
    for name, n in sizes.items():
        sl = slice(start, start + n)
        splits[name] = Split(
            {m: torch.from_numpy(x[sl]).float() for m, x in xs.items()},
            torch.from_numpy(y[sl]).long(),
        )
        start += n
    return MultimodalData(splits, params.n_classes, {"sizes": sizes})
