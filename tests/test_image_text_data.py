"""The image-text datasets (sarcasm, twitter2015) on folders written by the tests: the authors'
caption rules, both Twitter-2015 header layouts, every bad-folder case named by its file and row,
paths confined to the data roots, and the cache (equal to decoding, used on every epoch, never
stale)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from igm_core import catalog, cli, paths
from igm_core.data import examples_image_text as ex
from igm_core.data import image_text, image_text_meta, image_text_prepare
from igm_core.data.image_text_meta import english_words, prepare_caption
from igm_core.spec import SpecError, resolve_spec

# ----------------------------------------------------------------------------- caption rules


@pytest.mark.parametrize(
    ("raw", "max_words", "want"),
    [
        # lower case; , . ' ! ? " ( ) * # : ; ~ removed
        ('Oh GREAT, another #Monday!!! "Love" it...', 50, "oh great another monday love it"),
        ("(a)*b#c:d;e~f don't", 50, "abcdef dont"),
        # '-' and '/' become spaces, '<person>' the word person (after lower-casing)
        ("well-known a/b <PERSON> said", 50, "well known a b person said"),
        # two or more whitespace characters become one space; a single tab stays inside a word
        ("a  \t b\tc", 50, "a b\tc"),
        ("  padded  ", 50, "padded"),
        ("trailing newline\n", 50, "trailing newline"),
        # words are what a single space separates; the first max_words are kept
        ("one two three four", 2, "one two"),
        ("one, two", 1, "one"),
        # characters outside the list stay
        ("$5 @home & 100% <3", 50, "$5 @home & 100% <3"),
    ],
)
def test_caption_rules(raw: str, max_words: int, want: str) -> None:
    assert prepare_caption(raw, max_words) == want


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        # maximal runs of ASCII letters between word boundaries, joined by single spaces
        ("RT @user: hello123 world", "RT user world"),
        ("don't stop", "don t stop"),
        ("café2go naïve ok", "ok"),  # a letter run touching a digit or a non-ASCII letter goes
        ("under_score #tag", "tag"),
        ("", ""),
    ],
)
def test_twitter_keeps_only_english_words(raw: str, want: str) -> None:
    assert english_words(raw) == want


def test_twitter_captions_apply_both_rules_in_order() -> None:
    text = "RT @Fan: GREAT game!!! #win café2go"
    assert image_text_meta.caption_of("twitter2015", text, 3) == "rt fan great"
    assert image_text_meta.caption_of("sarcasm", text, 50) == "rt @fan great game win café2go"


# ----------------------------------------------------------------------------- layouts


def _params(root: Path, tmp: Path, **extra) -> dict:
    """The parameters of the example at `root`: the tiny BERT's tokenizer, 32-pixel images."""
    small = {"image_size": 32, "max_tokens": 16, "num_workers": 0}
    return {"root": str(root), "tokenizer": str(_bert(tmp)), **small, **extra}


def _sarcasm(tmp: Path, **extra) -> dict:
    return _params(ex.write_sarcasm(tmp / "sarcasm"), tmp, **extra)


def _twitter(tmp: Path, release: bool = False, **extra) -> dict:
    return _params(ex.write_twitter2015(tmp / "twitter", release_headers=release), tmp, **extra)


def _bert(tmp: Path) -> Path:
    folder = tmp / "bert"
    if not (folder / "config.json").exists():
        ex.write_tiny_bert(folder)
    return folder


def _load(dataset: str, params: dict):
    p = image_text_meta.PARAMS[dataset].model_validate(params)
    return image_text.build(dataset, p)


