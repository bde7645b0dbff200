"""The image-text datasets `sarcasm` and `twitter2015`: files, captions, tokens, sources.

Layout, parameters, caption rules and shapes: see image_text_meta; transforms: image_aug. Each
sample is
- "text": 2 x L int64, the prepared caption's token ids (padded with the tokenizer's pad id) and
  its attention mask; L = max_tokens for training, eval_max_tokens (default max_tokens) for
  validation and test. A text encoder reads only the columns up to the batch's longest caption;
- "image": 3 x image_size x image_size float32, normalised.

Tokens come from the `igm prepare` cache when it is up to date, otherwise the tokenizer folder is
loaded once per run and every caption tokenised in memory. Images come from the cache (uint8
squares, memory-mapped) or are decoded per sample; without a cache every image header is checked
when the dataset loads, so that a file that is no image is named before training starts.

Errors name the file and the row: a missing root, annotation file or image folder, a row whose
image is missing (or, with skip_missing, a warning and a count in info["skipped"]), an image that
cannot be decoded, a label out of range, an image name that leads out of the root.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from igm_core.data import image_text_cache as cache_mod
from igm_core.data.base import SPLITS, DatasetSplit, MultimodalData
from igm_core.data.image_aug import ImageTransform, check_header, read_image
from igm_core.data.image_text_meta import (
    IMAGE,
    IMAGE_DIRS,
    MODALITIES,
    TEXT,
    Annotations,
    ImageTextParams,
    Row,
    SarcasmParams,
    Twitter2015Params,
    caption_of,
    read_annotations,
    store_size,
    token_length,
)
from igm_core.paths import inside

log = logging.getLogger(__name__)


class DataFileError(ValueError):
    """A data file that cannot be used. A DataLoader worker's exception reaches the main
    process as the same class built from a message holding the worker's traceback; this class
    keeps only the original message from it, so users see the file and row, not a traceback."""

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        if message.startswith("Caught ") and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


@dataclass(frozen=True)
class Pair:
    """An annotated pair with its image file resolved."""

    row: Row
    image: Path


@dataclass
class Plan:
    dataset: str
    params: ImageTextParams
    ann: Annotations
    pairs: dict[str, list[Pair]]
    skipped: list[str]


def _resolve(row: Row, folder: Path, root: Path) -> Pair | str:
    """The pair, or why its image cannot be used (a message naming the path and the row)."""
    path = folder / row.image
    if not path.is_file():
        return f"{path}: missing image ({row.where})"
    inside(root, path, f"image {row.image[:100]!r} ({row.where})")  # a name or link leading out
    return Pair(row, path.resolve())


def plan(dataset: str, p: ImageTextParams) -> Plan:
    """Read the annotations and resolve every row's image file."""
    ann = read_annotations(dataset, p.root)
    folder = ann.root / IMAGE_DIRS[dataset]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: missing image folder ({IMAGE_DIRS[dataset]}/)")
    pairs: dict[str, list[Pair]] = {}
    skipped: list[str] = []
    for split, rows in ann.rows.items():
        got = []
        for row in rows:
            pair = _resolve(row, folder, ann.root)
            if isinstance(pair, str):
                if not p.skip_missing:
                    raise FileNotFoundError(pair)
                skipped.append(pair)
            else:
                got.append(pair)
        if not got:
            raise ValueError(f"{rows[0].file}: no usable pairs (all {len(rows)} skipped)")
        pairs[split] = got
    if skipped:
        log.warning("%s: skipped %d rows without an image, e.g. %s", ann.root, len(skipped),
                    skipped[0])  # fmt: skip
    return Plan(dataset, p, ann, pairs, skipped)


def captions(dataset: str, p: ImageTextParams, pairs: list[Pair]) -> list[str]:
    return [caption_of(dataset, pair.row.text, p.max_words) for pair in pairs]


class LazyTokenizer:
    """The tokenizer of a folder, loaded (with transformers) on first use only."""

    def __init__(self, folder: str) -> None:
        self.folder, self._tokenizer = folder, None

    def __call__(self) -> Any:
        if self._tokenizer is None:
            from igm_core import hf  # transformers: only when tokenising

            self._tokenizer = hf.load_tokenizer(self.folder)
        return self._tokenizer


