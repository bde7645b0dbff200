"""AGM: the Shapley responses (the released two-modality formula), the coefficients by hand, the
gradient each response carries, the running scores, and resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from igm_core.methods.agm import agm_coefficients, agm_scores, scale_grad, shapley_responses
from igm_core.methods.base import Stage
from tests.method_case import ctx_for, make, stop_and_resume, twin, with_grads
from tests.specs import spec_for

BOTH = Stage(0, ("strong", "weak"), 3)


def test_two_modality_responses_are_the_released_formula() -> None:
    full = {"a": torch.tensor([2.0]), "v": torch.tensor([4.0])}
    zero = {"a": torch.tensor([1.0]), "v": torch.tensor([0.0])}
    # f(a,v) = 3, f(0,v) = 2.5, f(a,0) = 1: phi_a = (3 - 2.5 + 1) / 2, phi_v = (3 - 1 + 2.5) / 2
    phi = shapley_responses(full, zero)
    assert float(phi["a"]) == pytest.approx(0.75)
    assert float(phi["v"]) == pytest.approx(2.25)


def test_responses_sum_to_the_fused_output_for_three_modalities() -> None:
    g = torch.Generator().manual_seed(0)
    full = {m: torch.randn(5, 3, generator=g) for m in "abc"}
    zero = {m: torch.randn(1, 3, generator=g).expand(5, 3) for m in "abc"}
    phi = shapley_responses(full, zero)
    torch.testing.assert_close(sum(phi.values()), torch.stack(list(full.values())).mean(0))
    # additive fusion: phi_a - phi_b only depends on a's and b's own inputs
    expected = (2 / 3) * (full["a"] - zero["a"] - full["b"] + zero["b"]) / 3
    expected += (1 / 3) * (full["a"] + zero["b"] - full["b"] - zero["a"]) / 3
    torch.testing.assert_close(phi["a"] - phi["b"], expected)


def test_coefficients_by_hand() -> None:
    # s = (0.5, 1.0): a fits better; running S = (0.6, 0.9)
    # ratio_a = e^(2 (0.75 - 0.5)) = e^0.5, target_a = e^0.3: c_a = e^(e^0.3 - e^0.5) = 0.7416614;
    # c_v = e^(e^-0.3 - e^-0.5) = 1.1437217
    s, running = torch.tensor([0.5, 1.0]).double(), torch.tensor([0.6, 0.9]).double()
    c = agm_coefficients(s, running, alpha=1.0)
    assert c.tolist() == pytest.approx([0.7416614, 1.1437217], abs=1e-7)
    assert float(c[0]) == pytest.approx(math.exp(math.exp(0.3) - math.exp(0.5)))
    # the cap: exp(alpha * min(target - ratio, 10))
    big = agm_coefficients(
        torch.tensor([9.0, 0.0]).double(), torch.tensor([0.0, 9.0]).double(), 0.1
    )
    assert float(big[0]) == pytest.approx(math.exp(1.0))


def test_scores_clamp_at_1e_8() -> None:
    phi = {"a": torch.tensor([[100.0, 0.0]]), "v": torch.tensor([[0.0, 0.0]])}
    s = agm_scores(phi, torch.tensor([1]))
    assert s.tolist() == pytest.approx([-math.log(1e-8), math.log(2)], rel=1e-6)


def test_scale_grad_keeps_the_value_and_scales_the_gradient() -> None:
    x = torch.tensor([1.5, -2.0], requires_grad=True)
    y = scale_grad(x, 0.25)
    assert torch.equal(y, x.detach())
    y.sum().backward()
    assert x.grad.tolist() == [0.25, 0.25]


def _zero_logits(model, x):
    model.eval()
    out = {m: model.logits(m, torch.zeros_like(x[m])) for m in x}
    model.train()
    return out


def test_the_gradient_is_each_response_scaled_by_its_coefficient() -> None:
    _, model, method, x, y = make("agm")
    method.running = torch.tensor([0.4, 1.6], dtype=torch.float64)  # later in a run
    ref = twin(model)
    ctx = ctx_for(BOTH, step=9)
    method.step(x, y, ctx)
    got = with_grads(model)
    c = [ctx.stats["agm/strong/coeff"], ctx.stats["agm/weak/coeff"]]
    assert min(c) < 0.99 < 1.01 < max(c)  # one modality held back, the other pushed
    phi = shapley_responses(ref(x), _zero_logits(ref, x))
    out = phi["strong"] + phi["weak"]
    g_out = torch.autograd.grad(F.cross_entropy(out, y), out, retain_graph=True)[0]
    ((c[0] * phi["strong"] + c[1] * phi["weak"]) * g_out).sum().backward()
    for name, p in ref.named_parameters():
        torch.testing.assert_close(got[name], p.grad, rtol=1e-4, atol=1e-7, msg=name)
    # the running scores took this step's scores in as the 10th value
    s = [ctx.stats["agm/strong/score"], ctx.stats["agm/weak/score"]]
    assert method.running.tolist() == pytest.approx([0.4 * 0.9 + s[0] / 10, 1.6 * 0.9 + s[1] / 10])


def test_outside_the_window_the_gradient_is_the_joint_one() -> None:
    _, model, method, x, y = make("agm", modulation_end=2, clip=None)
    method.running = torch.tensor([0.4, 1.6], dtype=torch.float64)
    ref = twin(model)
    method.step(x, y, ctx_for(BOTH, epoch=3, step=9))
    logits = ref(x)
    F.cross_entropy(torch.stack(list(logits.values())).mean(0), y).backward()
    for (n, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-7, msg=n)


def test_clipping_when_a_classifier_gradient_leaves_the_bound() -> None:
    _, model, method, x, y = make("agm", clip=1e-4)
    method.step(x, y * 0, ctx_for(BOTH))
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    assert float(total) == pytest.approx(1e-4, rel=1e-4)


def test_defaults_are_the_released_ones() -> None:
    spec, *_ = make("agm")
    assert spec.method.params == {
        "alpha": 1.0,
        "modulation_start": 0,
        "modulation_end": 19,
        "clip": 1.0,
    }


def test_resume(tmp_path) -> None:
    whole, _ = stop_and_resume(spec_for("agm"), 12, tmp_path)
    assert set(whole["diagnostics"]["agm_running_score"]) == {"strong", "weak"}
