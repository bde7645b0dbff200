"""The gradient-modification math: flat projection, OWM projector, conv inputs, layer scopes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from igm_core import gm


def random_cov(d: int, n: int = 50, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g) * torch.linspace(3.0, 0.1, d)
    return gm.covariance(z)


@pytest.mark.parametrize("tau", [0.1, 0.4, 2.0])
def test_flat_projection_is_symmetric_with_eigenvalues_in_range(tau: float) -> None:
    t, info = gm.flat_projection(random_cov(24), tau)
    assert torch.allclose(t, t.T, atol=1e-6)
    eig = torch.linalg.eigvalsh(t.double())
    assert eig.min() >= math.exp(-tau) - 1e-5
    assert eig.max() <= 1 + 1e-5
    assert info["min_gain"] == pytest.approx(math.exp(-tau), rel=1e-6)


def test_direction_of_largest_energy_gets_smallest_gain() -> None:
    cov = random_cov(16)
    t, _ = gm.flat_projection(cov, 0.4)
    _eigvals, eigvecs = torch.linalg.eigh(cov)
    top, bottom = eigvecs[:, -1].float(), eigvecs[:, 0].float()
    # T v = sigma v along the eigenvectors of Y
    assert torch.dot(top, t @ top) == pytest.approx(math.exp(-0.4), abs=1e-5)
    assert torch.dot(bottom, t @ bottom) == pytest.approx(1.0, abs=1e-5)


def test_gains_follow_the_formula() -> None:
    lam = torch.tensor([0.0, 1.0, 3.0, 4.0], dtype=torch.float64)
    gains = gm.flat_gains(lam, 0.4)
    expected = torch.exp(-0.4 * (lam - 0) / 4)
    assert torch.allclose(gains, expected)


@pytest.mark.parametrize(
    "cov",
    [
        torch.zeros(5, 5),
        torch.eye(5) * 3.0,
        torch.full((5, 5), 2.0),  # rank one: one large eigenvalue, the rest zero
    ],
    ids=["zero", "isotropic", "rank-one"],
)
def test_degenerate_spectra(cov: torch.Tensor) -> None:
    t, info = gm.flat_projection(cov, 0.4)
    assert torch.isfinite(t).all()
    eig = torch.linalg.eigvalsh(t.double())
    assert eig.min() >= math.exp(-0.4) - 1e-5 and eig.max() <= 1 + 1e-5
    if cov.abs().sum() == 0 or torch.allclose(cov, torch.eye(5) * 3.0):
        assert torch.allclose(t, torch.eye(5), atol=1e-6)  # flat spectrum: every gain is 1
        assert info["min_gain"] == 1.0


def test_effective_rank() -> None:
    assert gm.effective_rank(torch.tensor([1.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert gm.effective_rank(torch.ones(7)) == pytest.approx(7.0)
    assert gm.effective_rank(torch.zeros(3)) == 0.0


def test_owm_projector_leaves_gradients_orthogonal_to_seen_inputs() -> None:
    g = torch.Generator().manual_seed(1)
    seen = torch.randn(6, 20, generator=g)
    p = gm.owm_projector(seen, alpha=1e-6)
    grad = torch.randn(8, 20, generator=g, dtype=torch.float64)
    projected = grad @ p
    # an update G P no longer changes the layer's output on any seen input
    assert (projected @ seen.double().T).abs().max() < 1e-4 * (grad @ seen.double().T).abs().max()
    # and it keeps directions that no input used
    unseen = torch.linalg.svd(seen.double(), full_matrices=True).Vh[-1]
    assert torch.allclose(p @ unseen, unseen, atol=1e-6)


def test_owm_projector_accumulates_over_calls() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(3, 10, generator=g), torch.randn(3, 10, generator=g)
    p = gm.owm_projector(b, 1e-6, gm.owm_projector(a, 1e-6))
    both = torch.cat([a, b]).double()
    assert (p @ both.T).abs().max() < 1e-4


def test_project_weight_grad_linear_and_conv() -> None:
    t = torch.diag(torch.tensor([1.0, 0.5, 0.25]))
    g = torch.ones(4, 3)
    assert torch.allclose(gm.project_weight_grad(g, t), g * torch.tensor([1.0, 0.5, 0.25]))
    conv_grad = torch.randn(5, 2, 3, 3)
    t2 = torch.eye(18) * 0.5
    assert torch.allclose(gm.project_weight_grad(conv_grad, t2), conv_grad * 0.5)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), (1, 2, 2)])
def test_conv_input_mean_matches_unfold(stride: int, padding: int, dilation: int) -> None:
    conv = nn.Conv2d(3, 4, 3, stride=stride, padding=padding, dilation=dilation)
    x = torch.randn(5, 3, 9, 11)
    expected = F.unfold(x, 3, dilation=dilation, padding=padding, stride=stride).mean(dim=(0, 2))
    assert torch.allclose(gm.layer_input_mean(conv, x), expected, atol=1e-6)
    assert gm.input_dim(conv) == expected.numel()


def test_collect_batch_means_stops_at_last_projected_layer() -> None:
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.Linear(5, 3))
    calls = []
    net[3].register_forward_hook(lambda *a: calls.append("last-ran"))
    layers = {"a": net[0], "b": net[2]}
    x = torch.randn(10, 4)
    means = gm.collect_batch_means(net, net, layers, [x], batch_size=4)
    assert calls == []  # the forward stopped before layer 3
    assert means["a"].shape == (3, 4)  # 10 samples in pieces of 4, 4, 2
    assert torch.allclose(means["a"][0], x[:4].mean(0))
    h = net[1](net[0](x[4:8]))
    assert torch.allclose(means["b"][1], h.mean(0), atol=1e-6)


def test_select_layers_scopes() -> None:
    branch = {
        "encoder.net.0": nn.Linear(100, 100),
        "encoder.net.2": nn.Linear(100, 100),
        "head.0": nn.Linear(100, 10),
        "head.2": nn.Linear(10, 4),
    }
    assert gm.select_layers(branch, "head") == ["head.0", "head.2"]
    assert gm.select_layers(branch, "none") == []
    assert gm.select_layers(branch, "all") == list(branch)
    assert gm.select_layers(branch, "head+1") == ["encoder.net.2", "head.0", "head.2"]
    assert gm.select_layers(branch, 0.3) == ["encoder.net.2", "head.0", "head.2"]
    assert gm.select_layers(branch, 1.0) == list(branch)


@pytest.mark.parametrize("n,d", [(5, 40), (40, 12), (3, 3)])
def test_projection_from_means_matches_the_dense_route(n: int, d: int) -> None:
    g = torch.Generator().manual_seed(n * d)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    dense, info_dense = gm.flat_projection(gm.covariance(z), 0.4)
    proj, info = gm.flat_projection_from_means(z, 0.4)
    matrix = proj.matrix() if isinstance(proj, gm.LowRankProjection) else proj
    assert isinstance(proj, gm.LowRankProjection) == (n < d)  # low rank when T < d
    assert torch.allclose(matrix.double(), dense.double(), atol=1e-5)
    assert info["min_gain"] == pytest.approx(info_dense["min_gain"])
    assert info["eff_rank"] == pytest.approx(info_dense["eff_rank"], rel=1e-6)
    grad = torch.randn(7, d, generator=g)
    assert torch.allclose(gm.project_weight_grad(grad, proj), grad @ dense, atol=1e-5)


def test_projection_of_a_wide_nearly_singular_layer() -> None:
    # few batch means of a 4608-wide conv input, nearly collinear: the d x d float32 eigh of this
    # Y fails to converge; the Gram route does not
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 4608, generator=g)
    z = base + 1e-6 * torch.randn(6, 4608, generator=g)
    proj, info = gm.flat_projection_from_means(z, 0.4)
    assert isinstance(proj, gm.LowRankProjection) and proj.basis.shape[0] == 4608
    assert info["min_gain"] == pytest.approx(math.exp(-0.4))
    v = base[0] / base.norm()
    assert float(v @ proj.apply(v[None])[0]) == pytest.approx(math.exp(-0.4), abs=1e-4)


def _shares(branch: dict[str, nn.Module], f: float) -> tuple[float, list[float], float]:
    """Selected share for f, the share of each head + last-k choice, the largest layer's share."""
    names = list(branch)
    size = {n: branch[n].weight.numel() for n in names}
    total = sum(size.values())
    enc = [n for n in names if n.startswith("encoder.")]
    head = sum(size[n] for n in names if n.startswith("head."))
    chosen = gm.select_layers(branch, f)
    # the selection is the head plus a suffix of the encoder layers, in branch order
    k = len(chosen) - (len(names) - len(enc))
    assert chosen == enc[len(enc) - k :] + [n for n in names if n.startswith("head.")]
    options = [
        (head + sum(size[n] for n in enc[len(enc) - j :])) / total for j in range(len(enc) + 1)
    ]
    share = sum(size[n] for n in chosen) / total
    return share, options, max(size[n] for n in enc) / total


