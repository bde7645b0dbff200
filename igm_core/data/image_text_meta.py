"""Parameters, annotation reading, caption preparation and torch-free metadata of the image-text
datasets `sarcasm` and `twitter2015` (the two image-text columns of the IGM paper's Table 1).

Layouts (as the IGM authors' loaders read them):

    sarcasm:      root/annotations/{train,valid,test}_data.json   a JSON list of
                                                                   {"image", "text", "label"}
                  root/images/<file name of "image">               the tweet's picture
    twitter2015:  root/annotations/{train,dev,test}.tsv            tab-separated, a header row with
                                                                   Label, ImageID, String (or the
                                                                   release's #1 Label, #2 ImageID,
                                                                   #3 String [, #3 String target])
                  root/twitter2015_images/<ImageID>

Labels: sarcasm 0 (not sarcastic) / 1 (sarcastic); twitter2015 0 (negative) / 1 (neutral) /
2 (positive), as integers or digit strings. Modalities `text` (token ids and attention mask, 2 x
max_tokens int64) and `image` (3 x image_size x image_size, normalised).

Captions are prepared by the authors' rules before tokenising (`prepare_caption`): lower-cased;
the characters , . ' ! ? " ( ) * # : ; ~ removed; '-' and '/' become spaces and '<person>' the
word 'person'; runs of two or more whitespace characters become one space; leading and trailing
spaces go; the first `max_words` space-separated words are kept. Twitter-2015 first keeps only
its English words (maximal runs of ASCII letters between word boundaries, joined by spaces).
In the release's five-column files the tweet's target entity stands as `$T$` in the sentence and
fills a second `#3 String` column: it is put back into the sentence, giving the tweet as written.

This module imports pydantic, json, csv and re only (no torch, numpy or transformers): the web
process validates specs with it. Every problem names its file and row.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from igm_core.data.av_meta import check_root
from igm_core.paths import inside

TEXT, IMAGE = "text", "image"
MODALITIES = (TEXT, IMAGE)
ANNOTATIONS = "annotations"
SPLITS = ("train", "val", "test")
FILES = {
    "sarcasm": {"train": "train_data.json", "val": "valid_data.json", "test": "test_data.json"},
    "twitter2015": {"train": "train.tsv", "val": "dev.tsv", "test": "test.tsv"},
}
IMAGE_DIRS = {"sarcasm": "images", "twitter2015": "twitter2015_images"}
CLASSES = {
    "sarcasm": ("not sarcastic", "sarcastic"),
    "twitter2015": ("negative", "neutral", "positive"),
}
# Cached images keep this much more than the crop size, so training can still crop at random.
STORE_SCALE = 1.15
# accepted header names of the Twitter-2015 columns (the second "#3 String" is the target)
TSV_COLUMNS = {"label": ("Label", "#1 Label"), "image": ("ImageID", "#2 ImageID"),
               "text": ("String", "#3 String")}  # fmt: skip
TARGET_SLOT = "$T$"

_PUNCTUATION = re.compile(r"[,.'!?\"()*#:;~]")
_SPACE_RUNS = re.compile(r"\s{2,}")
_ENGLISH_WORD = re.compile(r"\b[A-Za-z]+\b")


class ImageTextParams(BaseModel):
    """Parameters common to the image-text datasets (defaults: the IGM authors' preparation)."""

    # strict: no `true` as a batch size, no "3" or 2.5 as an int (an int is a float, though)
    model_config = ConfigDict(extra="forbid", strict=True)

    root: str = Field(..., min_length=1, max_length=4096, description="the dataset folder")
    tokenizer: str = Field(
        ...,
        min_length=1,
        max_length=4096,
        description="a local folder with the tokenizer files as save_pretrained writes them "
        "(vocab.txt, tokenizer_config.json, ...); usually the bert encoder's folder; never fetched",
    )
    image_size: int = Field(224, ge=32, le=512, description="image side after cropping")
    max_words: int = Field(
        50, ge=1, le=512, description="captions are cut to this many words before tokenising"
    )
    max_tokens: int = Field(
        50, ge=4, le=512, description="token sequence length ([CLS] and [SEP] included)"
    )
    eval_max_tokens: int | None = Field(
        None,
        ge=4,
        le=512,
        description="token length of the validation and test captions (default max_tokens; "
        "the authors' code evaluates at 30)",
    )
    crop_scale: float = Field(
        0.5, gt=0.0, le=1.0, description="training crops cover [crop_scale, 1] of the image area"
    )
    rand_augment: int = Field(
        2, ge=0, le=8, description="random augmentation operations per training image (0: none)"
    )
    rand_augment_level: int = Field(7, ge=0, le=10, description="their magnitude, out of 10")
    normalize: Literal["clip", "imagenet"] = Field(
        "clip", description="per-channel mean and std: CLIP's (the authors' code) or ImageNet's"
    )
    truncated_images: Literal["error", "load"] = Field(
        "error",
        description="an image file cut short: an error naming it, or decode what is there "
        "(the authors' code loads them)",
    )
    skip_missing: bool = Field(False, description="skip (and count) rows whose image is missing")
    num_workers: int = Field(2, ge=0, le=64, description="DataLoader worker processes")
    cache: bool = Field(True, description="read the `igm prepare` cache when it is up to date")


class SarcasmParams(ImageTextParams):
    """Sarcasm (Cai et al., 2019): 2 classes, 19,816 / 2,410 / 2,409 image-text pairs."""


class Twitter2015Params(ImageTextParams):
    """Twitter-2015 (Yu and Jiang, 2019): 3 sentiment classes, 3,179 / 1,122 / 1,037 pairs."""


PARAMS: dict[str, type[ImageTextParams]] = {
    "sarcasm": SarcasmParams,
    "twitter2015": Twitter2015Params,
}


# ----------------------------------------------------------------------------- captions


def prepare_caption(text: str, max_words: int) -> str:
    """The authors' caption rules (module docstring): lower case, punctuation out, words cut."""
    s = _PUNCTUATION.sub("", text.lower())
    s = s.replace("-", " ").replace("/", " ").replace("<person>", "person")
    s = _SPACE_RUNS.sub(" ", s).rstrip("\n").strip(" ")
    return " ".join(s.split(" ")[:max_words])


def english_words(text: str) -> str:
    """Twitter-2015's first rule: only the words made of ASCII letters, joined by spaces."""
    return " ".join(_ENGLISH_WORD.findall(text))


def caption_of(dataset: str, text: str, max_words: int) -> str:
    if dataset == "twitter2015":
        text = english_words(text)
    return prepare_caption(text, max_words)


# ----------------------------------------------------------------------------- annotations


@dataclass(frozen=True)
class Row:
    """One annotated pair: where it was listed (for error messages), its image name, text and
    class index."""

    image: str
    text: str
    label: int
    file: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.file} row {self.line}"


