"""Pieces of sharpness-aware minimisation shared by the SAM variants of IGM."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.nn import functional as F


def unit_steps(loss: torch.Tensor, tensors: list[torch.Tensor], rho: float) -> list[torch.Tensor]:
    """rho * g / ||g|| per tensor, for the gradient g of loss (zero where a tensor is unused)."""
    return grouped_unit_steps(loss, [(tensors, rho)])[0]


def grouped_unit_steps(
    loss: torch.Tensor, groups: list[tuple[list[torch.Tensor], float]]
) -> list[list[torch.Tensor]]:
    """unit_steps for several (tensors, rho) groups from ONE backward pass of loss.

    One autograd.grad over all the groups' tensors instead of one per group: the encoder and the
    head of reference SAM then share a pass (the head's part is not run twice); every gradient
    is the same number it was when each group had its own pass.
    """
    tensors = [t for group, _ in groups for t in group]
    grads = torch.autograd.grad(loss, tensors, retain_graph=True, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads, strict=True)]
    steps, start = [], 0
    for group, rho in groups:
        g = grads[start : start + len(group)]
        start += len(group)
        norms = torch._foreach_add(torch._foreach_norm(g), 1e-12)
        # rho / ||g|| for every tensor at once (as `rho / n` computes it: reciprocal, then times
        # rho), then one multiply call over the list: the same roundings as g * (rho / n) tensor
        # by tensor, in k + 3 launches instead of 2k
        scales = torch.stack(norms).reciprocal_().mul_(rho).unbind()
        steps.append(torch._foreach_mul(g, scales))
    return steps


def forward_with(
    head: torch.nn.Module, x: torch.Tensor, weights: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Run `head` with substitute weights (keeps the graph of both the weights and x)."""
    layers = list(head) if isinstance(head, torch.nn.Sequential) else []
    if layers and all(isinstance(layer, torch.nn.Linear | torch.nn.ReLU) for layer in layers):
        for i, layer in enumerate(layers):  # the paper's head: a cheap direct path
            if isinstance(layer, torch.nn.Linear):
                x = F.linear(x, weights[f"{i}.weight"], weights.get(f"{i}.bias"))
            else:
                x = F.relu(x)
        return x
    return torch.func.functional_call(head, weights, (x,))


@contextlib.contextmanager
def frozen_running_stats(*modules: torch.nn.Module) -> Iterator[None]:
    """Forward passes inside leave normalisation running statistics as they were.

    SAM's second (perturbed) forward runs in training mode, so batch norm still normalises by the
    batch's own statistics, as it should; but it would also fold that batch into running_mean and
    running_var a second time and advance num_batches_tracked by 2 per step. Saving and restoring
    the buffers keeps one update per optimizer step (setting momentum to 0 instead would still
    advance the counter, which a cumulative-average norm, momentum None, divides by).
    """
    norms = [
        m
        for module in modules
        for m in module.modules()
        if getattr(m, "track_running_stats", False) and getattr(m, "running_mean", None) is not None
    ]
    saved = [
        (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
        for m in norms
    ]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (mean, var, count) in zip(norms, saved, strict=True):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
