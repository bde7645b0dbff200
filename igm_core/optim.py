"""The optimizer of a stage: the parameters it trains, SGD or Adam, and the per-stage step decay.

The trainer builds both afresh at every stage (a stage trains its modalities' branches only), and
keeps their states in a checkpoint taken inside the stage.
"""

from __future__ import annotations

from typing import Any

import torch

from igm_core.spec import Spec


def make_optimizer(spec: Spec, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    o = spec.optimizer
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def make_scheduler(spec: Spec, optimizer: torch.optim.Optimizer) -> Any:
    """The per-stage step decay: epoch e of a stage trains at lr * gamma^floor((e + k) / lr_step),
    k = 0 (lr_step_timing after_epoch) or 1 (before_epoch, the IGM authors' loop, which steps
    its StepLR before each epoch). Stepped once per epoch, after it; reset with the optimizer."""
    o = spec.optimizer
    step_size = o.lr_step or 10**9
    if o.lr_step_timing == "after_epoch":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size, o.lr_gamma)
    gamma = o.lr_gamma
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: gamma ** ((e + 1) // step_size))