@pytest.mark.parametrize("encoder", ["resnet18", "mlp"])
def test_fraction_scope_selects_the_nearest_share(encoder: str) -> None:
    from igm_core.models import MLPEncoder, MultimodalModel
    from igm_core.resnet import ResNet18Encoder

    enc = (
        ResNet18Encoder((1, 64, 64))
        if encoder == "resnet18"
        else MLPEncoder((256,), [512, 512, 256, 128], 128)
    )
    branch = MultimodalModel({"a": enc}, [256, 64], 6).branch_modules("a")
    for f in (0.05, 0.1, 0.3, 0.5, 0.65, 0.9, 1.0):
        share, options, layer = _shares(branch, f)
        # nearest of every head + last-k choice (ties to the smaller share) ...
        assert abs(share - f) == min(abs(o - f) for o in options), (encoder, f, share)
        # ... so within half a layer of the target, once the target is above the head's share
        if f >= options[0]:
            assert abs(share - f) <= layer / 2 + 1e-12, (encoder, f, share)
    if encoder == "resnet18":  # the old rule overshot: 0.3 -> 43%, 0.5 -> 65%
        assert _shares(branch, 0.3)[0] == pytest.approx(0.225, abs=0.01)
        assert _shares(branch, 0.5)[0] == pytest.approx(0.435, abs=0.01)


def test_fraction_scope_tie_goes_to_the_smaller_share() -> None:
    branch = {
        "encoder.0": nn.Linear(10, 10),  # 100
        "encoder.1": nn.Linear(10, 10),  # 100
        "head.0": nn.Linear(10, 10),  # 100: shares 1/3, 2/3, 1
    }
    assert gm.select_layers(branch, 0.5) == ["head.0"]  # 1/3 and 2/3 are equally near
    assert gm.select_layers(branch, 0.51) == ["encoder.1", "head.0"]
    assert gm.fraction_depth(100, [100, 100], 0.5) == 0
