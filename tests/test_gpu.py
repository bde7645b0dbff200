"""CUDA checks: training on the GPU in fp32 and bf16, GM math on the GPU, resume on the GPU.

Deselected by default (pyproject's addopts); run with `pytest -m gpu` on a machine with CUDA.
"""

from __future__ import annotations

import pytest
import torch

from igm_core import gm
from igm_core.trainer import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def spec(**extra) -> dict:
    s = {
        "name": "gpu",
        "dataset": {"name": "synthetic"},
        "method": {"name": "igm"},
        "device": "cuda",
        "schedule": {"stage_epochs": [3] * 6},
    }
    s.update(extra)
    return s


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("sam", ["standard", "reference"])
def test_igm_trains_on_cuda(precision: str, sam: str) -> None:
    r = train(spec(precision=precision, method={"name": "igm", "params": {"sam": sam}})).result
    assert r["run"]["device"].startswith("cuda") and r["run"]["precision"] == precision
    assert r["test"]["acc"] > 0.85
    assert r["test"]["modality_acc"]["weak"] > 0.5


def test_auto_precision_is_bf16_on_cuda() -> None:
    r = train(spec(method={"name": "ogm_ge"}, schedule={"epochs": 2})).result
    assert r["run"]["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")


def test_conv_projection_on_cuda() -> None:
    s = {
        "name": "gpu-conv",
        "dataset": {"name": "digits"},
        "device": "cuda",
        "method": {"name": "igm", "params": {"gm_scope": "all"}},
        "schedule": {"stage_epochs": [2, 2, 2]},
    }
    r = train(s).result
    assert len(r["diagnostics"]["transitions"]) == 2 and r["test"]["acc"] > 0.3


def test_flat_projection_matches_cpu() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(200, 256, generator=g) * torch.linspace(2, 0.1, 256)
    t_cpu, _ = gm.flat_projection(gm.covariance(z), 0.4)
    t_gpu, _ = gm.flat_projection(gm.covariance(z.cuda()), 0.4)
    assert torch.allclose(t_cpu, t_gpu.cpu(), atol=1e-5)


def test_stop_and_resume_on_cuda(tmp_path) -> None:
    whole = train(spec(precision="fp32"), out_dir=tmp_path / "a").result
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] == 150

    assert (
        train(spec(precision="fp32"), out_dir=tmp_path / "b", should_stop=stop).status == "stopped"
    )
    resumed = train(spec(precision="fp32"), out_dir=tmp_path / "b").result
    assert abs(resumed["test"]["acc"] - whole["test"]["acc"]) < 0.02
