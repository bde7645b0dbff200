"""Image decoding and the image-text datasets' transforms, on uint8 squares (PIL and numpy).

Every image is first brought to a canonical square (whole image, aspect ignored, bicubic), the
same on the decoding path and in the cache. Training then takes, with the sample's own generator:
a random resized crop covering [crop_scale, 1] of the square's area with an aspect ratio in
[3/4, 4/3] (log-uniform), resized to image_size (bicubic); a horizontal flip with probability
1/2; then `ops` random operations drawn with replacement from ten (identity, auto-contrast,
equalize, brightness, sharpness, shear x / y, translate x / y, rotate), each applied with
probability 1/2 at magnitude `level` out of 10: enhancement factor 0.1 + 1.8 level / 10, shear
0.3 level / 10, translation level pixels, rotation 30 level / 10 degrees, each of the last three
with a random sign, uncovered pixels grey (128). These are the operations and magnitudes of the
RandomAugment(2, 7) the IGM authors' image-text loader applies (PIL's implementations here).
Evaluation resizes the square to image_size. Both end normalised by a per-channel mean and std.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFile, ImageOps

NORMALIZE = {
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
GREY = (128, 128, 128)
ASPECT = (3 / 4, 4 / 3)
BICUBIC = Image.Resampling.BICUBIC


@contextlib.contextmanager
def _truncated(allowed: bool) -> Iterator[None]:
    # PIL's switch is a module global; set for this decode only (one per process at a time)
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = allowed
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def read_image(path: Path, side: int, truncated: str = "error") -> np.ndarray:
    """The whole image resized (aspect ignored, bicubic) to side x side x 3 uint8; ValueError
    naming the file when it cannot be decoded."""
    try:
        with _truncated(truncated == "load"), Image.open(path) as im:
            im.draft("RGB", (side, side))  # lets the JPEG decoder downscale large images
            rgb = im.convert("RGB").resize((side, side), BICUBIC)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: cannot decode image ({err})") from None
    return np.array(rgb, dtype=np.uint8)  # writable: it may be handed to torch


def check_header(path: Path) -> str | None:
    """Why the file is not an image PIL can open (its header only), or None."""
    try:
        with Image.open(path) as im:
            im.size  # noqa: B018  (the header is parsed on open; size proves it)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        return f"{path}: cannot decode image ({err})"
    return None


def crop_box(rng: np.random.Generator, side: int, scale: float) -> tuple[int, int, int, int]:
    """A random box covering [scale, 1] of the side x side square's area, aspect 3/4-4/3."""
    area = side * side
    for _ in range(10):
        target = area * rng.uniform(scale, 1.0)
        aspect = math.exp(rng.uniform(math.log(ASPECT[0]), math.log(ASPECT[1])))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= side and 0 < h <= side:
            x = int(rng.integers(0, side - w + 1))
            y = int(rng.integers(0, side - h + 1))
            return (x, y, x + w, y + h)
    return (0, 0, side, side)


def _signed(rng: np.random.Generator, value: float) -> float:
    return -value if rng.random() < 0.5 else value


def _affine(im: Image.Image, coeffs: tuple[float, ...]) -> Image.Image:
    return im.transform(im.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR,
                        fillcolor=GREY)  # fmt: skip


Op = Callable[[Image.Image, int, np.random.Generator], Image.Image]
OPS: dict[str, Op] = {
    "identity": lambda im, level, rng: im,
    "auto_contrast": lambda im, level, rng: ImageOps.autocontrast(im),
    "equalize": lambda im, level, rng: ImageOps.equalize(im),
    "brightness": lambda im, level, rng: ImageEnhance.Brightness(im).enhance(
        0.1 + 1.8 * level / 10
    ),
    "sharpness": lambda im, level, rng: ImageEnhance.Sharpness(im).enhance(0.1 + 1.8 * level / 10),
    "shear_x": lambda im, level, rng: _affine(im, (1, _signed(rng, 0.3 * level / 10), 0, 0, 1, 0)),
    "shear_y": lambda im, level, rng: _affine(im, (1, 0, 0, _signed(rng, 0.3 * level / 10), 1, 0)),
    "translate_x": lambda im, level, rng: _affine(im, (1, 0, _signed(rng, level), 0, 1, 0)),
    "translate_y": lambda im, level, rng: _affine(im, (1, 0, 0, 0, 1, _signed(rng, level))),
    "rotate": lambda im, level, rng: im.rotate(
        _signed(rng, 30 * level / 10), Image.Resampling.BILINEAR, fillcolor=GREY
    ),
}
OP_NAMES = tuple(OPS)


def rand_augment(im: Image.Image, rng: np.random.Generator, ops: int, level: int) -> Image.Image:
    """`ops` operations drawn with replacement, each applied with probability 1/2."""
    for k in rng.integers(0, len(OP_NAMES), size=ops):
        if rng.random() < 0.5:
            im = OPS[OP_NAMES[int(k)]](im, level, rng)
    return im


class ImageTransform:
    """uint8 square -> 3 x size x size float32, normalised; random when a generator is given."""

    def __init__(self, size: int, normalize: str, crop_scale: float, ops: int, level: int) -> None:
        self.size, self.crop_scale, self.ops, self.level = size, crop_scale, ops, level
        mean, std = (np.array(v, dtype=np.float32) for v in NORMALIZE[normalize])
        self.scale = torch.from_numpy(1.0 / (255.0 * std)).view(3, 1, 1)
        self.offset = torch.from_numpy(-mean / std).view(3, 1, 1)

    def __call__(self, square: np.ndarray, rng: np.random.Generator | None) -> torch.Tensor:
        im = Image.fromarray(square)
        if rng is None:
            im = im.resize((self.size, self.size), BICUBIC)
        else:
            box = crop_box(rng, square.shape[0], self.crop_scale)
            im = im.resize((self.size, self.size), BICUBIC, box=box)
            if rng.random() < 0.5:
                im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if self.ops:
                im = rand_augment(im, rng, self.ops, self.level)
        t = torch.from_numpy(np.array(im)).permute(2, 0, 1).contiguous().to(torch.float32)
        return t.mul_(self.scale).add_(self.offset)
