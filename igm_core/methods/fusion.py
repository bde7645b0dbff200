"""Late fusion of unimodal outputs into class probabilities, for the alternating methods."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def fuse_probs(logits: dict[str, torch.Tensor], fusion: str) -> torch.Tensor:
    """Late fusion of unimodal softmaxes: their mean, or weights softmax(-entropy) per sample."""
    probs = torch.stack([F.softmax(v.float(), dim=1) for v in logits.values()])  # M x N x C
    if fusion == "mean" or probs.shape[0] == 1:
        return probs.mean(0)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)  # M x N
    weights = F.softmax(-entropy, dim=0)
    return (weights[..., None] * probs).sum(0)
