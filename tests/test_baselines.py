"""The baselines as their papers and released code define them: OGM-GE's coefficient and what it
modulates; MLA's per-step alternation over one head and its OWM projector."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

from igm_core import catalog
from igm_core.methods.base import Stage, StepContext
from igm_core.methods.ogm_ge import ogm_coefficients, ogm_ratios
from igm_core.models import build_model
from igm_core.spec import resolve_spec


def make(method: str, shared_head: bool = False, **params):
    spec = resolve_spec(
        {
            "name": "baseline",
            "dataset": {"name": "synthetic", "params": {"dims": [6, 5]}},
            "method": {"name": method, "params": params},
            "model": {"head_hidden": [8, 4], "shared_head": shared_head},
        }
    )
    torch.manual_seed(0)
    model = build_model(
        {m: e.model_dump() for m, e in spec.model.encoders.items()},
        {"strong": (6,), "weak": (5,)},
        spec.model.head_hidden,
        4,
        spec.model.shared_head,
    )
    factory = catalog.METHODS.get(method).load()
    method_obj = factory(spec.method.params, model, spec, torch.device("cpu"))
    g = torch.Generator().manual_seed(1)
    x = {"strong": torch.randn(16, 6, generator=g), "weak": torch.randn(16, 5, generator=g)}
    y = torch.randint(0, 4, (16,), generator=g)
    return spec, model, method_obj, x, y


# ----------------------------------------------------------------------------- OGM-GE


def test_ogm_coefficient_is_the_papers_eq_10() -> None:
    # alpha 0.8, ratio 1.5: 1 - tanh(1.2) = 0.16634...; the weaker modality keeps 1
    ratios = ogm_ratios(torch.tensor([3.0, 2.0]))
    assert ratios.tolist() == pytest.approx([1.5, 2 / 3])
    coeffs = ogm_coefficients(ratios, 0.8)
    assert coeffs.tolist() == pytest.approx([0.1663454, 1.0], abs=1e-6)
    assert float(coeffs[0]) == pytest.approx(1 - math.tanh(1.2), abs=1e-7)
    # just above level the paper's rule already scales by 1 - tanh(alpha): no continuity at 1
    assert float(ogm_coefficients(torch.tensor([1.0001]), 0.5)[0]) == pytest.approx(
        1 - math.tanh(0.5), abs=1e-4
    )
    assert float(ogm_coefficients(torch.tensor([1.0]), 0.5)[0]) == 1.0
    # the named variant: 1 - tanh(alpha (r - 1)) = 1 - tanh(0.4) = 0.6200
    cont = ogm_coefficients(ratios, 0.8, "continuous")
    assert cont.tolist() == pytest.approx([1 - math.tanh(0.4), 1.0], abs=1e-6)
    assert float(cont[0]) == pytest.approx(0.6200, abs=1e-4)


def test_ogm_default_is_the_paper_rule() -> None:
    spec, *_ = make("ogm_ge")
    assert spec.method.params["coefficient"] == "paper"


def _joint_grads(model, x, y, alpha):
    """A joint step on a copy, and the paper's coefficients computed by hand from its logits."""
    ref = copy.deepcopy(model)
    logits = ref(x)
    F.cross_entropy(torch.stack(list(logits.values())).mean(0), y).backward()
    scores = [float(F.softmax(logits[m].detach(), 1).gather(1, y[:, None]).sum()) for m in logits]
    ratios = [scores[0] / scores[1], scores[1] / scores[0]]
    coeffs = {
        m: 1 - math.tanh(alpha * r) if r > 1 else 1.0 for m, r in zip(logits, ratios, strict=True)
    }
    assert sorted(coeffs.values())[0] < 1.0  # one modality dominates: something to test
    return dict(ref.named_parameters()), coeffs


def test_ogm_modulates_only_the_dominant_encoders_weights() -> None:
    _, model, method, x, y = make("ogm_ge", alpha=0.8, ge=False)
    exp, coeffs = _joint_grads(model, x, y, 0.8)
    ctx = StepContext(Stage(0, ("strong", "weak"), 1), 0, 0, False, seed=5)
    method.step(x, y, ctx)
    for name, p in model.named_parameters():
        g_ref = exp[name].grad
        parts = name.split(".")
        if parts[0] == "encoders" and p.dim() >= 2:
            torch.testing.assert_close(p.grad, g_ref * coeffs[parts[1]], rtol=1e-5, atol=1e-7)
        else:  # heads, encoder biases: untouched
            torch.testing.assert_close(p.grad, g_ref, rtol=0, atol=0)


def test_ogm_ge_noise_has_the_gradients_own_std_and_spares_biases() -> None:
    _, model, method, x, y = make("ogm_ge", alpha=0.8, ge=True)
    exp, coeffs = _joint_grads(model, x, y, 0.8)
    ctx = StepContext(Stage(0, ("strong", "weak"), 1), 0, 0, False, seed=5)
    method.step(x, y, ctx)
    for name, p in model.named_parameters():
        g = exp[name].grad
        if not name.startswith("encoders.") or p.dim() < 2:
            torch.testing.assert_close(p.grad, g, rtol=0, atol=0)
            continue
        noise = p.grad - coeffs[name.split(".")[1]] * g  # added after the scaling
        # its std is the unscaled gradient's (a few hundred draws: within 25%)
        assert float(noise.std()) == pytest.approx(float(g.std()), rel=0.25), name
        assert abs(float(noise.mean())) < 0.25 * float(g.std()), name
