"""A head of one Linear layer (`model.head_hidden: []`, the MLA release's shared head): it builds,
every method trains with it, and IGM's gradient modification projects that layer from the previous
modality's encoder features (or refuses a model where it could not)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from igm_core import catalog, gm
from igm_core.methods.base import Stage, StepContext, TransitionData
from igm_core.methods.igm import IGM
from igm_core.models import build_model
from igm_core.spec import resolve_spec
from igm_core.trainer import train
from tests.specs import spec_for

SHAPES = {"strong": (12,), "weak": (10,)}


def _encoders(out: tuple[int, int] = (24, 24)) -> dict[str, Any]:
    return {
        m: {"name": "mlp", "params": {"hidden": [32], "out_dim": d}}
        for m, d in zip(("strong", "weak"), out, strict=True)
    }


def _dense(t: torch.Tensor | gm.LowRankProjection) -> torch.Tensor:
    return (t.matrix() if isinstance(t, gm.LowRankProjection) else t).double()


def linear_spec(name: str, params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    spec = spec_for(
        name,
        method={"name": name, "params": params or {}},
        model={"head_hidden": [], "encoders": _encoders()},
        optimizer={"lr": 0.1},
    )
    spec.update(extra)
    return spec


@pytest.mark.parametrize("shared", [False, True])
def test_empty_head_hidden_builds_one_linear_layer(shared: bool) -> None:
    encoders = {m: {"name": e["name"], "params": e["params"]} for m, e in _encoders().items()}
    model = build_model(encoders, SHAPES, [], 4, shared)
    for m in SHAPES:
        head = model.head_of(m)
        assert [type(layer) for layer in head] == [torch.nn.Linear]
        assert (head[0].in_features, head[0].out_features) == (24, 4)
        assert [n for n in model.branch_modules(m) if n.startswith("head.")] == ["head.0"]
    assert resolve_spec(linear_spec("joint")).model.head_hidden == []


CASES = {
    "igm reference": ("igm", {"sam": "reference"}),
    "mla project": ("mla", {"project": True}),
    "mla stage": ("mla", {"alternation": "stage", "fusion": "mean"}),
    **{name: (name, {}) for name in catalog.METHODS.names()},
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_method_trains_with_a_one_linear_head(case: str, tmp_path: Path) -> None:
    name, params = CASES[case]
    res = train(linear_spec(name, params), out_dir=tmp_path)
    assert res.status == "completed"
    state = torch.load(tmp_path / "final_model.pt", weights_only=True)["model"]
    head_weights = sorted(k for k in state if k.startswith("head") and k.endswith("weight"))
    shared = resolve_spec(linear_spec(name, params)).model.shared_head
    expected = ["head.0.weight"] if shared else [f"heads.{m}.0.weight" for m in SHAPES]
    assert head_weights == expected
    # it learned: 4 balanced classes, chance is 0.25
    assert res.result["test"]["acc"] > 0.5, res.result["test"]


def test_igm_projects_the_single_linear_layer_from_the_encoder_features() -> None:
    spec = resolve_spec(linear_spec("igm", {"sam": "none", "tau": 0.4}))
    torch.manual_seed(0)
    model = build_model(
        {m: e.model_dump() for m, e in spec.model.encoders.items()}, SHAPES, [], 4, False
    )
    method = IGM(spec.method.params, model, spec, torch.device("cpu"))
    xs = torch.randn(40, 12, generator=torch.Generator().manual_seed(1))
    batches = [xs[i : i + 8] for i in range(0, 40, 8)]
    data = TransitionData(batches=lambda m: batches, batch_size=8)
    method.on_stage_end(Stage(0, ("strong",), 1), Stage(1, ("weak",), 1), data)
    assert list(method.proj) == ["head.0"]
    with torch.no_grad():  # the head's input is the encoder's output: T from the feature means
        means = torch.stack([model.encoders["strong"](b).double().mean(0) for b in batches])
    want, _ = gm.flat_projection_from_means(means, 0.4)
    t = method.proj["head.0"]
    assert torch.allclose(_dense(t), _dense(want), atol=1e-6)
    layer = model.heads["weak"][0]
    g = torch.randn_like(layer.weight)
    layer.weight.grad = g.clone()
    ctx = StepContext(stage=Stage(1, ("weak",), 1), epoch=0, step=0, log=True, seed=0)
    method.modify("weak", ctx)
    assert torch.allclose(layer.weight.grad, gm.project_weight_grad(g, t), atol=1e-6)
    assert not torch.allclose(layer.weight.grad, g)  # the projection changed it
    assert 0 < float(ctx.stats["gm/weak/kept_ratio"]) < 1


def test_igm_refuses_a_one_linear_head_whose_inputs_differ() -> None:
    spec = linear_spec("igm", model={"head_hidden": [], "encoders": _encoders((24, 16))})
    with pytest.raises(ValueError, match=r"no projected layer of 'strong'.*same out_dim"):
        train(spec)
    spec["method"]["params"] = {"gm_scope": "none"}  # nothing to project: no objection
    assert train(spec).status == "completed"
    spec["model"]["head_hidden"] = [8]  # the second Linear (head.2, after the ReLU) pairs
    spec["method"]["params"] = {}
    res = train(spec)
    spectra = res.result["diagnostics"]["spectra"]
    assert {s["layer"] for s in spectra} == {"head.2"} and all(
        math.isfinite(s["min_gain"]) for s in spectra
    )
