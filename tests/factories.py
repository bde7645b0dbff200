"""What several test modules build the same way and that is not a spec (those are in specs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def save_bert(folder: Path, vocab_size: int, layers: int, heads: int, positions: int) -> Path:
    """A BERT with random weights, 48 wide (96 in its feed-forward layers), saved in `folder` as
    save_pretrained writes it: to count and build parameters without a download."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=48,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=96,
        max_position_embeddings=positions,
    )
    BertModel(config).save_pretrained(str(folder))
    return folder


def features_root(root: Path) -> Path:
    """A dataset in the `features` layout: one 4-wide modality, `audio`, 20 samples a split."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        np.savez(
            root / f"{split}.npz",
            label=rng.integers(0, 2, 20),
            audio=rng.normal(size=(20, 4)).astype(np.float32),
        )
    return root


def method_parts(
    name: str,
    method: str,
    params: dict,
    encoders: dict[str, Any] | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> tuple[Any, Any, Any, Any]:
    """`method` on a model of its own small synthetic spec (6 and 5 dims, a head of 8 and 4, four
    classes), built after torch.manual_seed(0), or of these encoders and input shapes: (spec,
    model, method, a generator seeded 1 to draw the batch from)."""
    import torch

    from igm_core import catalog
    from igm_core.models import build_model
    from igm_core.spec import resolve_spec

    spec = resolve_spec(
        {
            "name": name,
            "dataset": {"name": "synthetic", "params": {"dims": [6, 5]}},
            "method": {"name": method, "params": params},
            "model": {"head_hidden": [8, 4]},
        }
    )
    torch.manual_seed(0)
    model = build_model(
        encoders or {m: e.model_dump() for m, e in spec.model.encoders.items()},
        shapes or {"strong": (6,), "weak": (5,)},
        spec.model.head_hidden,
        4,
        spec.model.shared_head,
    )
    factory = catalog.METHODS.get(method).load()
    return (
        spec,
        model,
        factory(spec.method.params, model, spec, torch.device("cpu")),
        (torch.Generator().manual_seed(1)),
    )
