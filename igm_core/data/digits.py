"""The `digits` dataset: scikit-learn's 8x8 handwritten digits cut into noisy image views.

"top" and "bottom" are the upper and lower halves (1 x 4 x 8), "coarse" the whole image 2x2
average-pooled (1 x 4 x 4). Each view gets its own Gaussian noise level, which is how the
dataset makes one modality stronger than another.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from igm_core.data.base import SPLITS, MultimodalData, Split
from igm_core.data.params import DIGIT_VIEWS, DigitsParams


def _views(images: np.ndarray, n_views: int) -> dict[str, np.ndarray]:
    n = images.shape[0]
    views = {
        "top": images[:, None, :4, :],
        "bottom": images[:, None, 4:, :],
        "coarse": images.reshape(n, 4, 2, 4, 2).mean(axis=(2, 4))[:, None],
    }
    return {name: views[name] for name in DIGIT_VIEWS[:n_views]}


def load(params: DigitsParams, seed: int) -> MultimodalData:
    """Build the views, add fixed per-sample noise, and split stratified by class."""
    bunch = load_digits()
    images = bunch.images.astype(np.float64) / 16.0  # pixel values are 0..16
    labels = bunch.target.astype(np.int64)

    rng = np.random.default_rng(seed)
    x = {}
    for (name, view), std in zip(_views(images, params.views).items(), params.noise, strict=True):
        # Draw unit noise and scale it, so each view's noise pattern for a seed does not depend
        # on the other views' noise levels.
        x[name] = (view + std * rng.standard_normal(view.shape)).astype(np.float32)

    index = np.arange(len(labels))
    rest, test = train_test_split(
        index, test_size=params.test_fraction, stratify=labels, random_state=seed
    )
    # val_fraction is a share of the whole set, not of what remains after the test split.
    train, val = train_test_split(
        rest,
        test_size=params.val_fraction / (1.0 - params.test_fraction),
        stratify=labels[rest],
        random_state=seed,
    )

    splits = {}
    for split, idx in zip(SPLITS, (train, val, test), strict=True):
        idx = np.sort(idx)
        splits[split] = Split(
            {name: torch.from_numpy(np.ascontiguousarray(a[idx])) for name, a in x.items()},
            torch.from_numpy(labels[idx]),
        )
    return MultimodalData(
        splits, 10, info={"sizes": {split: len(s) for split, s in splits.items()}}
    )
