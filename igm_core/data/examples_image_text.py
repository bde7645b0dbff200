"""Tiny image-text datasets in the Sarcasm and Twitter-2015 layouts, and a tiny BERT folder.

`sarcasm(root)` and `twitter2015(root)` write a small dataset under root (images whose colour
depends on the class, captions whose words do, with punctuation, hashtags and mixed case for the
caption rules to handle) plus `root/bert-tiny/`: a BERT of two 32-wide layers with random
weights and a vocabulary of the captions' words, as `save_pretrained` writes it. They return
parameters that train in seconds: to try the layouts, and for the tests.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from igm_core.data import image_text_meta as meta

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = {
    0: ["the", "cat", "sat", "on", "mat", "calm", "day", "rain", "bad", "sad"],
    1: ["oh", "great", "another", "monday", "love", "it", "so", "fun", "wow", "yay"],
    2: ["happy", "good", "sun", "win", "best", "team", "party", "smile", "nice", "cool"],
}
COLOURS = [(220, 40, 40), (40, 200, 40), (40, 40, 220)]
TINY_BERT = "bert-tiny"


def vocabulary() -> list[str]:
    words = sorted({w for ws in WORDS.values() for w in ws} | {"person", "t"})
    return SPECIAL + words + ["##s"]


def write_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A BERT folder as save_pretrained writes it: config, random weights, tokenizer files."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(str(folder))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
    from igm_core.hf import quiet

    with quiet():
        model.save_pretrained(str(folder))
    return folder


def write_image(path: Path, cls: int, k: int, size: tuple[int, int] = (40, 30)) -> None:
    w, h = size
    rng = np.random.default_rng(k)
    img = np.clip(np.array(COLOURS[cls % 3]) + rng.normal(0, 20, (h, w, 3)), 0, 255)
    img[:, (k * 5) % (w - 4) :][:, :4] = 255  # a bright bar: images of a class differ
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img.astype(np.uint8)).save(path, quality=90)


def caption(cls: int, k: int) -> str:
    """Words of the class, decorated with what the caption rules remove or change."""
    rng = np.random.default_rng(1000 + k)
    words = list(rng.choice(WORDS[cls], size=5))
    words[0] = words[0].capitalize()
    return f"{' '.join(words[:3])}, #{words[3]}!! <person> {words[4]}-{words[0]}?"


def _pairs(split: str, counts: dict[str, int], n_classes: int, start: int) -> list[tuple]:
    out, k = [], start
    for cls in range(n_classes):
        for _ in range(counts[split]):
            out.append((f"{split}_{k:04d}.jpg", caption(cls, k), cls, k))
            k += 1
    return out


def write_sarcasm(root: Path, per_class: dict[str, int] | None = None) -> Path:
    """root/annotations/{train,valid,test}_data.json and root/images/*.jpg."""
    counts = per_class or {"train": 6, "val": 2, "test": 2}
    k = 0
    for split in meta.SPLITS:
        rows, pairs = [], _pairs(split, counts, 2, k)
        for name, text, cls, idx in pairs:
            write_image(root / meta.IMAGE_DIRS["sarcasm"] / name, cls, idx)
            # the authors' files hold a path; the image is looked up by its file name
            rows.append({"image": f"dataset_image/{name}", "text": text, "label": cls})
        k += len(pairs)
        path = root / meta.ANNOTATIONS / meta.FILES["sarcasm"][split]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1))
    return root


def write_twitter2015(
    root: Path, per_class: dict[str, int] | None = None, release_headers: bool = False
) -> Path:
    """root/annotations/{train,dev,test}.tsv and root/twitter2015_images/*.jpg; with
    release_headers, the original release's five columns (index, #1 Label, #2 ImageID,
    #3 String with $T$, #3 String: the target)."""
    counts = per_class or {"train": 4, "val": 2, "test": 2}
    k = 0
    for split in meta.SPLITS:
        path = root / meta.ANNOTATIONS / meta.FILES["twitter2015"][split]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as fp:
            out = csv.writer(fp, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
            if release_headers:
                out.writerow(["index", "#1 Label", "#2 ImageID", "#3 String", "#3 String"])
            else:
                out.writerow(["Label", "ImageID", "String"])
            pairs = _pairs(split, counts, 3, k)
            for i, (name, text, cls, idx) in enumerate(pairs):
                write_image(root / meta.IMAGE_DIRS["twitter2015"] / name, cls, idx)
                text = f"RT @user: {text} café2go"
                if release_headers:
                    first = text.split(" ")[2]
                    out.writerow([i, cls, name, text.replace(first, "$T$", 1), first])
                else:
                    out.writerow([cls, name, text])
        k += len(pairs)
    return root


def _params(root: Path) -> dict[str, Any]:
    return {
        "root": str(root),
        "tokenizer": str(write_tiny_bert(root / TINY_BERT)),
        "image_size": 32,
        "max_tokens": 16,
        "num_workers": 0,
    }


def sarcasm(root: Path) -> dict[str, Any]:
    write_sarcasm(root)
    return _params(root)


def twitter2015(root: Path) -> dict[str, Any]:
    write_twitter2015(root)
    return _params(root)
