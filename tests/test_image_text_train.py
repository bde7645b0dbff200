"""Image-text training through the real trainer, on folders written by the tests with a tiny BERT
(random weights, the test's vocabulary, save_pretrained): every method on both datasets, the
paper's ResNet-50 + BERT model, gradient-modification scopes, fusions, selection by macro-F1,
bit-exact resume, and the cost estimate of the pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from igm_core import catalog, cost
from igm_core.data import examples_image_text as ex
from igm_core.data import image_text_prepare
from igm_core.spec import resolve_spec
from igm_core.tracking import JsonlTracker, read_jsonl_metrics
from igm_core.trainer import train
from tests.factories import save_bert
from tests.specs import image_text_spec

DATASETS = ("sarcasm", "twitter2015")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Both datasets, prepared (images and tokens cached), with one tiny BERT."""
    base = tmp_path_factory.mktemp("image-text")
    bert = ex.write_tiny_bert(base / "bert")
    out = {}
    for name, writer in (("sarcasm", ex.write_sarcasm), ("twitter2015", ex.write_twitter2015)):
        root = writer(base / name)
        params = {"tokenizer": str(bert), "image_size": 32, "max_tokens": 16, "num_workers": 0}
        image_text_prepare.prepare(name, str(root), params)
        out[name] = {"root": str(root), **params}
    return out


def spec_for(dataset: str, folders: dict, method: str, **method_params) -> dict:
    """A few steps of `method`: tiny BERT for text, a small conv net for images."""
    return image_text_spec(
        f"it-{dataset}-{method}",
        dataset,
        folders[dataset],
        method,
        method_params,
        schedule=([1, 1], 1),
        batch_size=6,
        channels=[4, 8],
        head_hidden=[16, 8],
        selection="macro_f1",
    )


CASES = [(m, {}) for m in catalog.METHODS.names()] + [
    ("igm", {"sam": "reference", "mixup_alpha": 0.9, "rho_encoder": 1e-15}),
    ("igm", {"sam": "none", "gm_scope": "head+2"}),
]


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize(("method", "params"), CASES, ids=[f"{m}-{p}" for m, p in CASES])
def test_every_method_trains_on_image_text(
    dataset: str, method: str, params: dict, folders: dict, tmp_path: Path
) -> None:
    tracker = JsonlTracker(tmp_path / "m.jsonl")
    r = train(spec_for(dataset, folders, method, **params), tracker=tracker).result
    used = resolve_spec(r["spec"]).used_modalities
    assert list(r["test"]["modality_acc"]) == used and set(used) <= {"text", "image"}
    assert r["best"]["metric"] == "macro_f1" and 0.0 <= r["test"]["macro_f1"] <= 1.0
    history = read_jsonl_metrics(tmp_path / "m.jsonl")
    assert any(k.startswith("grad/text/") for k in history) or used == ["image"]
    if method == "igm":  # the text's projection was built and applied to the image's head
        assert "gm/text/kept_ratio" in history or "gm/image/kept_ratio" in history


def test_the_papers_model_trains_with_the_authors_loss(folders: dict, tmp_path: Path) -> None:
    """ResNet-50 (fc kept, a Linear to BERT's width) and BERT, the authors' head, IGM with their
    loss: mixup on images only, GM pairing the heads' layers, fused by every rule."""
    spec = spec_for("twitter2015", folders, "igm", sam="reference", fusion="geometric")
    spec["model"]["encoders"]["image"] = {"name": "resnet50", "params": {"proj_dim": 32}}
    spec["model"]["head_hidden"] = [256, 64]
    spec["schedule"] = {"stage_epochs": [1, 1, 1], "modality_order": ["text", "image"]}
    tracker = JsonlTracker(tmp_path / "m.jsonl")
    r = train(spec, out_dir=tmp_path / "run", tracker=tracker).result
    assert set(r["fusions"]) >= {"mean", "geometric", "calibrated", "entropy"}
    layers = {s["layer"] for s in r["diagnostics"]["spectra"]}
    assert layers == {"head.0", "head.2", "head.3"}  # 32->256, 256->64, 64->3 in both heads
    history = read_jsonl_metrics(tmp_path / "m.jsonl")
    assert "train/image/loss_mixup" in history and "train/text/loss_mixup" in history
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["test"]["modality_acc"].keys() == {"text", "image"}


@pytest.mark.parametrize("scope", ["all", "head+2", 0.3])
def test_gm_scopes_pair_only_layers_both_branches_have(scope, folders: dict) -> None:
    """Layers pair by name and input width: between BERT and a conv net only the heads do,
    whatever the scope (the authors' code projects the heads only)."""
    spec = spec_for("sarcasm", folders, "igm", sam="none", gm_scope=scope)
    spec["schedule"] = {"stage_epochs": [1, 1, 1], "modality_order": ["text", "image"]}
    r = train(spec).result
    layers = {(s["modality"], s["layer"]) for s in r["diagnostics"]["spectra"]}
    assert layers == {(m, f"head.{i}") for m in ("text", "image") for i in (0, 2, 3)}


