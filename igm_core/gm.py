"""Gradient-modification math as pure tensor functions, and the pass that feeds it.

Flat projection (IGM): Y = sum_t zbar_t zbar_t^T over the batch means of a layer's input,
Y = V diag(lambda) V^T,
gains sigma_i = exp(-tau (lambda_i - lambda_min) / (lambda_max - lambda_min)),
T = V diag(sigma) V^T, and a gradient G (out x d) becomes G T.
Orthogonal projection (MLA, OWM-style): P <- P - k k^T / (alpha + x^T k), k = P x, G becomes G P.
For Conv2d layers the input is the unfolded patch matrix, d = C_in * kh * kw, ordered as the weight.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn
from torch.nn import functional as F

# ----------------------------------------------------------------------------- flat projection


def flat_gains(eigvals: torch.Tensor, tau: float) -> torch.Tensor:
    """exp(-tau * min-max normalised eigenvalue); all ones when the spectrum is flat."""
    lo, hi = eigvals.min(), eigvals.max()
    span = hi - lo
    if span <= torch.finfo(eigvals.dtype).eps * max(float(hi.abs()), 1e-30) * eigvals.numel():
        return torch.ones_like(eigvals)
    return torch.exp(-tau * (eigvals - lo) / span)


def effective_rank(eigvals: torch.Tensor) -> float:
    """exp of the entropy of the normalised spectrum (1 for rank one, d for a flat spectrum)."""
    lam = eigvals.clamp_min(0)
    total = lam.sum()
    if total <= 0:
        return 0.0
    p = lam / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def flat_projection(cov: torch.Tensor, tau: float) -> tuple[torch.Tensor, dict[str, float]]:
    """T = V diag(sigma) V^T from an input-energy matrix Y; returns T (float32) and its spectrum."""
    y = 0.5 * (cov + cov.T)
    # float64 keeps the small eigenvalues meaningful; past ~1k dims float32 is much cheaper.
    work = y.double() if y.shape[0] <= 1024 else y.float()
    try:
        eigvals, eigvecs = torch.linalg.eigh(work)
    except torch.linalg.LinAlgError:  # float32 can fail on a nearly singular Y: redo in float64
        eigvals, eigvecs = torch.linalg.eigh(y.double())
    eigvals = eigvals.clamp_min(0)  # Y is PSD; rounding can leave tiny negatives
    gains = flat_gains(eigvals, tau)
    t = (eigvecs * gains) @ eigvecs.T
    t = 0.5 * (t + t.T)
    info = {
        "min_gain": float(gains.min()),
        "mean_gain": float(gains.mean()),
        "eff_rank": effective_rank(eigvals),
        "top_eig": float(eigvals.max()),
    }
    return t.float(), info


@dataclass
class LowRankProjection:
    """T = I + V diag(s) V^T, with V (d x r) orthonormal: the flat projection when the batch
    means span only r < d directions (every other direction has eigenvalue 0 and gain 1).
    Applying it costs O(out d r) instead of O(out d^2), and it stores d r numbers, not d^2."""

    basis: torch.Tensor  # d x r
    scale: torch.Tensor  # r, sigma - 1

    @property
    def shape(self) -> tuple[int, int]:
        d = self.basis.shape[0]
        return (d, d)

    def to(self, device: torch.device | str) -> LowRankProjection:
        return LowRankProjection(self.basis.to(device), self.scale.to(device))

    def matrix(self) -> torch.Tensor:
        eye = torch.eye(self.basis.shape[0], dtype=self.basis.dtype, device=self.basis.device)
        return eye + (self.basis * self.scale) @ self.basis.T

    def apply(self, g: torch.Tensor) -> torch.Tensor:
        b = self.basis.to(g.dtype)
        return g + ((g @ b) * self.scale.to(g.dtype)) @ b.T


def flat_projection_from_means(
    batch_means: torch.Tensor, tau: float
) -> tuple[torch.Tensor | LowRankProjection, dict[str, float]]:
    """The flat projection of Y = Z^T Z for batch means Z (T x d).

    With fewer batches than dimensions (T < d, the usual case for wide conv layers) Y has rank at
    most T: its nonzero spectrum comes from the T x T Gram matrix Z Z^T, whose eigh is cheap and
    well conditioned, and T is returned in low-rank form. Otherwise the d x d route is used.
    """
    z = batch_means.double()
    n, d = z.shape
    if n >= d:
        return flat_projection(covariance(z), tau)
    mu, u = torch.linalg.eigh(z @ z.T)
    mu = mu.clamp_min(0)
    keep = mu > mu.max() * 1e-12 if mu.max() > 0 else torch.zeros_like(mu, dtype=torch.bool)
    lam = torch.cat([mu, mu.new_zeros(d - n)])  # Y's full spectrum: the rest are zeros
    gains = flat_gains(lam, tau)
    info = {
        "min_gain": float(gains.min()),
        "mean_gain": float(gains.mean()),
        "eff_rank": effective_rank(lam),
        "top_eig": float(lam.max()),
    }
    basis = (z.T @ u[:, keep]) / mu[keep].sqrt()  # eigenvectors of Y for its nonzero eigenvalues
    return LowRankProjection(basis.float(), (gains[:n][keep] - 1).float()), info


def covariance(batch_means: torch.Tensor) -> torch.Tensor:
    """Y = sum_t zbar_t zbar_t^T for batch means stacked as rows (T x d)."""
    z = batch_means.double()
    return z.T @ z


# ----------------------------------------------------------------------------- OWM projection


def owm_update(p: torch.Tensor, x: torch.Tensor, alpha: float) -> torch.Tensor:
    """One recursive OWM step: P - k k^T / (alpha + x^T k) with k = P x."""
    k = p @ x
    return p - torch.outer(k, k) / (alpha + x @ k)


def owm_projector(
    batch_means: torch.Tensor, alpha: float, p: torch.Tensor | None = None
) -> torch.Tensor:
    """Fold the rows of `batch_means` into an OWM projector (starting from P or the identity)."""
    z = batch_means.double()
    p = torch.eye(z.shape[1], dtype=torch.float64, device=z.device) if p is None else p.double()
    for x in z:
        p = owm_update(p, x, alpha)
    return 0.5 * (p + p.T)


# ----------------------------------------------------------------------------- applying


def project_weight_grad(grad: torch.Tensor, t: torch.Tensor | LowRankProjection) -> torch.Tensor:
    """G T for a Linear (out x d) or Conv2d (out x C x kh x kw) weight gradient."""
    g = grad.reshape(grad.shape[0], -1)
    out = t.apply(g) if isinstance(t, LowRankProjection) else g @ t.to(grad.dtype)
    return out.reshape(grad.shape)


class GradSwap:
    """Replaces layers' weight gradients and, when `log`, keeps the squared norms before and
    after, for the step's statistics."""

    def __init__(self, log: bool) -> None:
        self.log = log
        self.before: list[torch.Tensor] = []
        self.after: list[torch.Tensor] = []

    def replace(self, layer: nn.Module, new: torch.Tensor) -> None:
        if self.log:
            self.before.append(layer.weight.grad.float().square().sum())
            self.after.append(new.float().square().sum())
        layer.weight.grad = new

    def norms(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The gradient norm over the replaced layers (before, after); None if none was logged."""
        if not self.before:
            return None
        return torch.stack(self.before).sum().sqrt(), torch.stack(self.after).sum().sqrt()


def input_dim(layer: nn.Module) -> int:
    if isinstance(layer, nn.Linear):
        return layer.in_features
    if isinstance(layer, nn.Conv2d):
        return layer.in_channels // layer.groups * math.prod(layer.kernel_size)
    raise TypeError(f"gradient modification supports Linear and Conv2d layers, not {type(layer)}")


def layer_input_mean(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean of the layer's input vectors over a batch (and over positions for a conv)."""
    if isinstance(layer, nn.Linear):
        return x.reshape(-1, x.shape[-1]).float().mean(0)
    if not isinstance(layer, nn.Conv2d) or layer.groups != 1:
        raise TypeError("only Linear and ungrouped Conv2d layers are supported")
    if isinstance(layer.padding, str):
        raise TypeError("string padding is not supported for gradient modification")
    # The mean of the unfolded patches, one kernel offset at a time: never materialises the
    # (N, C*kh*kw, L) unfold, which is large for image inputs.
    kh, kw = layer.kernel_size
    sh, sw = layer.stride
    dh, dw = layer.dilation
    ph, pw = layer.padding
    xp = F.pad(x.float(), (pw, pw, ph, ph))
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    cols = []
    for i in range(kh):
        for j in range(kw):
            patch = xp[
                :,
                :,
                i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                j * dw : j * dw + sw * (ow - 1) + 1 : sw,
            ]
            cols.append(patch.mean(dim=(0, 2, 3)))
    return torch.stack(cols, dim=1).reshape(-1)  # (C, kh*kw) -> C*kh*kw, the weight's order


class _StopForward(Exception):
    pass


@torch.no_grad()
def collect_batch_means(
    model: nn.Module,
    forward: callable,
    layers: dict[str, nn.Module],
    batches: Iterable[torch.Tensor],
    batch_size: int,
) -> dict[str, torch.Tensor]:
    """Run `forward` over the batches, recording per-`batch_size` input means of each layer.

    The forward stops right before the last listed layer in execution order, so no layer past the
    ones being projected is computed. Batches may be larger than batch_size (for throughput): each
    is split into batch_size pieces so the means match those of training-size batches.
    """
    means: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    remaining: set[str] = set()

    def hook_for(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0]
            means[name].append(
                torch.stack([layer_input_mean(module, piece) for piece in x.split(batch_size)])
            )
            remaining.discard(name)
            if not remaining:
                raise _StopForward

        return hook

    handles = [layer.register_forward_pre_hook(hook_for(name)) for name, layer in layers.items()]
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            remaining.update(layers)
            with contextlib.suppress(_StopForward):
                forward(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {name: torch.cat(chunks) for name, chunks in means.items() if chunks}


def select_layers(branch: dict[str, nn.Module], scope: str | float) -> list[str]:
    """Names of the branch layers that take part in gradient modification.

    head: the head's layers; all: every Linear/Conv2d; none: nothing; head+K: the head and the
    last K encoder layers; a fraction f: the head and the last k encoder layers (from the output
    side), see `fraction_depth` for k.
    """
    names = list(branch)
    head = [n for n in names if n.startswith("head.")]
    encoder = [n for n in names if n.startswith("encoder.")]
    if scope == "none":
        return []
    if scope == "head":
        return head
    if scope == "all":
        return names
    if isinstance(scope, str) and scope.startswith("head+"):
        k = int(scope[5:])
        return encoder[max(0, len(encoder) - k) :] + head
    sizes = [branch[n].weight.numel() for n in encoder]
    k = fraction_depth(sum(branch[n].weight.numel() for n in head), sizes, float(scope))
    return encoder[len(encoder) - k :] + head


def fraction_depth(head_size: int, encoder_sizes: list[int], fraction: float) -> int:
    """How many encoder layers, counted from the output side, a fraction scope adds to the head.

    The share of a selection is its layers' weight elements (Linear and Conv2d weights; biases and
    norm parameters are not counted) over those of the whole branch. k is chosen so that the share
    of the head plus the last k encoder layers is nearest the requested fraction; on a tie the
    smaller k (the smaller share) wins. The head always takes part, so a fraction below the
    head's own share selects the head alone.
    """
    total = head_size + sum(encoder_sizes)
    target = Fraction(fraction)  # exact arithmetic, so that a tie is a tie

    def gap(size: int) -> Fraction:
        return abs(Fraction(size, total) - target)

    best_k, best_gap, size = 0, gap(head_size), head_size
    for k, n in enumerate(reversed(encoder_sizes), start=1):
        size += n
        if gap(size) < best_gap:
            best_k, best_gap = k, gap(size)
    return best_k
