"""The baselines as their papers and released code define them: OGM-GE's coefficient and what it
modulates; MLA's per-step alternation over one head and its OWM projector."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn import functional as F

from igm_core.errors import SpecError
from igm_core.methods.base import Stage, StepContext
from igm_core.methods.mla import entropy_logit_fusion
from igm_core.methods.ogm_ge import ogm_coefficients, ogm_ratios
from igm_core.spec import resolve_spec
from igm_core.trainer import train
from tests.factories import method_parts
from tests.specs import spec_for


def make(method: str, **params):
    spec, model, method_obj, g = method_parts("baseline", method, params)
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


def _ogm_step(ge: bool):
    """One OGM(-GE) step at alpha 0.8: the model after it, and the plain joint gradients and
    OGM coefficients it is checked against."""
    _, model, method, x, y = make("ogm_ge", alpha=0.8, ge=ge)
    exp, coeffs = _joint_grads(model, x, y, 0.8)
    method.step(x, y, StepContext(Stage(0, ("strong", "weak"), 1), 0, 0, False, seed=5))
    return model, exp, coeffs


def test_ogm_modulates_only_the_dominant_encoders_weights() -> None:
    model, exp, coeffs = _ogm_step(ge=False)
    for name, p in model.named_parameters():
        g_ref = exp[name].grad
        parts = name.split(".")
        if parts[0] == "encoders" and p.dim() >= 2:
            torch.testing.assert_close(p.grad, g_ref * coeffs[parts[1]], rtol=1e-5, atol=1e-7)
        else:  # heads, encoder biases: untouched
            torch.testing.assert_close(p.grad, g_ref, rtol=0, atol=0)


def test_ogm_ge_noise_has_the_gradients_own_std_and_spares_biases() -> None:
    model, exp, coeffs = _ogm_step(ge=True)
    for name, p in model.named_parameters():
        g = exp[name].grad
        if not name.startswith("encoders.") or p.dim() < 2:
            torch.testing.assert_close(p.grad, g, rtol=0, atol=0)
            continue
        noise = p.grad - coeffs[name.split(".")[1]] * g  # added after the scaling
        # its std is the unscaled gradient's (a few hundred draws: within 25%)
        assert float(noise.std()) == pytest.approx(float(g.std()), rel=0.25), name
        assert abs(float(noise.mean())) < 0.25 * float(g.std()), name


# ----------------------------------------------------------------------------- MLA


def test_mla_default_is_per_step_over_one_shared_head() -> None:
    spec, model, method, _, _ = make("mla")
    p = spec.method.params
    assert (p["alternation"], p["project"], p["fusion"]) == ("step", False, "entropy_logits")
    assert spec.model.shared_head and spec.schedule.epochs and spec.schedule.stage_epochs is None
    assert model.head_of("strong") is model.head_of("weak")
    assert [s.modalities for s in method.stages()] == [("strong", "weak")]


def test_mla_spec_rules() -> None:
    base = {"name": "x", "dataset": {"name": "synthetic"}, "method": {"name": "mla"}}
    with pytest.raises(SpecError) as err:
        resolve_spec({**base, "schedule": {"stage_epochs": [1, 1]}})
    assert "alternation: stage" in str(err.value)
    with pytest.raises(SpecError, match=r"model\.shared_head"):
        resolve_spec({**base, "model": {"shared_head": False}})
    staged = resolve_spec(
        {
            **base,
            "method": {"name": "mla", "params": {"alternation": "stage"}},
            "schedule": {"stage_epochs": [1, 1]},
        }
    )
    assert staged.method.params["project"] is True and staged.model.shared_head is False
    with pytest.raises(SpecError, match="scope"):
        resolve_spec({**base, "method": {"name": "mla", "params": {"scope": "head+1"}}})


def _snapshot(model):
    """A copy of the model with its gradients (deepcopy leaves .grad behind)."""
    twin = copy.deepcopy(model)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        q.grad = None if p.grad is None else p.grad.detach().clone()
    return twin, {n: p.grad is not None for n, p in model.named_parameters()}


def _mla_step(method, model, x, y, batch=3, batches=8, seed=0, on_step=None):
    """One MLA step with a real optimizer; snapshots of the model and gradients at each update."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []

    def step_optimizer() -> None:
        seen.append(_snapshot(model))
        if on_step is not None:
            on_step()
        opt.step()
        opt.zero_grad(set_to_none=True)

    ctx = StepContext(
        Stage(0, ("strong", "weak"), 1),
        0,
        seed,
        True,
        seed=seed,
        batch=batch,
        batches=batches,
        step_optimizer=step_optimizer,
    )
    opt.zero_grad(set_to_none=True)
    method.step(x, y, ctx)
    seen.append(_snapshot(model))
    return seen, ctx