@dataclass
class Annotations:
    root: Path
    dataset: str
    rows: dict[str, list[Row]] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return list(CLASSES[self.dataset])

    @property
    def n_classes(self) -> int:
        return len(CLASSES[self.dataset])


def _label(value: Any, dataset: str, path: Path, line: int) -> int:
    n = len(CLASSES[dataset])
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{path}: row {line}: label {str(value)[:40]!r} is not an integer")
    if not 0 <= value < n:
        raise ValueError(
            f"{path}: row {line}: label {value} is out of range; {dataset} has {n} classes "
            f"(0-{n - 1}: {', '.join(CLASSES[dataset])})"
        )
    return value


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing annotation file")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_json_rows(path: Path) -> list[Row]:
    """Sarcasm: a JSON list of {"image", "text", "label"} objects; row = 1-based list position."""
    try:
        entries = json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of {{image, text, label}} objects")
    rows = []
    for i, entry in enumerate(entries, start=1):
        missing = [
            k for k in ("image", "text", "label") if not isinstance(entry, dict) or k not in entry
        ]
        if missing:
            raise ValueError(f"{path}: row {i}: missing {', '.join(missing)}")
        image, text = entry["image"], entry["text"]
        if not isinstance(image, str) or not image.strip():
            raise ValueError(f"{path}: row {i}: row without an image (image {str(image)[:80]!r})")
        if not isinstance(text, str):
            raise ValueError(f"{path}: row {i}: text is not a string")
        # the image is looked up by its file name in root/images (a path in the JSON is ignored)
        name = image.replace("\\", "/").rsplit("/", 1)[-1]
        rows.append(Row(name, text, _label(entry["label"], "sarcasm", path, i), path, i))
    return rows


