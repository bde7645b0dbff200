"""ReconBoost: the boosting loss by hand, the rounds as stages, what each phase trains, the
learning-rate decay, selection after complete rounds, and resume with the learned scale."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from igm_core.methods.reconboost import boosting_loss
from igm_core.trainer import train
from tests.method_case import ctx_for, make, stop_and_resume, twin
from tests.specs import spec_for

SCHEDULE = {"stage_epochs": [1, 2, 1], "modality_order": ["weak", "strong"]}


def test_boosting_loss_by_hand() -> None:
    # p[y] = 1/2; w1 5, w2 1, q 0.8, 2 classes: (5 ln 2 - 0.8 ln 2) / 2 = 1.4556
    loss = boosting_loss(torch.zeros(1, 2), torch.tensor([1]), torch.tensor([0.8]), 5.0, 1.0)
    assert float(loss) == pytest.approx(4.2 * math.log(2) / 2)
    assert float(loss) == pytest.approx(1.4556, abs=1e-4)


def test_rounds_become_boosting_and_rectification_stages() -> None:
    _, model, method, _, _ = make("reconboost", schedule=SCHEDULE, correct_epochs=3)
    stages = method.stages()
    assert [(s.modalities, s.loaded, s.epochs) for s in stages] == [
        (("weak",), ("weak",), 1),
        (("weak",), ("weak",), 3),
        (("strong",), ("strong", "weak"), 2),
        (("weak", "strong"), ("weak", "strong"), 3),
        (("weak",), ("weak", "strong"), 1),
        (("weak", "strong"), ("weak", "strong"), 3),
    ]
    assert model.shared_head
    assert [method.selectable(s, e) for s in stages[:2] for e in range(s.epochs)] == [
        False,
        False,
        False,
        True,
    ]


def test_a_boosting_step_trains_its_modality_against_the_others() -> None:
    _, model, method, x, y = make("reconboost", schedule=SCHEDULE)
    stage = method.stages()[2]  # boost strong; weak is in the ensemble
    ref = twin(model)
    method.step(x, y, ctx_for(stage))
    for name, p in model.named_parameters():
        trained = name.startswith(("encoders.strong.", "head."))
        assert (p.grad is not None) == trained, name
    assert method.boost_rate.grad is None
    with torch.no_grad():
        q = F.softmax(ref.logits("weak", x["weak"]), 1).gather(1, y[:, None]).squeeze(1)
    boosting_loss(ref.logits("strong", x["strong"]), y, q, 5.0, 1.0).backward()
    for name, p in ref.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(dict(model.named_parameters())[name].grad, p.grad)


def test_rectification_trains_the_ensemble_and_the_scale() -> None:
    _, model, method, x, y = make("reconboost", schedule=SCHEDULE)
    stage = method.stages()[3]
    params = method.stage_parameters(stage)
    assert any(p is method.boost_rate for p in params)
    assert len(params) == len(list(model.parameters())) + 1
    method.step(x, y, ctx_for(stage))
    total = model.logits("weak", x["weak"]) + model.logits("strong", x["strong"])
    (g,) = torch.autograd.grad(F.cross_entropy(method.boost_rate * total, y), method.boost_rate)
    torch.testing.assert_close(method.boost_rate.grad, g)
    assert all(p.grad is not None for p in model.parameters())


def test_learning_rate_decays_every_30_rounds() -> None:
    _, _, method, _, _ = make("reconboost", schedule={"stage_epochs": [1] * 62})
    stages = method.stages()
    assert [method.lr_scale(stages[i]) for i in (0, 59, 60, 119, 120)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01]
    )


def test_a_run_selects_after_a_rectification_and_logs_its_diagnostics() -> None:
    r = train(spec_for("reconboost")).result
    assert r["best"]["stage"] % 2 == 1 and r["best"]["epoch"] == 3  # the 4th rectification epoch
    assert r["diagnostics"]["boost_rate"] != 1.0  # learned
    assert len(r["diagnostics"]["epochs"]) == 3 * (1 + 4)


def test_resume_keeps_the_learned_scale(tmp_path) -> None:
    whole, again = stop_and_resume(spec_for("reconboost"), 13, tmp_path)  # mid-rectification
    assert whole["diagnostics"]["boost_rate"] == again["diagnostics"]["boost_rate"]
