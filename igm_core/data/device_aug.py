"""Frame augmentation in batches on the training device, bit-equal to the CPU path of av.py.

With `augment: device` a clip dataset's loader hands over the uint8 canonical squares as they are
(N x S x S x 3) with each frame's drawn crop box and flip (N x 5 int32: x0, y0, x1, y1, flip),
drawn from the same per-sample generator in the same order as the CPU path, so runs resume
exactly. `augment_frames` then does on the device what `av.frame_tensor` does with PIL:
- the bilinear resize of the box to size x size, with PIL's own filter taps (its antialiasing
  support when shrinking), computed on the device for the whole batch (no host round trip), and
  its 8-bit fixed point: taps scaled to 22 bits and rounded, a
  horizontal pass rounded to uint8, then a vertical one. Sums of uint8 x 22-bit integer taps stay
  below 2^53, so float64 matrix products compute them exactly on any device;
- the horizontal flip (on the uint8 result, as PIL's transpose), then (x * 1/(255 std)) - mean/std
  as the same two float32 operations.
The output equals the CPU path's bit for bit (tests/test_device_aug.py checks it on CPU tensors).
"""

from __future__ import annotations

import math

import numpy as np
import torch

PRECISION_BITS = 22  # PIL's fixed point for 8-bit resampling: 32 - 8 - 2
_ONE = float(1 << PRECISION_BITS)
_HALF = float(1 << (PRECISION_BITS - 1))


def pil_taps(in0: float, in1: float, in_size: int, out_size: int) -> np.ndarray:
    """out_size x in_size integer taps of PIL's bilinear resample of [in0, in1) (float64).

    Vectorised over the output pixels, with PIL's own operations and their order: the window of
    each pixel by truncation, w = filter((x - center + 0.5) * (1 / filterscale)), the weights
    summed left to right (a cumulative sum; the zeros outside the window change nothing) and
    divided by that sum, then k * 2^22 + 0.5 truncated."""
    scale = (in1 - in0) / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # the bilinear filter's support is 1
    ss = 1.0 / filterscale
    center = in0 + (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5), 0.0)
    xmax = np.minimum(np.trunc(center + support + 0.5), float(in_size))
    x = np.arange(in_size, dtype=np.float64)[None, :]
    inside = (x >= xmin[:, None]) & (x < xmax[:, None])
    w = np.abs((x - center[:, None] + 0.5) * ss)
    w = np.where(inside & (w < 1.0), 1.0 - w, 0.0)
    total = np.cumsum(w, axis=1)[:, -1:]
    w = np.divide(w, total, out=w, where=total != 0.0)
    return np.floor(0.5 + w * _ONE)  # taps are >= 0: truncation of k * 2^22 + 0.5


def device_taps(in0: torch.Tensor, in1: torch.Tensor, in_size: int, out_size: int) -> torch.Tensor:
    """pil_taps for a batch of spans (in0, in1: N float64 on any device), as N x out_size x
    in_size, computed where the spans are (no host round trip). Each output pixel's window of K
    taps is laid out explicitly so that its weights are summed left to right, as PIL does."""
    device = in0.device
    scale = (in1 - in0) / out_size
    filterscale = scale.clamp(min=1.0)
    support = filterscale * 1.0
    ss = 1.0 / filterscale
    pos = torch.arange(out_size, dtype=torch.float64, device=device) + 0.5
    center = in0[:, None] + pos[None, :] * scale[:, None]
    xmin = torch.trunc(center - support[:, None] + 0.5).clamp(min=0.0)
    xmax = torch.trunc(center + support[:, None] + 0.5).clamp(max=float(in_size))
    k = 2 * math.ceil(max(in_size / out_size, 1.0)) + 1  # the widest window any span can have
    idx = xmin[..., None] + torch.arange(k, dtype=torch.float64, device=device)
    w = ((idx - center[..., None] + 0.5) * ss[:, None, None]).abs()
    w = torch.where((idx < xmax[..., None]) & (w < 1.0), 1.0 - w, torch.zeros_like(w))
    total = w[..., 0]
    for j in range(1, k):
        total = total + w[..., j]
    w = torch.where(total[..., None] != 0.0, w / total[..., None], w)
    taps = torch.floor(0.5 + w * _ONE)
    dense = torch.zeros((in0.shape[0], out_size, in_size), dtype=torch.float64, device=device)
    return dense.scatter_add_(2, idx.clamp(max=in_size - 1).long(), taps)


def _round_shift(acc: torch.Tensor) -> torch.Tensor:
    # PIL: (sum + 2^21) >> 22, clipped to 0..255; exact on float64 integers
    return torch.floor((acc + _HALF) / _ONE).clamp_(0.0, 255.0)


def augment_frames(
    squares: torch.Tensor,
    params: torch.Tensor,
    size: int,
    scale: torch.Tensor,
    offset: torch.Tensor,
) -> torch.Tensor:
    """N x 3 x size x size float32 from N x S x S x 3 uint8 squares and N x 5 crop/flip rows
    (on the squares' device); `scale` and `offset` are the 3 x 1 x 1 normalisation."""
    n, side = squares.shape[0], squares.shape[1]
    device = squares.device
    if n == 0:
        return torch.zeros((0, 3, size, size), dtype=torch.float32, device=device)
    box = params.to(device=device, dtype=torch.float64)
    wx_t = device_taps(box[:, 0], box[:, 2], side, size)
    wy_t = device_taps(box[:, 1], box[:, 3], side, size)
    img = squares.to(torch.float64)
    # horizontal pass over every row: (N, S, S, 3) x (N, size, S) -> (N, S, size, 3)
    tmp = _round_shift(torch.einsum("nyxc,nox->nyoc", img, wx_t))
    # vertical pass: (N, S, size, 3) x (N, size, S) -> (N, size, size, 3)
    out = _round_shift(torch.einsum("nyxc,noy->noxc", tmp, wy_t)).to(torch.uint8)
    flip = params[:, 4].to(device=device, dtype=torch.bool)  # no host sync: both, then choose
    out = torch.where(flip.view(n, 1, 1, 1), out.flip(2), out)
    t = out.permute(0, 3, 1, 2).contiguous().to(torch.float32)
    return t.mul_(scale.to(device)).add_(offset.to(device))
