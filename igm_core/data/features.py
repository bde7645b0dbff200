"""The `features` dataset: a lab's own pre-extracted features in root/{train,val,test}.npz.

Reading and validation live in the torch-free npz module (the web process validates specs with
it); this module only turns the validated arrays into tensors.
"""

from __future__ import annotations

import torch

from igm_core.data import npz
from igm_core.data.base import MultimodalData, Split
from igm_core.data.params import FeaturesParams


def load(params: FeaturesParams, seed: int) -> MultimodalData:
    """Load and validate the three split files; `seed` is unused (the splits are fixed)."""
    del seed
    arrays = npz.load_splits(params.root, params.n_classes)
    splits = {
        split: Split(
            {m: torch.from_numpy(arrays.x[split][m]) for m in arrays.modalities},
            torch.from_numpy(arrays.y[split]),
        )
        for split in npz.SPLITS
    }
    return MultimodalData(
        splits,
        arrays.n_classes,
        info={
            "root": str(arrays.root),
            "sizes": {split: len(s) for split, s in splits.items()},
        },
    )
