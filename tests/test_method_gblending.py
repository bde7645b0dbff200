"""Gradient-Blending: the weights from G and O by hand, the blended loss, the estimate (from a copy,
on the held-out part, which training never sees), the online schedule, and resume."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from igm_core import catalog
from igm_core.errors import SpecError
from igm_core.methods.base import Stage
from igm_core.methods.gblending import blend_weights
from igm_core.spec import resolve_spec
from igm_core.tracking import JsonlTracker, read_jsonl_metrics
from igm_core.trainer import train
from tests.method_case import ctx_for, epoch_data, make, stop_and_resume, twin, with_grads
from tests.specs import spec_for

BOTH = Stage(0, ("strong", "weak"), 3)


def test_weights_by_hand() -> None:
    # G / O^2: 0.2 / 0.01 = 20, 0.1 / 0.0025 = 40, 0.3 / 0.09 = 3.33; normalised over 63.33
    w = blend_weights({"a": 0.2, "v": 0.1, "fused": 0.3}, {"a": 0.1, "v": 0.05, "fused": 0.3})
    assert w == pytest.approx({"a": 0.3157895, "v": 0.6315789, "fused": 0.0526316}, abs=1e-7)
    # an output whose held-out loss rose gets nothing; none generalising: equal weights
    assert blend_weights({"a": -0.1, "v": 0.2}, {"a": 0.1, "v": 0.1})["a"] == 0.0
    assert blend_weights({"a": -0.1, "v": 0.0}, {"a": 0.1, "v": 0.1}) == {"a": 0.5, "v": 0.5}


def test_the_loss_is_the_weighted_sum_of_the_outputs_losses() -> None:
    weights = {"strong": 0.2, "weak": 0.5, "fused": 0.3}
    _, model, method, x, y = make("gblending", mode="fixed", weights=weights)
    ref = twin(model)
    method.step(x, y, ctx_for(BOTH))
    got = with_grads(model)
    logits = ref(x)
    loss = 0.2 * F.cross_entropy(logits["strong"], y) + 0.5 * F.cross_entropy(logits["weak"], y)
    loss = loss + 0.3 * F.cross_entropy(torch.stack(list(logits.values())).mean(0), y)
    loss.backward()
    for name, p in ref.named_parameters():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-5, atol=1e-7)


def test_fixed_weights_are_normalised_and_checked() -> None:
    _, _, method, _, _ = make(
        "gblending", mode="fixed", weights={"strong": 1, "weak": 1, "fused": 2}
    )
    assert method.weights == {"strong": 0.25, "weak": 0.25, "fused": 0.5}
    base = {"name": "x", "dataset": {"name": "synthetic"}}
    with pytest.raises(SpecError, match="one weight for each of: strong, weak, fused"):
        resolve_spec(
            {
                **base,
                "method": {
                    "name": "gblending",
                    "params": {"mode": "fixed", "weights": {"strong": 1.0}},
                },
            }
        )
    three = {"name": "synthetic", "params": {"modalities": ["a", "fused"], "dims": [3, 3]}}
    with pytest.raises(SpecError, match="names its fused output 'fused'"):
        resolve_spec({"name": "x", "dataset": three, "method": {"name": "gblending"}})
    with pytest.raises(SpecError, match="weights are given with mode 'fixed'"):
        resolve_spec(
            {**base, "method": {"name": "gblending", "params": {"weights": {"strong": 1.0}}}}
        )


def test_the_estimate_matches_a_hand_run_and_leaves_the_model() -> None:
    spec, model, method, _, _ = make("gblending", estimate_epochs=2)
    data = catalog.build_dataset("synthetic", spec.dataset.params, 0)
    hold = epoch_data(spec, data)
    hold.train, hold.holdout = data.splits["train"].subset(list(range(200))), data.splits["val"]
    before = twin(model)
    metrics = method.on_epoch_start(BOTH, 0, hold)
    for (n, p), q in zip(model.named_parameters(), before.parameters(), strict=True):
        assert torch.equal(p, q), n  # the estimate trains copies
    est = method.history[-1]
    assert est["epochs"] == 2 and sum(method.weights.values()) == pytest.approx(1.0)
    # redo the unimodal "weak" estimate by hand: L^T, L^V before and after two epochs
    copy_ = twin(before)
    opt = hold.make_optimizer(
        [*copy_.encoders["weak"].parameters(), *copy_.heads["weak"].parameters()]
    )

    def mean_loss(split) -> float:
        copy_.eval()
        with torch.no_grad():
            out = F.cross_entropy(copy_.logits("weak", split.x["weak"]), split.y)
        copy_.train()
        return float(out)

    lt0, lv0 = mean_loss(hold.train), mean_loss(hold.holdout)
    gen = torch.Generator().manual_seed(hold.seed + 1)  # the second output's seed
    for _ in range(2):
        for xs, y in hold.train.batches(hold.batch_size, modalities=["weak"], generator=gen):
            opt.zero_grad()
            F.cross_entropy(copy_.logits("weak", xs["weak"]), y).backward()
            opt.step()
    lt1, lv1 = mean_loss(hold.train), mean_loss(hold.holdout)
    assert est["G"]["weak"] == pytest.approx(lv0 - lv1, rel=1e-4)
    assert est["O"]["weak"] == pytest.approx((lv1 - lt1) - (lv0 - lt0), rel=1e-4, abs=1e-6)
    assert metrics["gblend/weak/weight"] == method.weights["weak"]


def test_training_never_sees_the_held_out_part(tmp_path) -> None:
    spec = spec_for("gblending", method={"name": "gblending", "params": {"holdout_fraction": 0.2}})
    r = train(spec, tracker=JsonlTracker(tmp_path / "m.jsonl")).result
    assert r["run"]["steps"] == 3 * 6  # 192 of the 240 training samples: 6 batches of 32
    est = r["diagnostics"]["gblend"]["estimates"]
    assert [e["epoch"] for e in est] == [0] and est[0]["epochs"] == 3  # offline: once, the run's
    assert est[0]["sizes"] == {"train": 192, "holdout": 48}
    h = read_jsonl_metrics(tmp_path / "m.jsonl")
    assert {"gblend/fused/weight", "gblend/weak/overfitting", "gblend/strong/loss"} <= set(h)


def test_online_re_estimates_every_super_epoch() -> None:
    params = {"mode": "online", "super_epoch": 2, "holdout_fraction": 0.1}
    spec = spec_for(
        "gblending", method={"name": "gblending", "params": params}, schedule={"epochs": 5}
    )
    est = train(spec).result["diagnostics"]["gblend"]["estimates"]
    assert [(e["epoch"], e["epochs"]) for e in est] == [(0, 2), (2, 2), (4, 2)]


@pytest.mark.parametrize("stop_at", [8, 15])  # the first batch of the second super-epoch, later
def test_resume_across_an_estimate(stop_at: int, tmp_path) -> None:
    params = {"mode": "online", "super_epoch": 1, "holdout_fraction": 0.1}
    whole, _ = stop_and_resume(
        spec_for("gblending", method={"name": "gblending", "params": params}), stop_at, tmp_path
    )
    assert len(whole["diagnostics"]["gblend"]["estimates"]) == 3
