"""MMPareto: the two-vector min-norm weight and the magnitude rule by hand, what a step does to the
encoders (and not to the heads), the case counts, and resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from igm_core.methods.base import Stage
from igm_core.methods.mmpareto import min_norm_weight, pareto_grads
from tests.method_case import ctx_for, make, stop_and_resume, twin, with_grads
from tests.specs import spec_for

BOTH = Stage(0, ("strong", "weak"), 3)


def test_min_norm_weight_by_hand() -> None:
    # g1 = (1, 0), g2 = (-1, 1): w = (2 - (-1)) / (1 + 2 + 2) = 0.6; 0.6 g1 + 0.4 g2 = (0.2, 0.4)
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    assert min_norm_weight(g1, g2) == pytest.approx(0.6)
    # the released clipped cases
    assert min_norm_weight(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0])) == 0.999
    assert min_norm_weight(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0])) == 0.001


def test_conflicting_gradients_take_the_pareto_direction_and_the_larger_norm() -> None:
    a, b = [torch.tensor([1.0, 0.0])], [torch.tensor([-1.0, 1.0])]
    out, cos, w = pareto_grads(a, b, gamma=1.5)
    assert cos == pytest.approx(-1 / math.sqrt(2)) and w == pytest.approx(0.6)
    # 2 (0.6 a + 0.4 b) = (0.4, 0.8), norm 0.894 < |a + b| = 1: rescaled to norm 1, times 1.5
    scale = 1.0 / math.sqrt(0.4**2 + 0.8**2) * 1.5
    assert out[0].tolist() == pytest.approx([0.4 * scale, 0.8 * scale])
    assert out[0].tolist() == pytest.approx([0.6708204, 1.3416408])


def test_agreeing_gradients_are_summed_and_scaled() -> None:
    a, b = (
        [torch.tensor([1.0, 0.0]), torch.tensor([2.0])],
        [torch.tensor([1.0, 1.0]), torch.tensor([0.0])],
    )
    out, cos, w = pareto_grads(a, b, gamma=1.5)
    assert cos > 0 and w == 0.5
    # 2 (a/2 + b/2) = a + b, its own norm: times gamma, tensor by tensor
    assert [t.tolist() for t in out] == [[3.0, 1.5], [3.0]]


def test_a_step_integrates_the_encoder_gradients_and_leaves_the_heads() -> None:
    _, model, method, x, y = make("mmpareto")
    ref = twin(model)
    ctx = ctx_for(BOTH)
    method.step(x, y, ctx)
    got = with_grads(model)
    logits = ref(x)
    loss_mm = F.cross_entropy(torch.stack(list(logits.values())).mean(0), y)
    uni = {m: F.cross_entropy(v, y) for m, v in logits.items()}
    total = loss_mm + sum(uni.values())
    for m in ("strong", "weak"):
        params = list(ref.encoders[m].parameters())
        g_mm = torch.autograd.grad(loss_mm, params, retain_graph=True)
        g_m = torch.autograd.grad(uni[m], params, retain_graph=True)
        flat_mm, flat_m = (
            torch.cat([g.flatten() for g in g_mm]),
            torch.cat([g.flatten() for g in g_m]),
        )
        cos = float(F.cosine_similarity(flat_mm, flat_m, dim=0))
        assert ctx.stats[f"pareto/{m}/cos"] == pytest.approx(cos, abs=1e-5)
        w = 0.5 if cos > 0 else min_norm_weight(flat_mm.double(), flat_m.double())
        for (name, _), a, b in zip(ref.encoders[m].named_parameters(), g_mm, g_m, strict=True):
            new = 2 * w * a + 2 * (1 - w) * b
            k = max(float((a + b).norm() / new.norm()), 1.0) * 1.5
            torch.testing.assert_close(got[f"encoders.{m}.{name}"], k * new, rtol=1e-4, atol=1e-7)
    total.backward()
    for name, p in ref.named_parameters():
        if not name.startswith("encoders."):  # heads: the plain gradient of the summed loss
            torch.testing.assert_close(got[name], p.grad, rtol=1e-5, atol=1e-7)
    cases = method.cases
    assert all(sum(c.values()) == 1 for c in cases.values())


def test_default_gamma_is_the_released_one() -> None:
    spec, *_ = make("mmpareto")
    assert spec.method.params == {"gamma": 1.5}


def test_resume_keeps_the_case_counts(tmp_path) -> None:
    whole, again = stop_and_resume(spec_for("mmpareto"), 11, tmp_path)
    cases = whole["diagnostics"]["pareto_cases"]
    assert cases == again["diagnostics"]["pareto_cases"]
    assert all(c["agree"] + c["conflict"] == 24 for c in cases.values())  # every step counted
