"""Diagnosing and Re-learning (Wei, Li, Feng, Hu, ECCV 2024; code
GeWu-Lab/Diagnosing_Relearning_ECCV2024, code/ours.py).

Joint training on the cross-entropy of the fused output; after epoch e (counted from 0) with
e > 0 and e a multiple of `reinit_epoch`, at most `reinit_num` times:
- diagnosis: each modality's encoder features of the training split and of the validation split
  (eval mode), each scaled to [-1, 1] per feature (min-max), clustered by k-means into as many
  clusters as classes (scikit-learn, random_state 0); purity = the share of samples whose class
  is their cluster's majority class; the learning state is the gap g = |P_train - P_val|;
- re-learning: alpha = tanh(lambda g), and every parameter of the modality's encoder becomes
  (1 - alpha) theta_current + alpha theta_init (the weights the run started from). Buffers
  (batch-norm running statistics) and the heads are left alone, as are the optimizer's states.
The re-initialisation happens after the epoch's validation (the selected checkpoint is never a
half-re-initialised model), as in the released loop, and only encoders are touched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.preprocessing import MinMaxScaler

from igm_core.methods.base import EpochData, Stage
from igm_core.methods.joint import Joint


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """The share of samples whose label is the most frequent label of their cluster."""
    hits = 0
    for c in np.unique(clusters):
        hits += np.bincount(labels[clusters == c]).max()
    return float(hits) / len(labels)


def cluster_purity(features: np.ndarray, labels: np.ndarray, n_classes: int, n_init: int) -> float:
    """Min-max scale to [-1, 1], k-means with one cluster per class, purity of the clusters."""
    scaled = MinMaxScaler(feature_range=(-1, 1)).fit_transform(features)
    k = min(n_classes, len(np.unique(scaled, axis=0)))
    clusters = KMeans(n_clusters=k, random_state=0, n_init=n_init).fit_predict(scaled)
    return purity(labels, clusters)


def relearn_strength(gap: float, lam: float) -> float:
    """alpha = tanh(lambda * |P_train - P_val|)."""
    return float(np.tanh(lam * gap))


class Relearning(Joint):
    """Joint training with diagnosis and soft re-initialisation of the encoders."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the run's initial weights (the model is built the same way on a resume)
        self.init = {
            m: [p.detach().clone() for p in self.model.encoders[m].parameters()]
            for m in self.modalities
        }
        self.history: list[dict[str, Any]] = []

    def due(self, epoch: int) -> bool:
        every = self.params["reinit_epoch"]
        return epoch > 0 and epoch % every == 0 and epoch // every <= self.params["reinit_num"]

    @torch.no_grad()
    def features(self, m: str, split: Any, batch_size: int, device: torch.device) -> np.ndarray:
        self.model.eval()
        chunks = []
        with self.autocast():
            for xs, _ in split.batches(batch_size, modalities=[m], device=device):
                chunks.append(self.model.features(m, xs[m]).float().cpu())
        self.model.train()
        return torch.cat(chunks).numpy()

    def on_epoch_end(self, stage: Stage, epoch: int, data: EpochData) -> dict[str, float]:
        if len(self.modalities) < 2 or not self.due(epoch):
            return {}
        p = self.params
        record: dict[str, Any] = {"epoch": epoch}
        metrics = {}
        for m in self.modalities:
            pur = {}
            for name, split in (("train", data.train), ("val", data.val)):
                feats = self.features(m, split, data.batch_size, data.device)
                pur[name] = cluster_purity(feats, split.y.numpy(), data.n_classes, p["n_init"])
            gap = abs(pur["train"] - pur["val"])
            alpha = relearn_strength(gap, p["move_lambda"])
            self.reinit(m, alpha)
            record[m] = {"purity_train": pur["train"], "purity_val": pur["val"], "alpha": alpha}
            metrics |= {
                f"relearn/{m}/purity_train": pur["train"],
                f"relearn/{m}/purity_val": pur["val"],
                f"relearn/{m}/purity_gap": gap,
                f"relearn/{m}/alpha": alpha,
            }
        self.history.append(record)
        return metrics

    @torch.no_grad()
    def reinit(self, m: str, alpha: float) -> None:
        """theta <- (1 - alpha) theta + alpha theta_init, for every encoder parameter of m."""
        for param, start in zip(self.model.encoders[m].parameters(), self.init[m], strict=True):
            param.copy_((1 - alpha) * param + alpha * start.to(param.device))

    def diagnostics(self) -> dict[str, Any]:
        return {"relearning": self.history}

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))
