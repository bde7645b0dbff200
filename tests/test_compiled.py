"""`compile: on` trains with the same losses as eager, and a compiler failure falls back to eager.

Tolerance: relative 1e-4 per logged loss over a few steps (inductor's fused kernels may sum in
another order than eager; float32). Inductor on the CPU needs a C++ compiler (g++).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch

from igm_core.compiled import CompiledStep
from igm_core.models import build_model
from igm_core.spec import resolve_spec
from igm_core.tracking.jsonl import JsonlTracker, read_jsonl_metrics
from igm_core.trainer import train

SPEC = {
    "name": "compiled",
    "dataset": {"name": "synthetic", "params": {"n_train": 48, "n_val": 16, "n_test": 16}},
    "method": {"name": "igm", "params": {"sam": "reference"}},
    "schedule": {"stage_epochs": [1, 1]},
    "batch_size": 16,
    "log_every": 1,
    "device": "cpu",
}


def _losses(tmp: Path, **extra: str) -> dict[int, float]:
    train({**SPEC, **extra}, out_dir=tmp, tracker=JsonlTracker(tmp / "m.jsonl"))
    history = read_jsonl_metrics(tmp / "m.jsonl")
    return {
        step: value
        for key, points in history.items()
        if key.startswith("train/") and key.endswith("/loss")
        for step, value in points
    }


@pytest.mark.slow  # inductor compiles every shape: about 100 s on 2 loaded cores
@pytest.mark.skipif(
    shutil.which("g++") is None,
    reason="needs g++ for torch.compile's CPU kernels: apt-get install -y g++",
)
def test_compiled_step_gives_the_eager_losses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch._dynamo.reset()
    eager = _losses(tmp_path / "eager")
    with caplog.at_level(logging.WARNING, logger="igm_core.compiled"):
        compiled = _losses(tmp_path / "compiled", compile="on")
    assert "failed" not in caplog.text  # compiled for real, no fallback
    assert len(eager) == 6 and eager.keys() == compiled.keys()
    for step, value in eager.items():
        assert compiled[step] == pytest.approx(value, rel=1e-4), step
    assert resolve_spec(SPEC).hash() == resolve_spec({**SPEC, "compile": "off"}).hash()


def test_a_compiler_failure_falls_back_to_eager(caplog: pytest.LogCaptureFixture) -> None:
    def broken(gm, example_inputs):
        raise RuntimeError("no kernels today")

    def make() -> torch.nn.Module:
        torch.manual_seed(0)
        enc = {"name": "mlp", "params": {"hidden": [16], "out_dim": 8}}
        return build_model({"a": enc}, {"a": (6,)}, [8], 3, False)

    x, y = torch.randn(5, 6), torch.tensor([0, 1, 2, 0, 1])
    losses = {}
    for kind in ("eager", "broken"):
        model = make()

        def step(model=model) -> torch.Tensor:
            loss = torch.nn.functional.cross_entropy(model.logits("a", x), y)
            loss.backward()
            return loss.detach()

        fn = CompiledStep(step, model, "on", backend=broken) if kind == "broken" else step
        with caplog.at_level(logging.WARNING, logger="igm_core.compiled"):
            losses[kind] = [fn(), fn()]
        grads = [p.grad.clone() for p in model.parameters()]
        losses[kind].append(grads)
        if kind == "broken":
            assert not fn.active
    assert torch.equal(losses["eager"][0], losses["broken"][0])
    for a, b in zip(losses["eager"][2], losses["broken"][2], strict=True):
        assert torch.equal(a, b)  # the failed attempt left no gradient behind
    assert "compile on failed" in caplog.text and "eager" in caplog.text
