"""Sizes of the encoders, computed from their shapes without building them (torch-free): BERT's
parameters from its config.json, and the activations each encoder keeps for the backward pass.

Activations are counted in values per sample (float32 when multiplied by 4 bytes), as the
tensors autograd saves in a training forward: each convolution's or linear layer's output (kept
by the batch norm or activation after it), the batch norm's output, the activation's output, and
for BERT per layer and token the query, key and value, the attention scores and their softmax,
the context, the projections and the feed-forward's two intermediate tensors. They are estimates:
tests/test_cost.py checks them against the bytes autograd really keeps, within a stated margin.
Used by igm_core.cost; imports json only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESNET18 = ((2, 2, 2, 2), False)
RESNET50 = ((3, 4, 6, 3), True)
WIDTHS = (64, 128, 256, 512)
BERT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
)


def bert_config(folder: str) -> dict[str, int]:
    """The sizes in a BERT folder's config.json (ValueError naming the file otherwise)."""
    path = Path(folder).expanduser() / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read the BERT config ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a BERT config (a JSON object is expected)")
    out = {}
    for key in BERT_FIELDS:
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 10**7:
            raise ValueError(f"{path}: {key} is missing or not a positive integer")
        out[key] = value
    out["type_vocab_size"] = int(data.get("type_vocab_size", 2))
    return out


def bert_parameters(c: Mapping[str, int]) -> int:
    """A BertModel without its pooling layer: embeddings (word, position, type, LayerNorm) and
    per layer the attention (Q, K, V, output), the feed-forward and two LayerNorms."""
    h, i = c["hidden_size"], c["intermediate_size"]
    embeddings = (c["vocab_size"] + c["max_position_embeddings"] + c["type_vocab_size"]) * h + 2 * h
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h
    return embeddings + c["num_hidden_layers"] * layer


def _half(n: int) -> int:
    return (n + 1) // 2  # a stride-2 conv or pool with the usual padding


def resnet_values(shape: tuple[int, ...], blocks: tuple[int, ...], bottleneck: bool) -> int:
    """Activations of a ResNet trunk per sample (frames count as samples): per conv-norm-ReLU
    the conv's output (kept by the norm) and the ReLU's (kept by the next conv); per conv-norm
    without ReLU the conv's output; each block's output; the max pool's indices."""
    frames = shape[0] if len(shape) == 4 else 1
    h, w = _half(shape[-2]), _half(shape[-1])
    total = shape[-3] * shape[-2] * shape[-1] + 2 * 64 * h * w  # input, conv1 + ReLU
    h, w = _half(h), _half(w)
    total += 2 * 64 * h * w  # the max pool's indices (int64: two floats' bytes)
    c_in = 64
    for stage, (n, width) in enumerate(zip(blocks, WIDTHS, strict=True)):
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            h2, w2 = (_half(h), _half(w)) if stride == 2 else (h, w)
            c_out = width * (4 if bottleneck else 1)
            if bottleneck:  # 1x1 + ReLU, 3x3 (strided) + ReLU, 1x1
                total += 2 * width * h * w + 2 * width * h2 * w2 + c_out * h2 * w2
            else:  # 3x3 (strided) + ReLU, 3x3
                total += 2 * width * h2 * w2 + c_out * h2 * w2
            if stride != 1 or c_in != c_out:
                total += c_out * h2 * w2  # the projection shortcut's conv
            total += c_out * h2 * w2  # the block's output after the sum and ReLU
            h, w, c_in = h2, w2, c_out
    return frames * total


def bert_values(c: Mapping[str, int], length: int) -> int:
    """Activations of BERT per sample at `length` tokens: per layer and token about 9 hidden-
    wide tensors, the feed-forward's two, and per head the scores, their softmax and dropout."""
    h, i, heads = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"]
    embeddings = 4 * h  # the three embeddings' sum, LayerNorm, dropout
    per_token = 9 * h + 2 * i + (13 * heads * length) // 4
    return length * (embeddings + c["num_hidden_layers"] * per_token)


def activation_values(name: str, params: Mapping[str, Any], shape: tuple[int, ...]) -> int:
    """Values an encoder keeps for backward per sample (0 for an unknown encoder)."""
    if name == "resnet18":
        return resnet_values(shape, *RESNET18)
    if name == "resnet50":
        fc = params.get("fc", True)
        head = (2048 + 1000 if fc else 2048) + (1000 if params.get("proj_dim") else 0)
        return resnet_values(shape, *RESNET50) + head
    if name == "bert":
        return bert_values(bert_config(params["pretrained"]), shape[-1])
    if name == "token_bag":  # the ids and mask; the mean; the output
        return 3 * shape[-1] + int(params.get("dim", 128)) + int(params.get("out_dim", 128))
    if name == "mlp":  # the input and each ReLU's output
        return math.prod(shape) + sum([*params.get("hidden", [256]), params.get("out_dim", 128)])
    if name == "conv":  # the input; per block conv + ReLU, the pool's indices
        c, h, w = shape[-3:]
        frames = shape[0] if len(shape) == 4 else 1
        channels = params.get("channels", [32, 64])
        total = c * h * w
        for k, width in enumerate(channels):
            total += 2 * width * h * w
            if k < len(channels) - 1:
                total += 2 * width * _half(h) * _half(w)
                h, w = _half(h), _half(w)
        return frames * (total + 4 * channels[-1])
    return 0
