"""What the baselines' tests share: a method on a tiny model and batch, its epoch data, a copy of
a model with its gradients, and the stop-and-resume comparison."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import torch

from igm_core import catalog
from igm_core.methods.base import EpochData, Stage, StepContext
from igm_core.models import build_model
from igm_core.spec import resolve_spec
from igm_core.trainer import CHECKPOINT, make_optimizer, train

DIMS = {"strong": 6, "weak": 5}


def make(method: str, schedule: dict | None = None, n: int = 16, **params: Any):
    """(spec, model, method, x, y): the synthetic spec's model (head 8-4) and a batch of n."""
    raw = {
        "name": "baseline",
        "dataset": {"name": "synthetic", "params": {"dims": list(DIMS.values())}},
        "method": {"name": method, "params": params},
        "model": {"head_hidden": [8, 4]},
    }
    if schedule is not None:
        raw["schedule"] = schedule
    spec = resolve_spec(raw)
    torch.manual_seed(0)
    model = build_model(
        {m: e.model_dump() for m, e in spec.model.encoders.items()},
        {m: (d,) for m, d in DIMS.items()},
        spec.model.head_hidden,
        4,
        spec.model.shared_head,
    )
    factory = catalog.METHODS.get(method).load()
    method_obj = factory(spec.method.params, model, spec, torch.device("cpu"))
    g = torch.Generator().manual_seed(1)
    x = {m: torch.randn(n, d, generator=g) for m, d in DIMS.items()}
    y = torch.randint(0, 4, (n,), generator=g)
    return spec, model, method_obj, x, y


def ctx_for(stage: Stage, epoch: int = 0, step: int = 0, log: bool = True) -> StepContext:
    return StepContext(stage, epoch, step, log, seed=5)


def epoch_data(spec: Any, data: Any, seed: int = 3) -> EpochData:
    """What the trainer hands a hook, on a dataset built here."""
    return EpochData(
        train=data.splits["train"],
        holdout=None,
        val=data.splits["val"],
        n_classes=data.n_classes,
        batch_size=spec.batch_size,
        device=torch.device("cpu"),
        seed=seed,
        make_optimizer=functools.partial(make_optimizer, spec),
    )


def with_grads(model: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {
        n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()
    }


def twin(model: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(model)


def stop_and_resume(spec: dict, stop_at: int, tmp_path: Path) -> tuple[dict, dict]:
    """A whole run, and the same run stopped before its `stop_at`-th batch and resumed; both
    results, and the final weights compared bit for bit."""
    whole = train(spec, out_dir=tmp_path / "whole")
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] == stop_at

    first = train(spec, out_dir=tmp_path / "part", should_stop=stop)
    assert first.status == "stopped" and (tmp_path / "part" / CHECKPOINT).exists()
    second = train(spec, out_dir=tmp_path / "part")
    assert second.status == "completed"
    a = torch.load(tmp_path / "whole" / "final_model.pt")["model"]
    b = torch.load(tmp_path / "part" / "final_model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert second.result["test"] == whole.result["test"]
    assert second.result["best"] == whole.result["best"]
    return whole.result, second.result