def test_sarcasm_layout_and_shapes(tmp_path: Path) -> None:
    params = _sarcasm(tmp_path, eval_max_tokens=8)
    meta = catalog.dataset_meta("sarcasm", image_text_meta.SarcasmParams(**params))
    assert meta["modalities"] == ["text", "image"] and meta["n_classes"] == 2
    assert meta["shapes"] == {"text": (2, 16), "image": (3, 32, 32)}
    assert meta["sizes"] == {"train": 12, "val": 4, "test": 4}
    data = _load("sarcasm", params)
    x, y = next(data.splits["train"].batches(5))
    assert x["text"].shape == (5, 2, 16) and x["text"].dtype == torch.int64
    assert x["image"].shape == (5, 3, 32, 32) and x["image"].dtype == torch.float32
    assert y.tolist() == [0] * 5
    xv, _ = next(data.splits["val"].batches(4))
    assert xv["text"].shape == (4, 2, 8)  # the evaluation length
    rows = json.loads((Path(params["root"]) / "annotations/train_data.json").read_text())
    assert rows[0]["image"].startswith("dataset_image/")  # looked up by its file name
    ids, mask = x["text"][0]
    assert int(ids[0]) == 2 and int(ids[int(mask.sum()) - 1]) == 3  # [CLS] ... [SEP]
    assert data.info["classes"] == ["not sarcastic", "sarcastic"]


def test_twitter_layouts_read_the_same_tweets(tmp_path: Path) -> None:
    """Label/ImageID/String and the release's #1 Label/#2 ImageID/#3 String (with the target in
    a second #3 String column, put back where $T$ stands) give the same pairs."""
    plain = image_text_meta.read_annotations("twitter2015", _twitter(tmp_path / "a")["root"])
    params = _twitter(tmp_path / "b", release=True)
    release = image_text_meta.read_annotations("twitter2015", params["root"])
    header = Path(params["root"]) / "annotations/train.tsv"
    assert header.read_text().splitlines()[0].startswith("index\t#1 Label\t#2 ImageID\t#3 String")
    assert "$T$" in header.read_text()
    for split in ("train", "val", "test"):
        a, b = plain.rows[split], release.rows[split]
        assert [(r.image, r.text, r.label) for r in a] == [(r.image, r.text, r.label) for r in b]
    assert {r.label for r in plain.rows["train"]} == {0, 1, 2}
    data = _load("twitter2015", params)
    assert len(data.splits["train"]) == 12 and data.n_classes == 3


# ----------------------------------------------------------------------------- bad folders


def _fails(dataset: str, params: dict, *needles: str) -> str:
    with pytest.raises((OSError, ValueError)) as err:
        _load(dataset, params)
    message = str(err.value)
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in message
    return message


def _edit_json(root: str, split_file: str, index: int, **changes) -> None:
    path = Path(root) / "annotations" / split_file
    rows = json.loads(path.read_text())
    rows[index].update(changes)
    path.write_text(json.dumps(rows))


def test_missing_files_are_named(tmp_path: Path) -> None:
    params = _sarcasm(tmp_path)
    (Path(params["root"]) / "annotations/valid_data.json").unlink()
    _fails("sarcasm", params, "valid_data.json: missing annotation file")
    _fails("sarcasm", {**params, "root": str(tmp_path / "nowhere")}, "no such directory")
    params = _twitter(tmp_path)
    shutil.rmtree(Path(params["root"]) / "twitter2015_images")
    _fails("twitter2015", params, "twitter2015_images: missing image folder")


def test_missing_image_names_file_and_row(tmp_path: Path) -> None:
    params = _sarcasm(tmp_path)
    _edit_json(params["root"], "train_data.json", 2, image="gone.jpg")
    _fails("sarcasm", params, "images/gone.jpg: missing image", "train_data.json row 3")
    data = _load("sarcasm", {**params, "skip_missing": True})
    assert data.info["skipped"] == 1 and len(data.splits["train"]) == 11


def test_row_without_an_image(tmp_path: Path) -> None:
    params = _sarcasm(tmp_path)
    _edit_json(params["root"], "test_data.json", 1, image="")
    _fails("sarcasm", params, "test_data.json: row 2: row without an image")
    params = _twitter(tmp_path)
    tsv = Path(params["root"]) / "annotations/dev.tsv"
    lines = tsv.read_text().splitlines()
    cells = lines[2].split("\t")
    lines[2] = "\t".join([cells[0], "", *cells[2:]])
    tsv.write_text("\n".join(lines) + "\n")
    _fails("twitter2015", params, "dev.tsv: row 3: row without an image")