def test_mla_alternates_modalities_within_each_step() -> None:
    _, model, method, x, y = make("mla")
    seen, ctx = _mla_step(method, model, x, y)
    assert len(seen) == 2  # one update per modality: strong (here), weak (the trainer's)
    for (_, has_grad), m, other in ((seen[0], "strong", "weak"), (seen[1], "weak", "strong")):
        assert all(v for n, v in has_grad.items() if n.startswith(f"encoders.{m}."))
        assert not any(v for n, v in has_grad.items() if n.startswith(f"encoders.{other}."))
        assert all(v for n, v in has_grad.items() if n.startswith("head."))
    # the weak modality's update starts from the head the strong one just moved
    assert not torch.equal(seen[0][0].head[0].weight, seen[1][0].head[0].weight)
    assert set(ctx.stats) >= {"mla/strong/loss", "mla/weak/loss"}
    assert method.owm == {}  # released behaviour: nothing projected


@pytest.mark.parametrize("base", [1.0, 1e-6])
def test_mla_projector_is_orthogonal_to_what_it_has_seen(base: float) -> None:
    _, model, method, x, y = make("mla", project=True, alpha=base)
    method.updates = 1  # past the run's first update, which the released plug-in skips
    owm_before_weak = {}
    seen, ctx = _mla_step(
        method,
        model,
        x,
        y,
        batch=3,
        batches=8,
        on_step=lambda: owm_before_weak.update({k: v.clone() for k, v in method.owm.items()}),
    )
    alpha = base * 0.1 ** (1 + 3 / 8)
    assert float(ctx.stats["gm/weak/owm_alpha"]) == pytest.approx(alpha)
    assert set(owm_before_weak) == {"head.0", "head.2", "head.3"}  # folded by strong's update
    # redo the weak modality's gradient by hand on the model as it was after strong's update
    ref = seen[0][0]
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
    opt_ref.step()  # strong's update, with the (projected) gradients the snapshot carries
    opt_ref.zero_grad(set_to_none=True)
    inputs = {}
    hooks = [
        layer.register_forward_pre_hook(
            lambda mod, args, n=n: inputs.__setitem__(n, args[0].detach().double().mean(0))
        )
        for n, layer in ref.head.named_children()
        if isinstance(layer, torch.nn.Linear)
    ]
    F.cross_entropy(ref.logits("weak", x["weak"]), y).backward()
    for h in hooks:
        h.remove()
    got = seen[1][0]
    for name, r in inputs.items():
        g_raw = ref.head.get_submodule(name).weight.grad.double()
        g_new = got.head.get_submodule(name).weight.grad.double()
        p_old, p = owm_before_weak[f"head.{name}"], method.owm[f"head.{name}"]
        # P <- P - k k^T / (alpha + r^T k), k = P r, then P / ||P||_F; the gradient G P^T
        k = p_old @ r
        unnorm = p_old - torch.outer(k, k) / (alpha + r @ k)
        torch.testing.assert_close(p, unnorm / torch.linalg.matrix_norm(unnorm))
        torch.testing.assert_close(g_new, g_raw @ p.T, rtol=1e-4, atol=1e-7)
        # what is left along r is k scaled by alpha / (alpha + r^T P r): orthogonal as alpha -> 0
        factor = alpha / (alpha + float(r @ k))
        torch.testing.assert_close(unnorm @ r, factor * k)
        raw = float((g_raw @ r).norm() / (g_raw.norm() * r.norm()))
        kept = float((g_new @ r).norm() / (g_new.norm() * r.norm()))
        assert raw > 0.05, (name, raw)
        if base < 1e-3:
            assert kept < 1e-3 * raw, (name, raw, kept)


def test_mla_entropy_logit_fusion_is_the_papers_rule() -> None:
    z = {
        "a": torch.tensor([[2.0, 0.0, 0.0], [0.1, 0.0, 0.0]]),
        "b": torch.tensor([[0.0, 0.5, 0.0], [0.0, 3.0, 0.0]]),
    }
    got = entropy_logit_fusion(z)
    for i in range(2):
        ent = {}
        for m, v in z.items():
            p = torch.softmax(v[i], 0)
            ent[m] = float(-(p * p.log()).sum())
        top = max(ent.values())
        w = {m: math.exp(top - e) for m, e in ent.items()}
        total = sum(w.values())
        fused = sum(w[m] / total * z[m][i] for m in z)
        torch.testing.assert_close(got[i], torch.softmax(fused, 0))
    # the confident modality wins each sample: a for sample 0, b for sample 1
    assert got.argmax(1).tolist() == [0, 1]


def test_mla_with_projection_resumes_to_the_same_result(tmp_path) -> None:
    spec = spec_for("mla", method={"name": "mla", "params": {"project": True}})
    whole = train(spec, out_dir=tmp_path / "whole")
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] == 12  # mid-epoch: the projectors and the update count are saved

    assert train(spec, out_dir=tmp_path / "part", should_stop=stop).status == "stopped"
    second = train(spec, out_dir=tmp_path / "part")
    assert second.result["test"] == whole.result["test"]
    assert second.result["diagnostics"]["updates"] == whole.result["diagnostics"]["updates"] == 48
