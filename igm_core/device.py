"""Where a run computes and in which precision: the spec's `device` and `precision` made real."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import torch


def pick_device(name: str, asker: str = "the spec asks for device 'cuda'") -> torch.device:
    """`auto` (CUDA when there is one), `cpu` or `cuda`; a refusal says who asked for CUDA."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{asker} but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pick_autocast(precision: str, device: torch.device) -> tuple[str, Callable]:
    """The precision in effect ("bf16" or "fp32") and the context each forward runs in."""
    if precision == "auto":
        use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        precision = "bf16" if use_bf16 else "fp32"
    if precision == "bf16":
        return "bf16", functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
    return "fp32", contextlib.nullcontext