@pytest.mark.parametrize(
    ("label", "needle"),
    [
        (2, "label 2 is out of range; sarcasm has 2"),
        ("yes", "label 'yes' is not an integer"),
        (-1, "label -1 is out of range"),
    ],
)
def test_labels_out_of_range(tmp_path: Path, label, needle: str) -> None:
    params = _sarcasm(tmp_path)
    _edit_json(params["root"], "valid_data.json", 3, label=label)
    _fails("sarcasm", params, "valid_data.json: row 4:", needle)


def test_twitter_label_and_header_errors(tmp_path: Path) -> None:
    params = _twitter(tmp_path)
    tsv = Path(params["root"]) / "annotations/test.tsv"
    lines = tsv.read_text().splitlines()
    lines[4] = "7" + lines[4][1:]
    for text, words in [
        ("\n".join(lines) + "\n", "test.tsv: row 5: label 7 is out of range; twitter2015 has 3"),
        (
            "Polarity\tImageID\tString\n0\ta.jpg\thi\n",
            "test.tsv: row 1: no 'Label' or '#1 Label' column",
        ),
        ("Label\tImageID\tString\n0\ta.jpg\n", "test.tsv: row 2: 2 columns, the header has 3"),
    ]:
        tsv.write_text(text)
        _fails("twitter2015", params, words)


def test_bad_json_is_named(tmp_path: Path) -> None:
    params = _sarcasm(tmp_path)
    path = Path(params["root"]) / "annotations/train_data.json"
    for text, words in [
        ('[{"image": "a.jpg", "text": "x", "label": 0},', "train_data.json: not valid JSON"),
        ('[{"image": "a.jpg", "label": 0}]', "train_data.json: row 1: missing text"),
    ]:
        path.write_text(text)
        _fails("sarcasm", params, words)


def test_unreadable_image_names_file_and_row(tmp_path: Path) -> None:
    params = _sarcasm(tmp_path)
    bad = Path(params["root"]) / "images" / "train_0004.jpg"
    bad.write_bytes(b"this is not a jpeg")
    _fails("sarcasm", params, "train_0004.jpg: cannot decode image", "train_data.json row 5")


def test_truncated_image_errors_or_loads_as_asked(tmp_path: Path) -> None:
    params = _sarcasm(tmp_path, num_workers=1)
    path = Path(params["root"]) / "images" / "test_0019.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # the header survives, the pixels do not
    data = _load("sarcasm", params)  # headers are fine
    with pytest.raises(ValueError) as err:  # decoded in a DataLoader worker process
        list(data.splits["test"].batches(4))
    message = str(err.value)
    assert "test_0019.jpg: cannot decode image" in message and "test_data.json row 4" in message
    assert "Traceback" not in message and "worker" not in message
    data = _load("sarcasm", {**params, "truncated_images": "load"})
    assert len(list(data.splits["test"].batches(4))) == 1


