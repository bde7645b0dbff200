"""Frozen-encoder features of an image-text dataset, written in the `features` layout.

Each split runs once, in order, with the evaluation transforms (no crop, flip or augmentation)
through BERT (the [CLS] vector of the last hidden state) and ResNet-50 (its 1000 ImageNet logits,
or the 2048 pooled features), both in evaluation mode without gradients. The result,
OUT/{train,val,test}.npz with `label`, `text` and `image` float32 arrays, is what the `features`
dataset reads; OUT/features.json records the source, the encoders and the parameters.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from igm_core.data.image_text import build
from igm_core.data.image_text_meta import IMAGE, TEXT, ImageTextParams
from igm_core.device import pick_device
from igm_core.resnet50 import ResNet50Encoder
from igm_core.text_encoders import BertEncoder

Progress = Callable[[str, int, int], None]


@torch.no_grad()
def _split_features(
    split: Any, encoders: dict[str, torch.nn.Module], batch_size: int, device: torch.device,
    done: Callable[[int], None],
) -> dict[str, np.ndarray]:  # fmt: skip
    chunks: dict[str, list[np.ndarray]] = {m: [] for m in encoders}
    n = 0
    for xs, y in split.batches(batch_size, modalities=list(encoders), device=device):
        for m, enc in encoders.items():
            chunks[m].append(enc(xs[m]).float().cpu().numpy())
        n += len(y)
        done(n)
    return {m: np.concatenate(c).astype(np.float32) for m, c in chunks.items()}


def export(
    dataset: str,
    p: ImageTextParams,
    out: Path,
    *,
    bert: str,
    resnet50: str | None,
    image_output: str = "fc",
    device: str = "auto",
    batch_size: int = 64,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write OUT/{train,val,test}.npz and features.json; returns sizes and dimensions."""
    report = progress or (lambda s, d, n: None)
    data = build(dataset, p)
    dev = pick_device(device, "--device cuda asks for CUDA")
    shapes = data.shapes()
    torch.manual_seed(0)  # random image weights, when none are given, are reproducible
    encoders = {
        TEXT: BertEncoder(shapes[TEXT], bert),
        IMAGE: ResNet50Encoder(shapes[IMAGE], resnet50, fc=image_output == "fc"),
    }
    for enc in encoders.values():
        enc.to(dev).eval()
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name, split in data.splits.items():
        total = len(split)
        feats = _split_features(
            split, encoders, batch_size, dev, lambda d, s=name, t=total: report(s, d, t)
        )
        np.savez(out / f"{name}.npz", label=split.y.numpy(), **feats)
        sizes[name] = len(split)
    dims = {m: int(e.out_dim) for m, e in encoders.items()}
    record = {
        "source": {"dataset": dataset, "params": p.model_dump(mode="json")},
        "encoders": {
            TEXT: {"name": "bert", "pretrained": str(bert), "output": "[CLS] of the last layer"},
            IMAGE: {"name": "resnet50", "pretrained": resnet50, "output": image_output},
        },
        "sizes": sizes,
        "dims": dims,
        "classes": data.info["classes"],
    }
    (out / "features.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
