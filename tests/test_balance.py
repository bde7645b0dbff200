"""What the baselines rest on: the held-out part of a training split, epoch hooks called exactly
once across a stop and resume, and BalanceBenchmark's measures in result.json (Shapley values by
hand, FLOPs of a step against the count by hand)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from igm_core import balance
from igm_core.data.base import DatasetSplit, Split, hold_out
from igm_core.methods.base import Stage
from igm_core.methods.pmr import PMR
from igm_core.trainer import train
from tests.method_case import make
from tests.specs import spec_for


def test_shapley_by_hand() -> None:
    values = {(): 0.2, ("a",): 0.6, ("v",): 0.4, ("a", "v"): 0.8}
    # phi_a = ((0.6 - 0.2) + (0.8 - 0.4)) / 2 = 0.4; phi_v = ((0.4 - 0.2) + (0.8 - 0.6)) / 2 = 0.2
    phi = balance.shapley(values, ["a", "v"])
    assert phi == pytest.approx({"a": 0.4, "v": 0.2})
    three = {c: float(len(c)) for r in range(4) for c in itertools.combinations("abc", r)}
    assert balance.shapley(three, list("abc")) == pytest.approx({"a": 1.0, "b": 1.0, "c": 1.0})


def test_coalitions_zero_the_inputs_outside_them() -> None:
    _, _, method, _, _ = make("joint")
    y = torch.tensor([0, 1])
    logits = {
        "a": torch.tensor([[5.0, 0.0], [5.0, 0.0]]),
        "v": torch.tensor([[0.0, 1.0], [0.0, 9.0]]),
    }
    zero = {"a": torch.tensor([[0.0, 0.0]]), "v": torch.tensor([[0.0, 0.0]])}
    acc = balance.coalition_accuracies(method, logits, zero, y)
    # a alone predicts class 0 twice (1/2); v alone class 1 (1/2); together: 0 then 1 (1)
    assert acc == {(): 0.5, ("a",): 0.5, ("v",): 0.5, ("a", "v"): 1.0}


def test_step_flops_match_the_count_by_hand() -> None:
    # joint on MLP encoders 6->8 and 5->8 (no hidden layer) and heads 8->4->4, a batch of 16:
    # forward 2 B (in out) per layer; backward the same for the weight gradient and, except the
    # first layer (its input needs none), again for the input gradient
    _, model, method, x, y = make("joint")
    shapes = {
        m: [
            tuple(p.shape)
            for n, p in model.named_parameters()
            if n.startswith(f"encoders.{m}.") and p.dim() == 2
        ]
        + [tuple(p.shape) for n, p in model.heads[m].named_parameters() if p.dim() == 2]
        for m in ("strong", "weak")
    }
    b = 16
    expected = 0
    for layers in shapes.values():
        for i, (out, inp) in enumerate(layers):
            expected += 2 * b * inp * out * (2 if i == 0 else 3)
    stage = Stage(0, ("strong", "weak"), 1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    assert balance.step_flops(method, stage, (x, y), 1) == expected
    assert all(p.grad is None for p in model.parameters())  # the copy trained, not the model
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_result_json_holds_the_measures() -> None:
    r = train(spec_for("joint")).result
    imb, cost = r["balance"]["imbalance"], r["balance"]["cost"]
    acc = imb["coalition_acc"]
    assert sum(imb["shapley_acc"].values()) == pytest.approx(acc["strong+weak"] - acc["none"])
    assert acc["strong+weak"] == r["test"]["acc"]
    assert cost["train_flops"] == cost["step_flops"]["strong+weak"] * r["run"]["steps"]
    uni = train(spec_for("unimodal")).result["balance"]
    assert uni["imbalance"] is None and uni["cost"]["train_flops"] > 0


def test_hold_out_is_stratified_disjoint_and_fixed_by_the_seed() -> None:
    y = torch.arange(100) % 4
    split = Split({"a": torch.arange(100.0)[:, None]}, y)
    rest, held = hold_out(split, 0.2, seed=7)
    assert len(held) == 20 and len(rest) == 80
    assert np.bincount(held.y.numpy()).tolist() == [5, 5, 5, 5]
    ids = set(rest.x["a"][:, 0].tolist()) | set(held.x["a"][:, 0].tolist())
    assert ids == set(range(100))
    again = hold_out(split, 0.2, seed=7)[1]
    assert torch.equal(again.x["a"], held.x["a"])
    assert not torch.equal(hold_out(split, 0.2, seed=8)[1].x["a"], held.x["a"])


class _Source:
    def __init__(self, n: int) -> None:
        self.modalities = ["a"]
        self.labels = np.arange(n) % 2

    def load(self, index: int, modalities: list[str], rng) -> dict[str, torch.Tensor]:
        return {"a": torch.tensor([float(index)])}


def test_a_dataset_split_holds_out_by_index() -> None:
    split = DatasetSplit(_Source(20))
    rest, held = hold_out(split, 0.25, seed=0)
    seen = [int(x) for xs, _ in rest.batches(4) for x in xs["a"][:, 0]]
    gone = [int(x) for xs, _ in held.batches(4) for x in xs["a"][:, 0]]
    assert len(gone) == 5 and sorted(seen + gone) == list(range(20))
    assert held.y.tolist() == [i % 2 for i in gone]
    shuffled = [
        int(x)
        for xs, _ in rest.batches(4, generator=torch.Generator().manual_seed(0))
        for x in xs["a"][:, 0]
    ]
    assert sorted(shuffled) == sorted(seen)


@pytest.mark.parametrize("stop_at", [1, 9, 10])  # before any step, at an epoch's first batch, after
def test_epoch_hooks_run_exactly_once_across_a_stop(stop_at: int, tmp_path, monkeypatch) -> None:
    calls: list[tuple[str, int]] = []
    start, end = PMR.on_epoch_start, PMR.on_epoch_end

    def on_start(self, stage, epoch, data):
        calls.append(("start", epoch))
        return start(self, stage, epoch, data)

    def on_end(self, stage, epoch, data):
        calls.append(("end", epoch))
        return end(self, stage, epoch, data)

    monkeypatch.setattr(PMR, "on_epoch_start", on_start)
    monkeypatch.setattr(PMR, "on_epoch_end", on_end)
    spec = spec_for("pmr")
    counter = {"n": 0}

    def stop() -> bool:
        counter["n"] += 1
        return counter["n"] == stop_at

    assert train(spec, out_dir=tmp_path, should_stop=stop).status == "stopped"
    assert train(spec, out_dir=tmp_path).status == "completed"
    assert sorted(calls) == sorted([(k, e) for e in range(3) for k in ("start", "end")])