def test_prepare_names_the_bad_image_through_the_cli(tmp_path: Path, capsys) -> None:
    params = _sarcasm(tmp_path)
    (Path(params["root"]) / "images" / "val_0013.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    code = cli.main(
        [
            "prepare",
            "sarcasm",
            "--root",
            params["root"],
            "--quiet",
            "--param",
            f"tokenizer={params['tokenizer']}",
            "--param",
            "num_workers=1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "val_0013.jpg: cannot decode image" in err
    assert "valid_data.json row 2" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- paths


def test_an_image_name_leading_out_of_the_root_is_refused(tmp_path: Path) -> None:
    params = _sarcasm(tmp_path)
    secret = tmp_path / "secret.jpg"
    ex.write_image(secret, 0, 0)
    _edit_json(params["root"], "train_data.json", 0, image="x.jpg")
    link = Path(params["root"]) / "images" / "x.jpg"
    os.symlink(secret, link)
    _fails("sarcasm", params, "refused, it leads outside the dataset root", "row 1")
    params = _twitter(tmp_path)
    tsv = Path(params["root"]) / "annotations/train.tsv"
    lines = tsv.read_text().splitlines()
    cells = lines[1].split("\t")
    lines[1] = "\t".join([cells[0], "../../secret.jpg", *cells[2:]])
    tsv.write_text("\n".join(lines) + "\n")
    _fails("twitter2015", params, "refused, it leads outside the dataset root", "row 2")


def test_paths_outside_the_data_roots_are_refused(tmp_path: Path) -> None:
    roots = [tmp_path / "data"]
    inside = _sarcasm(roots[0])
    outside = _bert(tmp_path / "elsewhere")
    spec = {
        "name": "p",
        "dataset": {"name": "sarcasm", "params": inside},
        "method": {"name": "igm"},
        "model": {
            "encoders": {
                "text": {"name": "bert", "params": {"pretrained": inside["tokenizer"]}},
                "image": {"name": "resnet50", "params": {}},
            }
        },
    }
    confined = paths.confine_spec(spec, roots)  # a BERT folder is a folder, not a file
    folder = str(Path(inside["tokenizer"]).resolve())
    assert confined["model"]["encoders"]["text"]["params"]["pretrained"] == folder
    for where, value in (
        (("dataset", "params", "root"), str(tmp_path / "elsewhere")),
        (("dataset", "params", "tokenizer"), str(outside)),
        (("model", "encoders", "text", "params", "pretrained"), str(outside)),
        (("model", "encoders", "text", "params", "pretrained"), f"{folder}/config.json"),
        (("model", "encoders", "image", "params", "pretrained"), str(outside / "config.json")),
    ):
        bad = json.loads(json.dumps(spec))
        node = bad
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value
        with pytest.raises(paths.PathRefused) as err:
            paths.confine_spec(bad, roots)
        assert err.value.loc == ".".join(where)


def test_spec_errors_name_the_dataset_params(tmp_path: Path) -> None:
    params = _sarcasm(tmp_path)
    _edit_json(params["root"], "train_data.json", 0, label=9)
    with pytest.raises(SpecError) as err:
        resolve_spec(
            {
                "name": "s",
                "dataset": {"name": "sarcasm", "params": params},
                "method": {"name": "igm"},
            }
        )
    assert err.value.errors[0][0] == "dataset.params" and "row 1" in err.value.errors[0][1]


# ----------------------------------------------------------------------------- the cache


def _prepare(dataset: str, params: dict) -> list:
    rest = {k: v for k, v in params.items() if k != "root"}
    return image_text_prepare.prepare(dataset, params["root"], rest)


def _batches(data, split: str, generator=None) -> list:
    return list(data.splits[split].batches(5, generator=generator))


def test_cache_equals_decoding_and_is_used(tmp_path: Path) -> None:
    params = _twitter(tmp_path, eval_max_tokens=12)
    decoded = _load("twitter2015", params)
    assert decoded.info["cache"]["train"] == {"images": None, "tokens": False}
    reports = _prepare("twitter2015", params)
    assert [r.written for r in reports] == [True] * 3
    assert [r.written for r in _prepare("twitter2015", params)] == [False] * 3  # up to date
    cached = _load("twitter2015", params)
    for split in ("train", "val", "test"):
        assert cached.info["cache"][split]["tokens"] is True
        assert cached.info["cache"][split]["images"].startswith(str(Path(params["root"])))
        gen = (lambda: torch.Generator().manual_seed(3)) if split == "train" else (lambda: None)
        for (xa, ya), (xb, yb) in zip(
            _batches(decoded, split, gen()), _batches(cached, split, gen()), strict=True
        ):
            assert torch.equal(ya, yb) and torch.equal(xa["text"], xb["text"])
            assert torch.equal(xa["image"], xb["image"])  # same squares, same random draws


def test_a_changed_file_or_parameter_never_reads_a_stale_cache(tmp_path: Path) -> None:
    params = _sarcasm(tmp_path)
    _prepare("sarcasm", params)
    assert _load("sarcasm", params).info["cache"]["test"]["images"] is not None
    image = Path(params["root"]) / "images" / "test_0019.jpg"
    ex.write_image(image, 1, 99)
    data = _load("sarcasm", params)
    assert data.info["cache"]["test"]["images"] is None  # that split decodes again
    assert data.info["cache"]["train"]["images"] is not None
    assert _load("sarcasm", {**params, "image_size": 40}).info["cache"]["train"]["images"] is None
    _edit_json(params["root"], "valid_data.json", 0, text="a brand new caption")
    data = _load("sarcasm", params)
    assert data.info["cache"]["val"]["tokens"] is False and data.info["cache"]["train"]["tokens"]
    assert _load("sarcasm", {**params, "max_words": 3}).info["cache"]["train"]["tokens"] is False


def test_the_caches_serve_every_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After `igm prepare`, a two-epoch run decodes no image and loads no tokenizer: both are
    made impossible, and the run still completes. The same traps fail a run without a cache,
    so they are live."""
    from igm_core import hf
    from igm_core.trainer import train

    params = _sarcasm(tmp_path)
    spec = {
        "name": "cached",
        "dataset": {"name": "sarcasm", "params": params},
        "method": {"name": "alternating"},
        "schedule": {"stage_epochs": [2, 2]},
        "batch_size": 6,
        "model": {"encoders": {"image": {"name": "conv", "params": {"channels": [4]}}}},
    }
    _prepare("sarcasm", params)
    decodes: list[int] = []

    def no_decoding(self, index: int):
        decodes.append(index)
        raise AssertionError("an image was decoded although the cache is up to date")

    def no_tokenizer(folder):
        raise AssertionError("the tokenizer was loaded although the tokens are cached")

    monkeypatch.setattr(image_text.ImageTextSource, "decode", no_decoding)
    monkeypatch.setattr(hf, "load_tokenizer", no_tokenizer)
    result = train(spec).result
    assert decodes == [] and len(result["diagnostics"]["epochs"]) == 4
    assert result["run"]["sizes"] == {"train": 12, "val": 4, "test": 4}
    shutil.rmtree(Path(params["root"]) / ".igm_cache")
    with pytest.raises(AssertionError, match="tokenizer was loaded"):
        train(spec)
    monkeypatch.setattr(hf, "load_tokenizer", lambda folder: _real_tokenizer(folder))
    with pytest.raises(AssertionError, match="an image was decoded"):
        train(spec)


def _real_tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def test_images_are_squares_of_the_store_side(tmp_path: Path) -> None:
    params = _sarcasm(tmp_path)
    reports = _prepare("sarcasm", params)
    images = np.load(reports[0].images_path / "images.npy", mmap_mode="r")
    side = image_text_meta.store_size(image_text_meta.SarcasmParams(**params))
    assert images.shape == (12, side, side, 3) and images.dtype == np.uint8
    tokens = np.load(reports[0].tokens_path / "tokens.npy")
    assert tokens.shape == (12, 2, 16)


def test_the_readme_spec_resolves(tmp_path: Path) -> None:
    """The README's image-text spec, on the test's folders instead of /data."""
    import re

    import yaml

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "sarcasm-igm" in b]
    raw = yaml.safe_load(block)
    params = _sarcasm(tmp_path)
    raw["dataset"]["params"].update(root=params["root"], tokenizer=params["tokenizer"])
    raw["model"]["encoders"]["text"]["params"]["pretrained"] = params["tokenizer"]
    assert raw["model"]["encoders"]["image"]["params"].pop("pretrained").endswith(".pth")
    spec = resolve_spec(raw)
    assert spec.dataset.params["image_size"] == 224 and spec.dataset.params["max_tokens"] == 50
    assert spec.model.encoders["image"].params["proj_dim"] == 768
