"""Frame augmentation in batches on the training device, bit-equal to the CPU path of av.py.

With `augment: device` a clip dataset's loader hands over the uint8 canonical squares as they are
(N x S x S x 3) with each frame's drawn crop box and flip (N x 5 int32: x0, y0, x1, y1, flip),
drawn from the same per-sample generator in the same order as the CPU path, so runs resume
exactly. `augment_frames` then does on the device what `av.frame_tensor` does with PIL:
- the bilinear resize of the box to size x size, with PIL's own filter taps (its antialiasing
  support when shrinking) and its 8-bit fixed point: taps scaled to 22 bits and rounded, a
  horizontal pass rounded to uint8, then a vertical one. Sums of uint8 x 22-bit integer taps stay
  below 2^53, so float64 matrix products compute them exactly on any device;
- the horizontal flip (on the uint8 result, as PIL's transpose), then (x * 1/(255 std)) - mean/std
  as the same two float32 operations.
The output equals the CPU path's bit for bit (tests/test_device_aug.py checks it on CPU tensors).
"""

from __future__ import annotations

import numpy as np
import torch

PRECISION_BITS = 22  # PIL's fixed point for 8-bit resampling: 32 - 8 - 2
_ONE = float(1 << PRECISION_BITS)
_HALF = float(1 << (PRECISION_BITS - 1))


def pil_taps(in0: float, in1: float, in_size: int, out_size: int) -> np.ndarray:
    """out_size x in_size integer taps of PIL's bilinear resample of [in0, in1) (float64)."""
    scale = (in1 - in0) / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # the bilinear filter's support is 1
    out = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = in0 + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        x = np.arange(xmax, dtype=np.float64)
        w = np.maximum(1.0 - np.abs((x + xmin - center + 0.5) / filterscale), 0.0)
        total = w.sum()
        if total != 0.0:
            w = w / total
        # PIL rounds half away from zero, by truncation of k * 2^22 + 0.5 (taps are >= 0)
        out[xx, xmin : xmin + xmax] = np.floor(0.5 + w * _ONE)
    return out


def taps_for(params: np.ndarray, side: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal and vertical taps (N x size x side each) for crop boxes (N x 5 rows)."""
    cache: dict[tuple[int, int], np.ndarray] = {}

    def taps(a: int, b: int) -> np.ndarray:
        if (a, b) not in cache:
            cache[(a, b)] = pil_taps(float(a), float(b), side, size)
        return cache[(a, b)]

    wx = np.stack([taps(int(p[0]), int(p[2])) for p in params])
    wy = np.stack([taps(int(p[1]), int(p[3])) for p in params])
    return wx, wy


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
    wx, wy = taps_for(params.cpu().numpy(), side, size)
    wx_t = torch.from_numpy(wx).to(device, non_blocking=True)
    wy_t = torch.from_numpy(wy).to(device, non_blocking=True)
    img = squares.to(torch.float64)
    # horizontal pass over every row: (N, S, S, 3) x (N, size, S) -> (N, S, size, 3)
    tmp = _round_shift(torch.einsum("nyxc,nox->nyoc", img, wx_t))
    # vertical pass: (N, S, size, 3) x (N, size, S) -> (N, size, size, 3)
    out = _round_shift(torch.einsum("nyxc,noy->noxc", tmp, wy_t)).to(torch.uint8)
    flip = params[:, 4].to(device=device, dtype=torch.bool)
    if bool(flip.any()):
        out = torch.where(flip.view(n, 1, 1, 1), out.flip(2), out)
    t = out.permute(0, 3, 1, 2).contiguous().to(torch.float32)
    return t.mul_(scale.to(device)).add_(offset.to(device))