def tokens_for(
    dataset: str, p: ImageTextParams, split: str, pairs: list[Pair], tokenizer: LazyTokenizer
) -> tuple[np.ndarray, bool]:
    """(N x 2 x L int64 tokens, read from the cache?) of a split."""
    texts = captions(dataset, p, pairs)
    length = token_length(p, split)
    if p.cache:
        cached = cache_mod.read_tokens(p, length, texts)
        if cached is not None:
            return cached, True
    from igm_core import hf

    return hf.tokenize(texts, tokenizer(), length), False


def check_images(pairs: list[Pair]) -> None:
    """Every image's header can be read (cheap: no pixel is decoded)."""
    for pair in pairs:
        problem = check_header(pair.image)
        if problem is not None:
            raise DataFileError(f"{problem} ({pair.row.where})")


class ImageTextSource:
    """Loads a pair's tokens (in memory) and image (cache or decoding)."""

    def __init__(
        self,
        pairs: list[Pair],
        tokens: np.ndarray,
        p: ImageTextParams,
        images: cache_mod.CachedImages | None,
    ) -> None:
        self.modalities = list(MODALITIES)
        self.pairs, self.tokens, self.params, self.images = pairs, tokens, p, images
        self.labels = np.array([pair.row.label for pair in pairs], dtype=np.int64)
        self.side = store_size(p)
        self.transform = ImageTransform(
            p.image_size, p.normalize, p.crop_scale, p.rand_augment, p.rand_augment_level
        )

    def decode(self, index: int) -> np.ndarray:
        """The canonical uint8 square of pair `index`, decoded from its file."""
        pair = self.pairs[index]
        try:
            return read_image(pair.image, self.side, self.params.truncated_images)
        except ValueError as err:
            raise DataFileError(f"{err} ({pair.row.where})") from None

    def square(self, index: int) -> np.ndarray:
        return self.images.image(index) if self.images is not None else self.decode(index)

    def load(
        self, index: int, modalities: list[str], rng: np.random.Generator | None
    ) -> dict[str, torch.Tensor]:
        out = {}
        for m in modalities:
            if m == TEXT:
                out[m] = torch.from_numpy(self.tokens[index])
            elif m == IMAGE:
                out[m] = self.transform(self.square(index), rng)
            else:
                raise KeyError(f"unknown modality {m!r}; this dataset has {', '.join(MODALITIES)}")
        return out


def build(dataset: str, p: ImageTextParams) -> MultimodalData:
    """Plan the dataset, read or compute each split's tokens, open its image cache if any."""
    pl = plan(dataset, p)
    splits, cached, tokenizer = {}, {}, LazyTokenizer(p.tokenizer)
    for split in SPLITS:
        pairs = pl.pairs[split]
        tokens, from_cache = tokens_for(dataset, p, split, pairs, tokenizer)
        images = cache_mod.open_images(p, [pair.image for pair in pairs]) if p.cache else None
        if images is None:
            check_images(pairs)
        cached[split] = {
            "images": str(images.path) if images is not None else None,
            "tokens": from_cache,
        }
        source = ImageTextSource(pairs, tokens, p, images)
        splits[split] = DatasetSplit(source, num_workers=p.num_workers, pin_memory=True)
    info = {
        "root": str(pl.ann.root),
        "sizes": {s: len(pl.pairs[s]) for s in SPLITS},
        "classes": pl.ann.classes,
        "skipped": len(pl.skipped),
        "cache": cached,
    }
    return MultimodalData(splits, pl.ann.n_classes, info)


def load_sarcasm(params: SarcasmParams, seed: int) -> MultimodalData:
    """Sarcasm from root (see image_text_meta); `seed` is unused (the splits are the files')."""
    del seed
    return build("sarcasm", params)


def load_twitter2015(params: Twitter2015Params, seed: int) -> MultimodalData:
    """Twitter-2015 from root (see image_text_meta); `seed` is unused."""
    del seed
    return build("twitter2015", params)
