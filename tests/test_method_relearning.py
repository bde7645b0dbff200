"""Diagnosing & Re-learning: purity, the re-initialisation strength and rule, that only encoders
are re-initialised and only on the released schedule, and resume across a re-initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from igm_core import catalog
from igm_core.methods.base import Stage
from igm_core.methods.relearning import cluster_purity, purity, relearn_strength
from igm_core.tracking import JsonlTracker, read_jsonl_metrics
from igm_core.trainer import train
from tests.method_case import epoch_data, make, stop_and_resume, twin
from tests.specs import spec_for


def test_purity_and_strength_by_hand() -> None:
    # cluster 0 holds labels 0, 0, 1 (majority 0: 2 right), cluster 1 holds 1, 1 (2 right): 4/5
    labels, clusters = np.array([0, 0, 1, 1, 1]), np.array([0, 0, 0, 1, 1])
    assert purity(labels, clusters) == pytest.approx(0.8)
    # gap 0.25, lambda 3: tanh(0.75) = 0.6351490...
    assert relearn_strength(0.25, 3.0) == pytest.approx(0.6351490, abs=1e-7)
    assert relearn_strength(0.0, 3.0) == 0.0


def test_clustering_purity_of_separated_classes() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    separated = np.eye(3)[labels] * 10 + rng.normal(0, 0.1, (60, 3))
    assert cluster_purity(separated, labels, 3, n_init=10) == 1.0
    mixed = rng.normal(0, 1, (60, 3))
    assert cluster_purity(mixed, labels, 3, n_init=10) < 0.8


def test_released_schedule() -> None:
    _, _, method, _, _ = make("relearning")
    p = method.params
    assert (p["move_lambda"], p["reinit_epoch"], p["reinit_num"]) == (3.0, 20, 3)
    assert [e for e in range(100) if method.due(e)] == [20, 40, 60]


def test_reinit_moves_only_the_encoders_toward_their_start() -> None:
    spec, model, method, _, _ = make("relearning", reinit_epoch=1)
    start = twin(model)
    with torch.no_grad():  # training moved every weight
        for p in model.parameters():
            p.add_(0.5)
    trained = twin(model)
    data = catalog.build_dataset("synthetic", spec.dataset.params, 0)
    data = data.select(["strong", "weak"])
    metrics = method.on_epoch_end(Stage(0, ("strong", "weak"), 3), 1, epoch_data(spec, data))
    record = method.history[-1]
    assert record["epoch"] == 1
    for m in ("strong", "weak"):
        gap = abs(record[m]["purity_train"] - record[m]["purity_val"])
        alpha = math.tanh(3.0 * gap)
        assert record[m]["alpha"] == pytest.approx(alpha)
        assert metrics[f"relearn/{m}/alpha"] == pytest.approx(alpha)
        for name, p in model.encoders[m].named_parameters():
            p0 = dict(start.encoders[m].named_parameters())[name]
            p1 = dict(trained.encoders[m].named_parameters())[name]
            torch.testing.assert_close(p, (1 - alpha) * p1 + alpha * p0)
    for m in ("strong", "weak"):  # heads untouched
        for p, q in zip(model.heads[m].parameters(), trained.heads[m].parameters(), strict=True):
            assert torch.equal(p, q)
    assert method.on_epoch_end(Stage(0, ("strong", "weak"), 3), 0, None) == {}  # not due


def test_a_run_reinitialises_on_schedule_and_logs_it(tmp_path) -> None:
    spec = spec_for(
        "relearning", method={"name": "relearning", "params": {"reinit_epoch": 1, "reinit_num": 1}}
    )
    r = train(spec, tracker=JsonlTracker(tmp_path / "m.jsonl")).result
    assert [h["epoch"] for h in r["diagnostics"]["relearning"]] == [1]
    h = read_jsonl_metrics(tmp_path / "m.jsonl")
    assert {"relearn/strong/alpha", "relearn/weak/purity_gap"} <= set(h)
    assert [s for s, _ in h["relearn/strong/alpha"]] == [16]  # the step after epoch 1


@pytest.mark.parametrize("stop_at", [9, 17])  # before the first re-initialisation, just after it
def test_resume_across_a_reinitialisation(stop_at: int, tmp_path) -> None:
    params = {"reinit_epoch": 1, "reinit_num": 2}
    whole, _ = stop_and_resume(
        spec_for("relearning", method={"name": "relearning", "params": params}), stop_at, tmp_path
    )
    assert [h["epoch"] for h in whole["diagnostics"]["relearning"]] == [1, 2]
