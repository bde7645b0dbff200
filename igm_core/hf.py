"""Hugging Face `transformers`, used from local folders only: the one module that imports it.

A BERT model and its tokenizer are read from a folder as `save_pretrained` writes it (config.json,
model.safetensors or pytorch_model.bin, vocab.txt / tokenizer.json, tokenizer_config.json).
Every call passes local_files_only=True, so nothing is ever fetched from a hub, whatever the
environment says; a folder without the needed files is a clear error naming it and the files, not
a download attempt. `transformers` is imported inside the functions: it is a worker-side
dependency (the web process never imports it, an import-linter contract) and takes seconds to
import, which only the commands that need it should pay.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")  # one of them is needed
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def check_folder(folder: str | Path, what: str, needs: tuple[str, ...], any_of: bool) -> Path:
    """The folder, if it holds the files `needs` (all, or one of them with any_of); else an
    error naming the folder and what is missing."""
    path = Path(folder).expanduser()
    local = "it is read from a local folder only, never downloaded from a hub"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder ({what}; {local})")
    present = [n for n in needs if (path / n).is_file()]
    if (any_of and not present) or (not any_of and len(present) < len(needs)):
        wanted = " or ".join(needs) if any_of else ", ".join(n for n in needs if n not in present)
        raise FileNotFoundError(
            f"{path}: not a {what} folder as save_pretrained writes it (no {wanted}); {local}"
        )
    return path.resolve()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No progress bars and no load reports (an unused pooler is expected), restored after."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_tokenizer(folder: str | Path) -> Any:
    path = check_folder(folder, "tokenizer", TOKENIZER_FILES, any_of=True)
    from transformers import AutoTokenizer

    with quiet():
        try:
            return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{path}: cannot load the tokenizer ({err})") from None


def tokenize(texts: list[str], tokenizer: Any, length: int) -> np.ndarray:
    """N x 2 x length int64: token ids (padded with the tokenizer's pad id) and attention mask;
    captions longer than `length` tokens ([CLS] and [SEP] included) are cut."""
    if not texts:
        return np.zeros((0, 2, length), np.int64)
    enc = tokenizer(
        texts, padding="max_length", truncation=True, max_length=length, return_tensors="np"
    )
    ids = np.asarray(enc["input_ids"], dtype=np.int64)
    mask = np.asarray(enc["attention_mask"], dtype=np.int64)
    return np.stack([ids, mask], axis=1)


def load_bert(folder: str | Path) -> Any:
    """A BertModel without its pooling layer (the [CLS] vector is read from the last hidden
    state), float32, from a local folder."""
    path = check_folder(folder, "BERT model", ("config.json",), any_of=False)
    check_folder(path, "BERT model", WEIGHT_FILES, any_of=True)
    import torch
    from transformers import BertConfig, BertModel

    with quiet():
        try:
            config = BertConfig.from_pretrained(str(path), local_files_only=True)
            return BertModel.from_pretrained(
                str(path),
                config=config,
                add_pooling_layer=False,
                local_files_only=True,
                dtype=torch.float32,
            )
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ValueError(f"{path}: cannot load a BERT model ({err})") from None