def _tsv_columns(path: Path, header: list[str]) -> dict[str, int]:
    cells = [c.strip() for c in header]
    found: dict[str, int] = {}
    for key, names in TSV_COLUMNS.items():
        at = [i for i, c in enumerate(cells) if c in names]
        if not at:
            raise ValueError(
                f"{path}: row 1: no {' or '.join(repr(n) for n in names)} column in the header "
                f"({', '.join(repr(c) for c in cells[:8])})"
            )
        found[key] = at[0]
        if key == "text" and len(at) > 1:
            found["target"] = at[1]
    return found


def read_tsv_rows(path: Path) -> list[Row]:
    """Twitter-2015: tab-separated with a header; quotes are plain characters (QUOTE_NONE)."""
    reader = csv.reader(
        io.StringIO(_read_text(path), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE
    )
    # (physical line, cells): a line is a row (QUOTE_NONE: no field spans lines)
    records = [(reader.line_num, cells) for cells in reader]
    if not records:
        raise ValueError(f"{path}: empty file (a header row and one row per pair are expected)")
    header = records[0][1]
    cols = _tsv_columns(path, header)
    rows = []
    for line, cells in records[1:]:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) <= max(cols.values()):
            raise ValueError(
                f"{path}: row {line}: {len(cells)} columns, the header has {len(header)}"
            )
        image, text = cells[cols["image"]].strip(), cells[cols["text"]]
        if not image:
            raise ValueError(f"{path}: row {line}: row without an image (empty ImageID)")
        if "target" in cols and TARGET_SLOT in text:
            text = text.replace(TARGET_SLOT, cells[cols["target"]])
        label = _label(cells[cols["label"]], "twitter2015", path, line)
        rows.append(Row(image, text, label, path, line))
    return rows


def read_annotations(dataset: str, root: str) -> Annotations:
    """Read and check the three annotation files of `dataset` under `root`."""
    if dataset not in FILES:
        raise KeyError(f"unknown image-text dataset {dataset!r}; choose one of: {', '.join(FILES)}")
    base = check_root(root)
    ann = Annotations(base, dataset)
    for split in SPLITS:
        path = base / ANNOTATIONS / FILES[dataset][split]
        if path.is_file():  # a linked annotation file must not lead elsewhere
            path = inside(base, path, f"{ANNOTATIONS}/{path.name}")
        rows = read_json_rows(path) if dataset == "sarcasm" else read_tsv_rows(path)
        if not rows:
            raise ValueError(f"{path}: no image-text pairs listed")
        ann.rows[split] = rows
    return ann


# ----------------------------------------------------------------------------- metadata


def store_size(p: ImageTextParams) -> int:
    """Side of the square images kept in the cache (and decoded before any crop)."""
    return round(p.image_size * STORE_SCALE)


def token_length(p: ImageTextParams, split: str) -> int:
    return p.max_tokens if split == "train" or p.eval_max_tokens is None else p.eval_max_tokens


def image_text_meta(dataset: str, p: ImageTextParams) -> dict[str, Any]:
    """Modalities, per-sample shapes, class count, split sizes and the default encoders
    (`token_bag` for the token ids: it needs no weights); reads the annotation files only."""
    ann = read_annotations(dataset, p.root)
    return {
        "modalities": list(MODALITIES),
        "shapes": {TEXT: (2, p.max_tokens), IMAGE: (3, p.image_size, p.image_size)},
        "n_classes": ann.n_classes,
        "sizes": {split: len(rows) for split, rows in ann.rows.items()},
        "default_encoders": {TEXT: "token_bag"},
    }


def sarcasm_meta(p: SarcasmParams) -> dict[str, Any]:
    return image_text_meta("sarcasm", p)


def twitter2015_meta(p: Twitter2015Params) -> dict[str, Any]:
    return image_text_meta("twitter2015", p)
