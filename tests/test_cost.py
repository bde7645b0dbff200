"""igm_core.cost: the estimates match what igm_core builds, and the combinations that pass every
field's own bound are caught by the caps."""

from __future__ import annotations

import pytest

from igm_core import catalog, cost
from igm_core.models import build_model
from igm_core.spec import resolve_spec
from tests.factories import save_bert
from tests.specs import BIG_DATA, BIG_MODEL, LONG

CAPS = cost.Caps(max_data_bytes=64 * 10**9, max_parameters=500_000_000, max_steps=5_000_000)


def synthetic(**changes) -> dict:
    spec = {"name": "c", "dataset": {"name": "synthetic"}, "method": {"name": "joint"}}
    spec.update(changes)
    return spec


def meta_of(spec) -> dict:
    params = catalog.DATASETS.get(spec.dataset.name).params.model_validate(spec.dataset.params)
    return catalog.dataset_meta(spec.dataset.name, params)


@pytest.mark.parametrize(
    "raw",
    [
        synthetic(),
        synthetic(model={"head_hidden": [64], "shared_head": True}),
        synthetic(model={"encoders": {"strong": {"name": "mlp", "params": {"hidden": [7, 9]}}}}),
        {"name": "d", "dataset": {"name": "digits"}, "method": {"name": "joint"}},
        {
            "name": "d",
            "dataset": {"name": "digits", "params": {"views": 3, "noise": [0.1, 0.6, 0.3]}},
            "method": {"name": "joint"},
            "model": {"encoders": {"top": {"name": "conv", "params": {"channels": [8, 16, 4]}}}},
        },
    ],
)
def test_parameter_count_is_what_the_model_has(raw: dict) -> None:
    spec = resolve_spec(raw)
    meta = meta_of(spec)
    model = build_model(
        {m: spec.model.encoders[m].model_dump() for m in spec.modalities},
        meta["shapes"],
        spec.model.head_hidden,
        meta["n_classes"],
        spec.model.shared_head,
    )
    built = sum(p.numel() for p in model.parameters())
    assert cost.estimate_spec(spec).parameters == built


def test_resnet18_count_matches_the_built_encoder() -> None:
    from igm_core.resnet import ResNet18Encoder

    for shape in [(1, 64, 64), (2, 3, 32, 32)]:
        built = sum(p.numel() for p in ResNet18Encoder(shape).parameters())
        assert cost.encoder_parameters("resnet18", {}, shape) == built


def test_the_issue_examples_exceed_the_caps() -> None:
    big_data = resolve_spec(BIG_DATA)  # about 393 GB of float32
    est = cost.estimate_spec(big_data)
    assert est.data_bytes == 3 * 10**6 * 8 * 4096 * 4  # 393,216,000,000
    ((field, msg),) = [e for e in cost.check(est, CAPS) if e[0] == "dataset.params"]
    assert "393.2 GB" in msg and "64.0 GB" in msg and "IGM_MAX_DATA_BYTES" in msg

    huge = resolve_spec(BIG_MODEL)  # a 1.6e9-parameter MLP
    est = cost.estimate_spec(huge)
    assert 1.6e9 < est.parameters < 1.7e9
    ((field, msg),) = cost.check(est, CAPS)
    assert field == "model" and "500,000,000 (IGM_MAX_PARAMETERS)" in msg

    long = resolve_spec(LONG)  # 1,000 stages x 10,000 epochs
    est = cost.estimate_spec(long)
    assert est.epochs == 10**7 and est.steps == 10**7 * 32  # 2,000 samples / 64 a batch
    ((field, msg),) = cost.check(est, CAPS)
    assert field == "schedule" and "320,000,000 training steps" in msg


def test_ordinary_specs_fit() -> None:
    for raw in [synthetic(), synthetic(schedule={"epochs": 200}, batch_size=16)]:
        assert cost.check(cost.estimate_spec(resolve_spec(raw)), CAPS) == []


# ----------------------------------------------------------------------------- image-text encoders


def _saved_bytes(model, x) -> int:
    """Bytes of the tensors autograd keeps for backward in a training forward (each storage
    once, parameters left out): what the activation estimate stands for."""
    import torch

    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        if t.data_ptr() not in params and t.numel() > 0:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(seen.values())


@pytest.fixture(scope="module")
def small_bert(tmp_path_factory: pytest.TempPathFactory):
    return save_bert(tmp_path_factory.mktemp("bert") / "b", 120, layers=2, heads=4, positions=64)


def test_image_text_encoder_parameters_match_the_built_ones(small_bert) -> None:
    from igm_core.resnet50 import ResNet50Encoder
    from igm_core.text_encoders import BertEncoder, TokenBagEncoder

    cases = [
        ("resnet50", {}, (3, 32, 32), ResNet50Encoder((3, 32, 32))),
        ("resnet50", {"fc": False}, (1, 32, 32), ResNet50Encoder((1, 32, 32), fc=False)),
        ("resnet50", {"proj_dim": 24}, (3, 32, 32), ResNet50Encoder((3, 32, 32), proj_dim=24)),
        ("bert", {"pretrained": str(small_bert)}, (2, 16), BertEncoder((2, 16), str(small_bert))),
        (
            "token_bag",
            {"buckets": 70, "dim": 8, "out_dim": 5},
            (2, 9),
            TokenBagEncoder((2, 9), 70, 8, 5),
        ),
    ]
    for name, params, shape, built in cases:
        count = sum(p.numel() for p in built.parameters())
        assert cost.encoder_parameters(name, params, shape) == count, (name, params)
        assert cost.encoder_out_dim(name, params) == built.out_dim, (name, params)


@pytest.mark.parametrize(
    ("name", "params", "shape"),
    [
        ("resnet50", {}, (3, 64, 64)),
        ("resnet50", {"fc": False, "proj_dim": 16}, (3, 48, 80)),
        ("resnet18", {}, (1, 64, 48)),
        ("bert", None, (2, 40)),
        ("token_bag", {"buckets": 100, "dim": 32, "out_dim": 16}, (2, 20)),
        ("conv", {"channels": [8, 16]}, (3, 32, 32)),
        ("mlp", {"hidden": [64], "out_dim": 32}, (20,)),
    ],
)
def test_activation_estimate_is_what_autograd_keeps(name, params, shape, small_bert) -> None:
    """Within 15% of the bytes autograd keeps for the encoder's backward (batch 3)."""
    import torch

    from igm_core.models import build_model

    params = {"pretrained": str(small_bert)} if params is None else params
    full = catalog.ENCODERS.get(name).params.model_validate(params).model_dump()
    model = build_model({"m": {"name": name, "params": full}}, {"m": shape}, [4], 2, False)
    torch.manual_seed(0)
    if len(shape) == 2:  # token inputs, every position a token (the estimate's bound)
        ids = torch.randint(5, 100, (3, shape[1]))
        x = torch.stack([ids, torch.ones_like(ids)], 1)
    else:
        x = torch.randn(3, *shape)
    kept = _saved_bytes(model.encoders["m"], x) / 3
    estimate = cost.activation_values(name, full, shape) * cost.BYTES_PER_VALUE
    assert 0.85 * kept <= estimate <= 1.15 * kept, (name, estimate, kept)
