"""Late fusion: the product of experts (geometric), its validation-fitted temperatures
(calibrated), the spec's checks, and the table of every fusion in result.json."""

from __future__ import annotations

import math

import pytest
import torch

from igm_core import catalog
from igm_core.methods.fusion import FUSIONS, fit_temperatures, fuse_probs
from igm_core.spec import SpecError, resolve_spec
from igm_core.trainer import train
from tests.specs import spec_for

BASE = {"name": "t", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}


def errors_of(data: dict) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        resolve_spec(data)
    return dict(info.value.errors)


def random_logits(n: int = 50, c: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: 3 * torch.randn(n, c, generator=g) for m in ("a", "b", "c")}


def test_geometric_is_the_product_of_experts() -> None:
    logits = random_logits()
    for weights in (None, {"a": 2.0, "b": 1.0, "c": 0.5}):
        w = weights or {m: 1.0 for m in logits}
        total = sum(w.values())
        # prod_m p_m ** (w_m / sum w), renormalised over the classes, in float64
        prod = math.prod(torch.softmax(z.double(), 1) ** (w[m] / total) for m, z in logits.items())
        want = prod / prod.sum(1, keepdim=True)
        got = fuse_probs(logits, "geometric", weights=weights)
        assert torch.allclose(got.double(), want, atol=1e-6)
    # and it is not the mean of the softmaxes
    mean = fuse_probs(logits, "mean")
    assert not torch.allclose(fuse_probs(logits, "geometric"), mean, atol=1e-3)


def test_calibrated_fusion_uses_the_temperatures() -> None:
    logits = random_logits()
    temps = {"a": 0.5, "b": 2.0, "c": 4.0}
    got = fuse_probs(logits, "calibrated", temperatures=temps)
    prod = math.prod(torch.softmax(z.double() / temps[m], 1) for m, z in logits.items())
    assert torch.allclose(got.double(), prod / prod.sum(1, keepdim=True), atol=1e-6)
    with pytest.raises(RuntimeError, match="fitted on the validation split"):
        fuse_probs(logits, "calibrated")


def test_fitted_temperatures_trust_the_informative_modality() -> None:
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 4, (400,), generator=g)
    informative = torch.nn.functional.one_hot(y, 4).float() * 2 + torch.randn(400, 4, generator=g)
    noise = 5 * torch.randn(400, 4, generator=g)
    logits = {"good": informative, "noise": noise}
    temps = fit_temperatures(logits, y)
    assert temps["good"] < 1.0 < 50 < temps["noise"]

    def nll(p: torch.Tensor) -> float:
        return float(-p.gather(1, y[:, None]).log().mean())

    fitted = nll(fuse_probs(logits, "calibrated", temperatures=temps))
    assert fitted < nll(fuse_probs(logits, "geometric")) - 0.2


def test_the_spec_rejects_unknown_fusions_and_misplaced_weights() -> None:
    errs = errors_of({**BASE, "method": {"name": "igm", "params": {"fusion": "product"}}})
    assert "'mean', 'entropy', 'geometric' or 'calibrated'" in errs["method.params.fusion"]
    mean_weights = {"fusion": "mean", "fusion_weights": {"strong": 2.0}}
    errs = errors_of({**BASE, "method": {"name": "mla", "params": mean_weights}})
    assert "fusion 'geometric' only" in errs["method.params"]
    bad = {"fusion": "geometric", "fusion_weights": {"audio": 2.0}}
    errs = errors_of({**BASE, "method": {"name": "alternating", "params": bad}})
    assert "not one of the spec's modalities" in errs["method.params.fusion_weights.audio"]
    zero = {"fusion": "geometric", "fusion_weights": {"weak": 0.0}}
    errs = errors_of({**BASE, "method": {"name": "igm", "params": zero}})
    assert "must lie in (0, 1e6]" in errs["method.params.fusion_weights"]
    ok = {"fusion": "geometric", "fusion_weights": {"weak": 0.5}}
    assert resolve_spec({**BASE, "method": {"name": "igm", "params": ok}})


def test_the_new_fusion_options_leave_older_hashes_alone() -> None:
    # the hash this spec had before fusion_weights existed
    assert resolve_spec(BASE).hash() == (
        "e58341c4510dbd7074abcf4ff4cd5310274ee69e335bdb0b856d43fd27a94742"
    )
    weighted = {"fusion": "geometric", "fusion_weights": {"weak": 0.5}}
    assert resolve_spec({**BASE, "method": {"name": "igm", "params": weighted}}).hash() != (
        resolve_spec({**BASE, "method": {"name": "igm", "params": {"fusion": "geometric"}}}).hash()
    )


def small(method: str, fusion: str) -> dict:
    return spec_for(
        method,
        method={"name": method, "params": {"fusion": fusion}},
        optimizer={"lr": 0.1},
        schedule={"stage_epochs": [2, 2, 2]},
    )


@pytest.mark.parametrize("method", ["alternating", "igm"])
def test_result_compares_every_fusion_and_selects_with_the_configured_one(method: str) -> None:
    result = train(small(method, "geometric")).result
    table = result["fusions"]
    assert set(table) == set(FUSIONS)
    for row in table.values():
        assert 0.0 <= row["test_acc"] <= 1.0 and 0.0 <= row["val_acc"] <= 1.0
    # the configured fusion gives the reported test accuracy and the selection score
    assert table["geometric"]["test_acc"] == result["test"]["acc"]
    assert table["geometric"]["val_acc"] == result["best"]["score"]
    temps = result["calibration"]["temperatures"]
    assert set(temps) == {"strong", "weak"} and temps != {"strong": 2.0, "weak": 2.0}


def test_joint_methods_have_no_fusion_table() -> None:
    result = train(spec_for("joint")).result
    assert "fusions" not in result and "calibration" not in result


def test_calibration_is_fitted_on_validation_only() -> None:
    """Permuting the test labels changes no fitted temperature and no selection; only the
    scores against the test labels move."""
    spec = small("igm", "calibrated")
    data = catalog.build_dataset("synthetic", resolve_spec(spec).dataset.params, 0)
    first = train(spec, data=data).result
    test = data.splits["test"]
    perm = torch.randperm(len(test), generator=torch.Generator().manual_seed(3))
    test.y = test.y[perm].clone()
    second = train(spec, data=data).result
    assert first["calibration"] == second["calibration"]
    assert first["best"] == second["best"] and first["val"] == second["val"]
    assert first["test"]["acc"] != second["test"]["acc"]  # the permutation reached the test split
    # the selection scores the calibrated fusion, refitted at every validation
    epochs = first["diagnostics"]["epochs"]
    assert all("calibration" in e for e in epochs)
    assert first["fusions"]["calibrated"]["val_acc"] == first["best"]["score"]
