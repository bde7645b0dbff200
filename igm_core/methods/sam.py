"""Pieces of sharpness-aware minimisation shared by the SAM variants of IGM."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def unit_steps(loss: torch.Tensor, tensors: list[torch.Tensor], rho: float) -> list[torch.Tensor]:
    """rho * g / ||g|| per tensor, for the gradient g of loss (zero where a tensor is unused)."""
    grads = torch.autograd.grad(loss, tensors, retain_graph=True, allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for t, g in zip(tensors, grads, strict=True)]
    norms = torch._foreach_add(torch._foreach_norm(grads), 1e-12)
    return [g * (rho / n) for g, n in zip(grads, norms, strict=True)]


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
