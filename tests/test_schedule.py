"""Stage schedules: what a stage starts from (stage_init) and the learning-rate decay."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from igm_core.methods.alternating import Alternating
from igm_core.spec import SpecError, resolve_spec
from igm_core.trainer import Run, train
from tests.specs import spec_for


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def record_run(monkeypatch, spec: dict[str, Any]) -> tuple[list, list]:
    """Train `spec`; the weights and score after every validation, and at every stage start."""
    epochs: list[tuple[float, dict]] = []
    starts: list[tuple[int, dict]] = []
    validate, on_stage_start = Run.validate, Alternating.on_stage_start

    def spy_validate(self, s_idx, epoch, loss, lr):
        validate(self, s_idx, epoch, loss, lr)
        epochs.append((self.state.history[-1]["acc"], weights(self.model)))

    def spy_start(self, stage, fresh=True):
        starts.append((len(epochs), weights(self.model)))
        on_stage_start(self, stage, fresh)

    monkeypatch.setattr(Run, "validate", spy_validate)
    monkeypatch.setattr(Alternating, "on_stage_start", spy_start)
    train(spec)
    return epochs, starts


STAGED = {"optimizer": {"lr": 0.3}, "schedule": {"stage_epochs": [3, 3, 3, 3]}}


@pytest.mark.parametrize("init", ["last", "best"])
def test_a_stage_starts_from_the_last_or_the_best_weights(monkeypatch, init: str) -> None:
    spec = spec_for("igm", **STAGED)
    spec["schedule"] = {**spec["schedule"], "stage_init": init}
    epochs, starts = record_run(monkeypatch, spec)
    differs = 0
    for n_done, start in starts[1:]:
        scores = [score for score, _ in epochs[:n_done]]
        best = epochs[scores.index(max(scores))][1]  # the first epoch with the best score so far
        last = epochs[n_done - 1][1]
        assert same(start, best if init == "best" else last)
        differs += not same(best, last)
    assert differs > 0  # some stage ended below the best so far: the two rules were told apart


def test_stage_init_is_for_staged_methods_and_hash_neutral() -> None:
    with pytest.raises(SpecError) as info:
        resolve_spec(spec_for("joint", schedule={"epochs": 3, "stage_init": "best"}))
    assert "stage_init applies to staged methods" in dict(info.value.errors)["schedule.stage_init"]
    last = spec_for("igm")
    last["schedule"] = {**last["schedule"], "stage_init": "last"}
    assert resolve_spec(last).hash() == resolve_spec(spec_for("igm")).hash()
    timing = {**last, "optimizer": {"lr_step_timing": "after_epoch"}}
    assert resolve_spec(timing).hash() == resolve_spec(spec_for("igm")).hash()
    best = {**last, "schedule": {**last["schedule"], "stage_init": "best"}}
    assert resolve_spec(best).hash() != resolve_spec(last).hash()


def lrs_by_epoch(spec: dict[str, Any]) -> list[list[float]]:
    """The learning rate every step of every epoch trained at, per stage."""
    history = train(spec).result["diagnostics"]["epochs"]
    stages: list[list[float]] = []
    for e in history:
        if e["epoch"] == 0:
            stages.append([])
        stages[-1].append(e["lr"])
    return stages


@pytest.mark.parametrize(("timing", "first_decayed"), [("after_epoch", 3), ("before_epoch", 2)])
def test_step_decay_per_stage(monkeypatch, timing: str, first_decayed: int) -> None:
    used: list[float] = []
    sgd_step = torch.optim.SGD.step

    def spy_step(self, closure=None):
        used.append(self.param_groups[0]["lr"])
        return sgd_step(self, closure)

    monkeypatch.setattr(torch.optim.SGD, "step", spy_step)
    optimizer = {"lr": 0.1, "lr_step": 3, "lr_gamma": 0.5, "lr_step_timing": timing}
    spec = spec_for("alternating", optimizer=optimizer, schedule={"stage_epochs": [7, 4]})
    stages = lrs_by_epoch(spec)
    k = 1 if timing == "before_epoch" else 0
    for stage in stages:  # reset at every stage, then lr * gamma^floor((e + k) / step)
        assert stage == [pytest.approx(0.1 * 0.5 ** ((e + k) // 3)) for e in range(len(stage))]
        assert stage.index(pytest.approx(0.05)) == first_decayed
    # the history's lr is the one the optimizer really stepped with: 8 batches an epoch
    per_epoch = [lr for stage in stages for lr in stage]
    assert used == [lr for lr in per_epoch for _ in range(8)]
