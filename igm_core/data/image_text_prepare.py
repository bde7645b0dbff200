"""Writing the image-text cache (`igm prepare sarcasm|twitter2015`): every image of a split
decoded once (in DataLoader worker processes) and every caption tokenised once, each into a
temporary folder renamed into place (see image_text_cache for the layout). An up-to-date cache
is kept as it is. Checking a folder is part of it: every row's image must exist and decode, every
label must be in range; the first problem is reported with its file and row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from igm_core.data import image_text_cache as cache_mod
from igm_core.data.atomic import write_atomically
from igm_core.data.image_text import (
    DataFileError,
    ImageTextSource,
    LazyTokenizer,
    Pair,
    captions,
    plan,
)
from igm_core.data.image_text_meta import PARAMS, ImageTextParams, store_size, token_length

Progress = Callable[[str, int, int], None]  # (split, images done, images in split)


@dataclass
class SplitReport:
    split: str
    pairs: int
    images_path: Path
    tokens_path: Path
    bytes: int
    written: bool  # False: up-to-date caches were already there


def _size(*paths: Path) -> int:
    return sum(f.stat().st_size for path in paths for f in path.iterdir() if f.is_file())


class _Decode:
    """index -> the canonical square, or the message naming why the image cannot be decoded
    (returned, not raised: an exception from a worker would arrive wrapped in its traceback)."""

    def __init__(self, source: ImageTextSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source.pairs)

    def __getitem__(self, index: int) -> np.ndarray | str:
        try:
            return self.source.decode(index)
        except ValueError as err:
            return str(err)


def _write_images(tmp: Path, source: ImageTextSource, p: ImageTextParams, done: Callable) -> None:
    import torch

    side = store_size(p)
    images = np.lib.format.open_memmap(
        tmp / "images.npy", "w+", np.uint8, (len(source.pairs), side, side, 3)
    )
    loader = torch.utils.data.DataLoader(
        _Decode(source), batch_size=None, num_workers=p.num_workers, shuffle=False
    )
    for i, square in enumerate(loader):
        if isinstance(square, str):
            raise DataFileError(square)
        images[i] = np.asarray(square)
        done(i + 1)
    images.flush()
    del images


def prepare_split(
    dataset: str,
    split: str,
    pairs: list[Pair],
    p: ImageTextParams,
    tokenizer: LazyTokenizer,
    progress: Progress | None = None,
) -> SplitReport:
    """Write one split's image and token caches unless up-to-date ones exist."""
    report = progress or (lambda s, d, n: None)
    texts = captions(dataset, p, pairs)
    length = token_length(p, split)
    base = cache_mod.cache_root(p)
    img_dir = base / f"images-{cache_mod.image_fingerprint(p, [pair.image for pair in pairs])}"
    tok_dir = base / f"tokens-{cache_mod.token_fingerprint(p, length, texts)}"
    written = False
    if not (tok_dir / "manifest.json").is_file():
        from igm_core import hf

        tokens = hf.tokenize(texts, tokenizer(), length).astype(np.int32)
        manifest = {"settings": cache_mod.token_settings(p, length), "split": split,
                    "captions": len(texts)}  # fmt: skip
        write_atomically(tok_dir, lambda tmp: np.save(tmp / "tokens.npy", tokens), manifest)
        written = True
    if (img_dir / "manifest.json").is_file():
        report(split, len(pairs), len(pairs))
    else:
        source = ImageTextSource(pairs, np.zeros((len(pairs), 2, 1), np.int64), p, None)
        manifest = {
            "settings": cache_mod.image_settings(p),
            "split": split,
            "images": [str(pair.image.name) for pair in pairs],
        }
        done = lambda d: report(split, d, len(pairs))  # noqa: E731
        write_atomically(img_dir, lambda tmp: _write_images(tmp, source, p, done), manifest)
        written = True
    return SplitReport(split, len(pairs), img_dir, tok_dir, _size(img_dir, tok_dir), written)


def prepare(
    dataset: str,
    root: str,
    params: dict[str, Any] | None = None,
    *,
    progress: Progress | None = None,
) -> list[SplitReport]:
    """Check the folder and cache the train, val and test pairs of `dataset` at `root`."""
    if dataset not in PARAMS:
        raise KeyError(
            f"unknown image-text dataset {dataset!r}; choose one of: {', '.join(PARAMS)}"
        )
    p = PARAMS[dataset].model_validate({**(params or {}), "root": root})
    pl = plan(dataset, p)
    tokenizer = LazyTokenizer(p.tokenizer)
    return [
        prepare_split(dataset, split, pairs, p, tokenizer, progress)
        for split, pairs in pl.pairs.items()
    ]