def test_a_stopped_run_resumes_bit_exactly(folders: dict, tmp_path: Path) -> None:
    """Stopped mid-epoch and across the stage transition, then resumed: the same weights and
    metrics as an uninterrupted run (BERT's dropout, random crops and augmentation included)."""
    spec = spec_for("sarcasm", folders, "igm", sam="reference")
    spec["schedule"] = {"stage_epochs": [2, 1]}
    whole = train(spec, out_dir=tmp_path / "whole").result
    out = tmp_path / "stopped"
    for stop_at in (1, 4):
        calls = {"n": 0}

        def should_stop(at: int = stop_at, calls: dict = calls) -> bool:
            calls["n"] += 1
            return calls["n"] > at

        assert train(spec, out_dir=out, should_stop=should_stop).status == "stopped"
    resumed = train(spec, out_dir=out).result
    assert resumed["test"] == whole["test"] and resumed["best"] == whole["best"]

    def validation(result: dict) -> list[dict]:  # an epoch's mean train loss counts the
        # batches of its last attempt only, so it is left out
        return [
            {k: v for k, v in e.items() if k != "train_loss"}
            for e in result["diagnostics"]["epochs"]
        ]

    assert validation(resumed) == validation(whole)
    a = torch.load(tmp_path / "whole" / "final_model.pt", weights_only=True)["model"]
    b = torch.load(out / "final_model.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cost_of_the_papers_model(folders: dict, bert_base_like: Path) -> None:
    """BERT's parameters from its config.json, ResNet-50's from its layers: equal to the built
    model; activations at the spec's batch and token length."""
    from igm_core.models import build_model

    spec = resolve_spec(
        {
            "name": "cost",
            "dataset": {"name": "sarcasm", "params": folders["sarcasm"]},
            "method": {"name": "mla"},
            "batch_size": 12,
            "model": {
                "encoders": {
                    "text": {"name": "bert", "params": {"pretrained": str(bert_base_like)}},
                    "image": {"name": "resnet50", "params": {"proj_dim": 48}},
                },
                "head_hidden": [256, 64],
            },
        }
    )
    est = cost.estimate_spec(spec)
    meta = {"text": (2, 16), "image": (3, 32, 32)}
    model = build_model(
        {m: e.model_dump() for m, e in spec.model.encoders.items()}, meta, [256, 64], 2, True
    )
    assert est.parameters == sum(p.numel() for p in model.parameters())
    small = cost.estimate_spec(resolve_spec({**spec.to_dict(), "batch_size": 6}))
    assert est.activation_bytes == 2 * small.activation_bytes > 0


@pytest.fixture(scope="module")
def bert_base_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BERT folder whose config is wider than the tiny one (48 wide, 3 layers), vocabulary
    the test's: to count parameters on a second shape."""
    folder = ex.write_tiny_bert(tmp_path_factory.mktemp("bert48") / "bert")
    return save_bert(folder, len(ex.vocabulary()), layers=3, heads=3, positions=40)


def test_export_features_then_train_heads(folders: dict, tmp_path: Path, capsys) -> None:
    """`igm export-features` runs the frozen encoders once per split into the features layout;
    `igm train` then trains heads on the vectors."""
    import numpy as np

    from igm_core import cli
    from igm_core.resnet50 import ResNet50Encoder

    params = folders["twitter2015"]
    torch.manual_seed(3)
    weights = tmp_path / "resnet50.pth"
    torch.save(ResNet50Encoder((3, 32, 32)).state_dict(), weights)
    out = tmp_path / "features"
    args = [
        "export-features",
        "twitter2015",
        "--out",
        str(out),
        "--resnet50",
        str(weights),
        "--bert",
        params["tokenizer"],
        "--quiet",
        "--batch-size",
        "5",
    ]
    for key in ("root", "tokenizer", "image_size", "max_tokens", "num_workers"):
        args += ["--param", f"{key}={params[key]}"]
    assert cli.main(args) == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out
    train_npz = np.load(out / "train.npz")
    assert train_npz["text"].shape == (12, 32) and train_npz["image"].shape == (12, 1000)
    assert train_npz["label"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    record = json.loads((out / "features.json").read_text())
    assert record["encoders"]["image"]["pretrained"] == str(weights)
    assert record["sizes"] == {"train": 12, "val": 6, "test": 6}
    again = tmp_path / "again"
    assert cli.main([*args[:2], "--out", str(again), *args[4:]]) == 0
    assert np.array_equal(np.load(again / "test.npz")["image"], np.load(out / "test.npz")["image"])
    spec = tmp_path / "heads.json"
    spec.write_text(
        json.dumps(
            {
                "name": "heads",
                "dataset": {"name": "features", "params": {"root": str(out)}},
                "method": {"name": "igm", "params": {"sam": "reference"}},
                "schedule": {"stage_epochs": [2, 2]},
                "batch_size": 4,
            }
        )
    )
    code = cli.main(["train", str(spec), "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert set(result["test"]["modality_acc"]) == {"text", "image"}
