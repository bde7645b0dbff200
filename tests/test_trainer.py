"""The trainer: every registered name runs, determinism, resume, model selection, diagnostics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from igm_core import catalog, events
from igm_core.evaluation import evaluate
from igm_core.models import build_model
from igm_core.spec import resolve_spec
from igm_core.tracking import JsonlTracker, read_jsonl_metrics
from igm_core.trainer import CHECKPOINT, train
from tests.specs import spec_for


@pytest.mark.parametrize("method", catalog.METHODS.names())
def test_every_method_trains(method: str, tmp_path) -> None:
    seen = []
    tracker = JsonlTracker(tmp_path / "m.jsonl")
    res = train(spec_for(method), out_dir=tmp_path, tracker=tracker, on_event=seen.append)
    r = res.result
    assert res.status == "completed" and (tmp_path / "result.json").exists()
    assert set(r) >= {"spec", "val", "test", "best", "diagnostics"}
    assert set(r["test"]) == {"acc", "macro_f1", "map", "loss", "modality_acc"}
    expected = resolve_spec(r["spec"]).used_modalities
    assert list(r["test"]["modality_acc"]) == expected
    assert 0.0 <= r["test"]["acc"] <= 1.0
    assert r["spec"]["method"]["name"] == method
    assert isinstance(seen[-1], events.Finished)
    assert [e.fraction for e in seen if isinstance(e, events.Progress)][-1] == 1.0
    history = read_jsonl_metrics(tmp_path / "m.jsonl")
    assert "val/fused/acc" in history and "test/fused/acc" in history
    assert any(k.startswith("grad/") and k.endswith("/norm") for k in history)


@pytest.mark.parametrize("dataset", catalog.DATASETS.names())
def test_every_dataset_trains(dataset: str, tmp_path) -> None:
    params = catalog.DATASETS.get(dataset).extra_loaded("example")(tmp_path / "data")
    spec = {
        "name": "d",
        "dataset": {"name": dataset, "params": params},
        "method": {"name": "igm"},
        "schedule": {"stage_epochs": [1, 1]},
        "batch_size": 64,
    }
    r = train(spec).result
    assert r["test"]["acc"] >= 0 and len(r["test"]["modality_acc"]) >= 2


TOKEN_ENCODERS = [e.name for e in catalog.ENCODERS if e.extra.get("kind") == "tokens"]


# ResNet-50 does about 40 MFLOPs per sample even on 4 x 8 digits (its weights dominate): over a
# minute on a loaded 2-core machine; the image-text tests train it on a dozen images instead
SLOW_ENCODERS = {"resnet18", "resnet50"}  # whole ResNets on a CPU: the slow lane


@pytest.mark.parametrize(
    "encoder",
    [
        pytest.param(n, marks=pytest.mark.slow) if n in SLOW_ENCODERS else n
        for n in catalog.ENCODERS.names()
        if n not in TOKEN_ENCODERS
    ],
)
def test_every_encoder_builds_and_projects(encoder: str) -> None:
    # the head and the last encoder layer: every layer of ResNet-18 (eigh up to d = 4608) would
    # cost seconds per transition
    spec = {
        "name": "e",
        "dataset": {"name": "digits"},
        "method": {"name": "igm", "params": {"gm_scope": "head+1", "sam": "none"}},
        "schedule": {"stage_epochs": [1, 1, 1]},
        "model": {"encoders": {m: {"name": encoder} for m in ("top", "bottom")}},
        "log_every": 1,
        "batch_size": 256,  # a few steps per stage: ResNet-50's 25M weights step slowly
    }
    r = train(spec).result
    transitions = r["diagnostics"]["transitions"]
    assert len(transitions) == 2  # after stages 0 and 1; none after the last stage
    layer_keys = [k for k in transitions[0] if k.endswith(".min_gain")]
    assert any("/encoder." in k for k in layer_keys)  # an encoder layer was projected


@pytest.mark.parametrize("encoder", TOKEN_ENCODERS)
def test_every_token_encoder_trains_on_captions(encoder: str, tmp_path) -> None:
    """Text encoders on the sarcasm example's token inputs; a required `pretrained` is the
    example's tiny BERT folder."""
    params = catalog.DATASETS.get("sarcasm").extra_loaded("example")(tmp_path / "data")
    fields = catalog.ENCODERS.get(encoder).params.model_fields
    required = {name for name, field in fields.items() if field.is_required()}
    assert required <= {"pretrained"}
    enc = {"pretrained": params["tokenizer"]} if required else {}
    spec = {
        "name": "t",
        "dataset": {"name": "sarcasm", "params": params},
        "method": {"name": "igm", "params": {"sam": "none"}},
        "schedule": {"stage_epochs": [1, 1]},
        "model": {"encoders": {"text": {"name": encoder, "params": enc}}},
        "log_every": 1,
    }
    r = train(spec).result
    assert r["spec"]["model"]["encoders"]["text"]["name"] == encoder
    # head.0 pairs only where both encoders give the same width (conv: 128)
    assert {"head.2", "head.3"} <= {s["layer"] for s in r["diagnostics"]["spectra"]}


def test_deterministic_for_a_seed(tmp_path) -> None:
    a = train(spec_for("igm")).result
    b = train(spec_for("igm")).result
    assert a["test"] == b["test"] and a["diagnostics"]["epochs"] == b["diagnostics"]["epochs"]
    c = train(spec_for("igm", seed=5)).result
    assert c["diagnostics"]["epochs"] != a["diagnostics"]["epochs"]


