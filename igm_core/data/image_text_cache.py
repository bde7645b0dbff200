"""The cache of the image-text datasets: decoded images and tokenised captions per split.

image_text_prepare.py writes it (`igm prepare sarcasm|twitter2015`); image_text.py reads it.
Decoding and resizing a JPEG costs milliseconds, every epoch; tokenising needs `transformers`.
`prepare` does both once per split, into root/.igm_cache/:

    images-<fingerprint>/images.npy    N x S x S x 3 uint8, each image resized (aspect ignored)
                                       to the canonical square S = round(1.15 * image_size)
    tokens-<fingerprint>/tokens.npy    N x 2 x L int32: token ids and attention mask
    */manifest.json                    what was hashed

The images' fingerprint hashes the square side, the truncated-image rule and every image file of
the split in order (path, size, mtime); the tokens' fingerprint hashes the token length, the
tokenizer's files (contents) and the prepared captions themselves. A changed parameter, file,
caption or tokenizer is never read from a stale cache: it is simply not found. A cache is written
in a temporary folder and renamed into place, so a reader never sees a half-written one.
numpy only (no torch, no transformers).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from igm_core.data.image_text_meta import ImageTextParams, store_size

FORMAT = 1
CACHE_DIR = ".igm_cache"
# the files a tokenizer is made of (the weights are not: they do not change the ids)
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


def cache_root(p: ImageTextParams) -> Path:
    return Path(p.root).expanduser().resolve() / CACHE_DIR


def _digest(blob: Any) -> str:
    text = json.dumps(blob, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def image_settings(p: ImageTextParams) -> dict[str, Any]:
    return {"format": FORMAT, "side": store_size(p), "truncated": p.truncated_images}


def image_fingerprint(p: ImageTextParams, images: list[Path]) -> str:
    root = Path(p.root).expanduser().resolve()
    files = []
    for path in images:
        st = os.stat(path)
        files.append([str(path.relative_to(root)), st.st_size, st.st_mtime_ns])
    return _digest({"settings": image_settings(p), "images": files})


def tokenizer_digest(folder: str | Path) -> str:
    """sha256 of the tokenizer's files (names and contents): what decides the token ids."""
    h = hashlib.sha256()
    base = Path(folder).expanduser()
    for name in TOKENIZER_FILES:
        path = base / name
        if path.is_file():
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:20]


def token_settings(p: ImageTextParams, length: int) -> dict[str, Any]:
    return {"format": FORMAT, "length": length, "tokenizer": tokenizer_digest(p.tokenizer)}


def token_fingerprint(p: ImageTextParams, length: int, captions: list[str]) -> str:
    return _digest({"settings": token_settings(p, length), "captions": captions})


class CachedImages:
    """Read access to one split's images; memory-mapped on first use in each process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._images: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers started by spawn map the file themselves rather than unpickle it
        return {"path": self.path, "_images": None}

    def array(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self.path / "images.npy", mmap_mode="r", allow_pickle=False)
        return self._images

    def image(self, index: int) -> np.ndarray:
        return np.array(self.array()[index])

    def check(self, n: int, side: int) -> None:
        shape = self.array().shape
        if shape != (n, side, side, 3):
            raise ValueError(
                f"{self.path / 'images.npy'}: shape {shape}, expected {(n, side, side, 3)}"
            )


def open_images(p: ImageTextParams, images: list[Path]) -> CachedImages | None:
    """The split's up-to-date image cache, or None."""
    path = cache_root(p) / f"images-{image_fingerprint(p, images)}"
    if not (path / "manifest.json").is_file():
        return None
    cache = CachedImages(path)
    cache.check(len(images), store_size(p))
    return cache


def read_tokens(p: ImageTextParams, length: int, captions: list[str]) -> np.ndarray | None:
    """The split's cached token ids and masks (N x 2 x length int64), or None."""
    path = cache_root(p) / f"tokens-{token_fingerprint(p, length, captions)}"
    if not (path / "manifest.json").is_file():
        return None
    tokens = np.load(path / "tokens.npy", allow_pickle=False)
    if tokens.shape != (len(captions), 2, length):
        raise ValueError(f"{path / 'tokens.npy'}: shape {tokens.shape} is wrong")
    return tokens.astype(np.int64)
