"""SAM in IGM: standard (true SAM) and reference (the authors' loss mix), step by step."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from igm_core.methods.base import Stage, StepContext
from tests.factories import method_parts


def make(sam: str, **params):
    _, model, method, g = method_parts("sam", "igm", {"sam": sam, **params})
    x = {"strong": torch.randn(16, 6, generator=g), "weak": torch.randn(16, 5, generator=g)}
    y = torch.randint(0, 4, (16,), generator=g)
    ctx = StepContext(Stage(0, ("weak",), 1), 0, 0, True, seed=123)
    return model, method, x, y, ctx


def grads_of(model, m):
    return [p.grad.clone() for p in model.branch_parameters(m)]


def test_standard_sam_restores_parameters_and_uses_gradient_at_theta_plus_eps() -> None:
    rho = 0.5
    model, method, x, y, ctx = make("standard", rho=rho)
    before = copy.deepcopy(model.state_dict())
    # the expected gradient, computed by hand on a copy
    ref = copy.deepcopy(model)
    params = ref.branch_parameters("weak")
    F.cross_entropy(ref.logits("weak", x["weak"]), y).backward()
    g = torch.cat([p.grad.flatten() for p in params])
    with torch.no_grad():
        for p in params:
            p.add_(p.grad * rho / g.norm())
    ref.zero_grad()
    loss_at_eps = F.cross_entropy(ref.logits("weak", x["weak"]), y)
    loss_at_eps.backward()
    expected = grads_of(ref, "weak")

    model.zero_grad(set_to_none=True)
    loss = method.step(x, y, ctx)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # theta restored exactly
    for got, want in zip(grads_of(model, "weak"), expected, strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    sharpness = float(ctx.stats["sam/weak/sharpness"])
    assert sharpness > 0
    assert abs(sharpness - (float(loss_at_eps.detach()) - float(loss))) < 1e-6


def test_standard_sam_sharpness_is_loss_difference() -> None:
    model, method, x, y, ctx = make("standard", rho=0.5)
    with torch.no_grad():
        base = float(F.cross_entropy(model.logits("weak", x["weak"]), y))
    loss = method.step(x, y, ctx)
    assert float(loss) == base
    assert float(ctx.stats["sam/weak/sharpness"]) > 0


def test_reference_mode_reproduces_the_loss_mix() -> None:
    beta, rho, alpha = 0.3, 0.05, 1.0
    model, method, x, y, ctx = make("reference", rho=rho, flat_ratio=beta, mixup_alpha=alpha)
    ref = copy.deepcopy(model)
    # by hand: mixup of the trained modality's input with lam ~ Beta(a, a) and a permutation
    lam = float(np.random.default_rng(ctx.seed).beta(alpha, alpha))
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(ctx.seed))
    xw = x["weak"]
    feats = ref.encoders["weak"](lam * xw + (1 - lam) * xw[perm])
    out = ref.heads["weak"](feats)
    loss_mix = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[perm])
    head = list(ref.heads["weak"].parameters())
    gh = torch.autograd.grad(loss_mix, head, retain_graph=True)
    eps = [g * rho / g.norm() for g in gh]  # per-tensor normalisation
    perturbed = copy.deepcopy(ref.heads["weak"])
    with torch.no_grad():
        for p, e in zip(perturbed.parameters(), eps, strict=True):
            p.add_(e)
    loss_flat = F.cross_entropy(perturbed(feats), y)
    total = (1 - beta) * loss_mix + beta * loss_flat
    enc = list(ref.encoders["weak"].parameters())
    expected = torch.autograd.grad(total, enc + head, retain_graph=True)
    expected_flat = torch.autograd.grad(beta * loss_flat, list(perturbed.parameters()))

    theta = [p.detach().clone() for p in model.branch_parameters("weak")]
    loss = method.step(x, y, ctx)
    assert torch.allclose(loss, total.detach(), atol=1e-6)
    got = grads_of(model, "weak")
    n_enc = len(enc)
    for g_got, g_want in zip(got[:n_enc], expected[:n_enc], strict=True):
        assert torch.allclose(g_got, g_want, atol=1e-6)
    # head gradient: (1 - beta) at theta plus beta at theta + eps
    mix_head = torch.autograd.grad((1 - beta) * loss_mix, head)
    for g_got, a, b in zip(got[n_enc:], mix_head, expected_flat, strict=True):
        assert torch.allclose(g_got, a + b, atol=1e-6)
    # the perturbation stays in the head, as in the authors' code; the encoder is untouched
    params = model.branch_parameters("weak")
    for p, t in zip(params[:n_enc], theta[:n_enc], strict=True):
        assert torch.equal(p, t)
    for p, t, e in zip(params[n_enc:], theta[n_enc:], eps, strict=True):
        assert torch.allclose(p, t + e, atol=1e-7)


def test_reference_mode_encoder_perturbation() -> None:
    model, method, x, y, ctx = make("reference", rho=0.0, rho_encoder=0.01)
    theta = [p.detach().clone() for p in model.encoders["weak"].parameters()]
    method.step(x, y, ctx)
    moved = [
        float((p - t).norm())
        for p, t in zip(model.encoders["weak"].parameters(), theta, strict=True)
    ]
    assert all(abs(d - 0.01) < 1e-5 for d in moved)  # each tensor moved by rho, per-tensor norm


def test_sam_none_is_a_plain_step() -> None:
    model, method, x, y, ctx = make("none")
    ref = copy.deepcopy(model)
    F.cross_entropy(ref.logits("weak", x["weak"]), y).backward()
    method.step(x, y, ctx)
    for a, b in zip(grads_of(model, "weak"), grads_of(ref, "weak"), strict=True):
        assert torch.allclose(a, b)


def _conv_parts(sam: str, **params):
    """IGM on a model whose encoders have batch norm (conv encoders on 1 x 8 x 8 inputs)."""
    conv = {"name": "conv", "params": {"channels": [4, 6], "out_dim": 8}}
    spec, model, method, g = method_parts(
        "sam-bn",
        "igm",
        {"sam": sam, **params},
        {"strong": conv, "weak": conv},
        {"strong": (1, 8, 8), "weak": (1, 8, 8)},
    )
    x = torch.randn(16, 1, 8, 8, generator=g) * 2 + 1
    y = torch.randint(0, 4, (16,), generator=g)
    return spec, model, method, x, y, StepContext(Stage(0, ("weak",), 1), 0, 0, False, seed=7)


def bn_buffers(model, m):
    return {
        k: v.clone()
        for k, v in model.encoders[m].state_dict().items()
        if k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }


@pytest.mark.parametrize("sam", ["standard", "reference", "none"])
def test_one_batch_norm_update_per_sam_step(sam: str) -> None:
    _, model, method, x, y, ctx = _conv_parts(sam, rho=0.5 if sam == "standard" else 1e-10)
    counts = {k: v for k, v in bn_buffers(model, "weak").items() if "num_batches" in k}
    assert len(counts) == 2 and all(int(v) == 0 for v in counts.values())
    for step in (1, 2):
        model.zero_grad(set_to_none=True)
        method.step({"weak": x}, y, ctx)
        after = bn_buffers(model, "weak")
        assert all(int(after[k]) == step for k in counts), (sam, step)


def test_standard_sam_running_stats_equal_one_pass_at_theta() -> None:
    _, model, method, x, y, ctx = _conv_parts("standard", rho=0.5)
    ref, pert = copy.deepcopy(model), copy.deepcopy(model)
    with torch.no_grad():
        ref.logits("weak", x)  # one training-mode pass at theta
    method.step({"weak": x}, y, ctx)
    got, want = bn_buffers(model, "weak"), bn_buffers(ref, "weak")
    assert set(got) == set(want)
    for k in got:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0)
    # the perturbed pass really ran in training mode with a large rho: the stats it would have
    # folded in differ from these (so the equality above is not trivially true)
    with torch.no_grad():
        for p in pert.branch_parameters("weak"):
            p.add_(0.5)
        pert.logits("weak", x)
    assert not torch.allclose(
        bn_buffers(pert, "weak")["net.1.running_mean"], want["net.1.running_mean"]
    )


def test_unit_steps_equal_the_per_tensor_formula_bit_for_bit() -> None:
    """unit_steps divides once for all tensors; the result is rho * g / ||g|| as computed tensor
    by tensor (g * (rho / (||g|| + 1e-12))), exactly, an unused tensor giving zeros."""
    from igm_core.methods.sam import unit_steps

    g = torch.Generator().manual_seed(0)
    tensors = [
        torch.randn(shape, generator=g, requires_grad=True) for shape in ((7, 5), (5,), (3, 2, 2))
    ]
    unused = torch.randn(4, requires_grad=True)
    loss = (tensors[0].sin().sum() * tensors[1].exp().sum()) + tensors[2].pow(3).sum()
    rho = 0.05
    got = unit_steps(loss, [*tensors, unused], rho)
    grads = torch.autograd.grad(loss, tensors, retain_graph=True)
    for step, grad in zip(got, grads, strict=False):
        want = grad * (rho / (torch._foreach_norm([grad])[0] + 1e-12))  # as before
        assert torch.equal(step, want)
    assert torch.equal(got[-1], torch.zeros(4))


def test_grouped_unit_steps_equal_one_pass_per_group_bit_for_bit() -> None:
    """Reference SAM perturbs the encoder and the head from one backward pass of the mixup
    loss: each group's steps are exactly those of a pass of its own, each with its own rho."""
    from igm_core.methods.sam import grouped_unit_steps, unit_steps

    g = torch.Generator().manual_seed(1)
    enc = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
    head = torch.nn.Sequential(
        torch.nn.Linear(4 * 6 * 6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)
    )
    x, y = torch.randn(6, 3, 8, 8, generator=g), torch.randint(0, 3, (6,), generator=g)
    loss = torch.nn.functional.cross_entropy(head(enc(x)), y)
    enc_p, head_p = list(enc.parameters()), list(head.parameters())
    got_enc, got_head = grouped_unit_steps(loss, [(enc_p, 0.05), (head_p, 1e-10)])
    for got, want in (
        (got_enc, unit_steps(loss, enc_p, 0.05)),
        (got_head, unit_steps(loss, head_p, 1e-10)),
    ):
        assert len(got) == len(want)
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert not torch.equal(got_enc[0], torch.zeros_like(got_enc[0]))