@pytest.mark.parametrize("method,stop_at", [("igm", 9), ("igm", 16), ("ogm_ge", 5), ("mla", 8)])
def test_stopped_run_resumes_to_the_same_result(method: str, stop_at: int, tmp_path) -> None:
    spec = spec_for(method)
    whole = train(spec, out_dir=tmp_path / "whole")
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] == stop_at

    seen = []
    first = train(
        spec,
        out_dir=tmp_path / "part",
        should_stop=should_stop,
        tracker=JsonlTracker(tmp_path / "part.jsonl"),
    )
    assert first.status == "stopped" and (tmp_path / "part" / CHECKPOINT).exists()
    assert not (tmp_path / "part" / "result.json").exists()
    finished = read_jsonl_metrics(tmp_path / "part.jsonl")
    assert finished  # metrics were logged before the stop
    second = train(spec, out_dir=tmp_path / "part", on_event=seen.append)
    assert isinstance(seen[0], events.Resumed) and seen[0].step == stop_at - 1
    assert second.status == "completed"
    assert second.result["test"] == whole.result["test"]
    assert second.result["best"] == whole.result["best"]
    a = torch.load(tmp_path / "whole" / "final_model.pt")["model"]
    b = torch.load(tmp_path / "part" / "final_model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_of_another_spec_is_refused(tmp_path) -> None:
    train(spec_for("joint"), out_dir=tmp_path, should_stop=lambda: True)
    with pytest.raises(RuntimeError, match="belongs to a different spec"):
        train(spec_for("joint", seed=3), out_dir=tmp_path)
    assert train(spec_for("joint", seed=3), out_dir=tmp_path, resume=False).status == "completed"


def test_model_selection_uses_validation_and_tests_once(tmp_path) -> None:
    spec = spec_for("alternating", schedule={"stage_epochs": [2, 2, 2]})
    r = train(spec, out_dir=tmp_path).result
    history = r["diagnostics"]["epochs"]
    val_accs = [h["acc"] for h in history]
    best = int(np.argmax(val_accs))  # first maximum
    assert (r["best"]["stage"], r["best"]["epoch"]) == (
        history[best]["stage"],
        history[best]["epoch"],
    )
    assert r["val"]["acc"] == val_accs[best]
    # the reported test metrics are those of the saved best checkpoint
    saved = torch.load(tmp_path / "best_model.pt")
    s = resolve_spec(spec)
    data = catalog.build_dataset("synthetic", s.dataset.params, s.seed)
    model = build_model(
        {m: e.model_dump() for m, e in s.model.encoders.items()},
        data.shapes(),
        s.model.head_hidden,
        data.n_classes,
        False,
    )
    model.load_state_dict(saved["model"])
    method = catalog.METHODS.get("alternating").load()(
        s.method.params, model, s, torch.device("cpu")
    )
    test = evaluate(
        model,
        method,
        data.splits["test"],
        data.n_classes,
        torch.device("cpu"),
        __import__("contextlib").nullcontext,
    )
    assert test["acc"] == r["test"]["acc"]


@pytest.mark.parametrize("method", ["igm", "mla"])
def test_projection_really_applies(method: str, tmp_path) -> None:
    tracker = JsonlTracker(tmp_path / "m.jsonl")
    params = {"tau": 2.0} if method == "igm" else {"alternation": "stage"}  # MLA's stage variant
    spec = spec_for(method, method={"name": method, "params": params})
    r = train(spec, tracker=tracker).result
    h = read_jsonl_metrics(tmp_path / "m.jsonl")
    kept = [v for k, pts in h.items() if k.endswith("/kept_ratio") for _, v in pts]
    assert kept and max(kept) < 0.999  # the projected gradient is smaller than the raw one
    first_projected = min(s for k, pts in h.items() if k.endswith("/kept_ratio") for s, _ in pts)
    assert first_projected > 8  # nothing is projected during the first stage (8 steps)
    assert len(r["diagnostics"]["plasticity"]) == 2  # one cosine per modality switch
    assert any(k.endswith("/plasticity_cos") for k in h)


def test_igm_spectra_and_gains(tmp_path) -> None:
    r = train(spec_for("igm", method={"name": "igm", "params": {"tau": 0.4}})).result
    spectra = r["diagnostics"]["spectra"]
    assert {s["layer"] for s in spectra} == {"head.0", "head.2", "head.3"}
    for s in spectra:
        assert np.exp(-0.4) - 1e-6 <= s["min_gain"] <= 1.0
        assert s["eff_rank"] >= 1.0


def test_a_resolved_spec_is_not_resolved_again(monkeypatch, tmp_path) -> None:
    """The API resolves once and stores the mapping; rebuilding it reads no data header, and
    the trainer uses a ResolvedSpec as it is (a plain mapping is resolved at the entry)."""
    from igm_core.spec import ResolvedSpec

    entry = catalog.DATASETS.get("features")
    calls = []
    meta = entry.extra["meta"]
    monkeypatch.setitem(entry.extra, "meta", lambda p: calls.append(p) or meta(p))
    params = entry.extra_loaded("example")(tmp_path / "data")
    raw = {**spec_for("igm"), "dataset": {"name": "features", "params": params}}
    raw.pop("model")
    stored = resolve_spec(raw).to_dict()
    assert len(calls) == 1
    rebuilt = ResolvedSpec.model_validate(stored)
    assert rebuilt.hash() == resolve_spec(raw).hash() and len(calls) == 2
    result = train(rebuilt).result
    assert len(calls) == 2 and result["spec_hash"] == rebuilt.hash()
    train(raw)
    assert len(calls) == 3
