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

    def spy_validate(self, s_idx, epoch, loss, optimizer):
        validate(self, s_idx, epoch, loss, optimizer)
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
    best = {**last, "schedule": {**last["schedule"], "stage_init": "best"}}
    assert resolve_spec(best).hash() != resolve_spec(last).hash()
