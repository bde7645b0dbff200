"""The `nvgesture_features` dataset: NVGesture's rgb, depth and flow clips as feature vectors.

Raw NVGesture needs an I3D network with pretrained weights, which nothing here downloads. A lab
extracts one feature vector per clip and modality once (for example the 1024-d pooled output of
I3D's last mixed block, one network per modality as in the paper's setting) and saves
root/train.npz, val.npz and test.npz with `label` (N) and `rgb`, `depth`, `flow` (N x 1024).
Loading and validation are those of the `features` dataset.
"""

from __future__ import annotations

from igm_core.data.base import MultimodalData
from igm_core.data.features import load as load_features
from igm_core.data.params import NVGESTURE_MODALITIES, FeaturesParams, NVGestureParams


def load(params: NVGestureParams, seed: int) -> MultimodalData:
    data = load_features(FeaturesParams(root=params.root, n_classes=params.n_classes), seed)
    return data.select(list(NVGESTURE_MODALITIES))
