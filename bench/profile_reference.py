"""Profile one reference-SAM step against one alternating step (device-side view).

    python bench/profile_reference.py [--device cuda] [--model conv-large]

Prints the ops that take the most time, the top-level aten ops (launches) per step, CUDA kernels
per step on a GPU, and the count of host-device synchronisations.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch.profiler import ProfilerActivity, profile

from bench_igm import MODELS, make_data
from igm_core import catalog
from igm_core.methods.base import Stage, StepContext, stage_parameters
from igm_core.models import build_model
from igm_core.optim import make_optimizer
from igm_core.spec import resolve_spec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="conv-large")
    args = parser.parse_args()
    device = torch.device(args.device)
    shapes, enc, batch, _ = MODELS[args.model]
    xs, y = next(make_data(shapes, batch).splits["train"].batches(batch, device=device))
    model0 = build_model({m: enc for m in shapes}, shapes, [256, 64], 10, False).to(device)
    stage = Stage(1, ("b",), 5)
    for name, params in (("alternating", {}), ("igm", {"sam": "reference"})):
        spec = resolve_spec(
            {
                "name": "p",
                "dataset": {"name": "synthetic", "params": {"modalities": ["a", "b"]}},
                "method": {"name": name, "params": params},
                "model": {"encoders": {"a": enc, "b": enc}},
            }
        )
        model = copy.deepcopy(model0)
        method = catalog.METHODS.get(name).load()(spec.method.params, model, spec, device)
        opt = make_optimizer(spec, stage_parameters(model, stage))

        def step(i: int, method=method, opt=opt) -> None:
            opt.zero_grad(set_to_none=True)
            method.step(xs, y, StepContext(stage, 0, i, False, i))
            opt.step()

        for i in range(5):
            step(i)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            for i in range(10):
                step(i)
            if device.type == "cuda":
                torch.cuda.synchronize()
        print(f"==== {name} {params}")
        sort = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
        print(prof.key_averages().table(sort_by=sort, row_limit=12))
        # launches: top-level aten ops (what each step asks the device to run), per step
        top = [e for e in prof.events() if e.name.startswith("aten::") and e.cpu_parent is None]
        kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
        print(f"top-level aten ops per step: {len(top) / 10:.1f}", end="")
        print(f", CUDA kernels per step: {len(kernels) / 10:.1f}" if kernels else "")
        syncs = [e for e in prof.key_averages() if "Synchronize" in e.key or "Memcpy" in e.key]
        print("syncs/copies:", [(e.key, e.count) for e in syncs])


if __name__ == "__main__":
    main()
