"""Benchmark: the cost of IGM's step and stage transition, as ratios measured in one run.

For each model (an MLP pair on feature vectors, a conv pair on image-like inputs) it times, on the
same model weights and the same batch, one training step of the second modality of an alternation
(the one whose head gradients are projected) for: `alternating` (plain cross-entropy), `igm` with
sam=none, sam=standard, sam=reference, and sam=reference with an encoder perturbation. Steps are
interleaved round-robin and summarised by their median. It then times the stage transition
(covariance pass over the training set + eigh) and reports it as a fraction of a 5-epoch stage.

    python bench/bench_igm.py [--device cpu|cuda] [--rounds 30] [--compile [on|graphs]]

With --compile, each model is timed a second time with its encoders compiled (the spec's
`compile` option), and the ratios to an alternating step are printed for both.

Targets: reference <= 1.3x, standard <= 2.2x an alternating step; transition <= 5% of a stage.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch

from igm_core import catalog
from igm_core.compiled import CompiledStep
from igm_core.data.base import MultimodalData, Split
from igm_core.device import pick_autocast
from igm_core.methods.base import Stage, StepContext, stage_parameters, transition_data
from igm_core.models import build_model
from igm_core.optim import make_optimizer
from igm_core.spec import resolve_spec

MODELS = {
    # name: (shapes, encoder spec, batch size, training samples)
    "mlp": (
        {"a": (256,), "b": (256,)},
        {"name": "mlp", "params": {"hidden": [512], "out_dim": 512}},
        64,
        4096,
    ),
    "conv": (
        {"a": (1, 64, 64), "b": (3, 64, 64)},
        {"name": "conv", "params": {"channels": [32, 64, 128], "out_dim": 512}},
        32,
        1024,
    ),
    # the paper's CREMA-D model: ResNet-18 on a 1 x 257 x 188 spectrogram and one 224 x 224 frame,
    # batch 12 (as the authors); modality b (the frame) is the one whose step is timed
    "resnet18-av": (
        {"a": (1, 257, 188), "b": (1, 3, 224, 224)},
        {"name": "resnet18", "params": {}},
        12,
        240,
    ),
    # ResNet-18-sized compute on spectrogram/frame-sized inputs (the paper's regime); GPU only
    "conv-large": (
        {"a": (1, 128, 128), "b": (3, 128, 128)},
        {"name": "conv", "params": {"channels": [64, 128, 256, 512], "out_dim": 512}},
        32,
        1024,
    ),
}
VARIANTS = {
    "alternating": ("alternating", {}),
    "igm sam=none": ("igm", {"sam": "none"}),
    "igm sam=standard": ("igm", {"sam": "standard", "rho": 0.05}),
    "igm sam=reference": ("igm", {"sam": "reference", "rho": 1e-10}),
    "igm sam=reference+enc": ("igm", {"sam": "reference", "rho": 1e-10, "rho_encoder": 1e-10}),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_data(shapes: dict, n: int) -> MultimodalData:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=g)
    x = {m: torch.randn(n, *s, generator=g) for m, s in shapes.items()}
    split = Split(x, y)
    return MultimodalData({"train": split, "val": split, "test": split}, 10)


def bench_model(
    name: str, device: torch.device, rounds: int, precision: str, compile_mode: str = "off"
) -> dict:
    shapes, enc, batch, n = MODELS[name]
    data = make_data(shapes, n)
    _, autocast = pick_autocast(precision, device)
    base_spec = {
        "name": "bench",
        "dataset": {"name": "synthetic", "params": {"modalities": ["a", "b"]}},
        "schedule": {"stage_epochs": [5, 5]},
        "batch_size": batch,
        "model": {"encoders": {"a": enc, "b": enc}},
    }
    torch.manual_seed(0)
    model0 = build_model({m: enc for m in shapes}, shapes, [256, 64], 10, False).to(device)
    stages = [Stage(0, ("a",), 5), Stage(1, ("b",), 5)]
    train = data.splits["train"]
    transition = transition_data(train, batch, device)
    xs, y = next(train.batches(batch, device=device))
    runners, transition_s = {}, []
    for label, (method_name, params) in VARIANTS.items():
        spec = resolve_spec({**base_spec, "method": {"name": method_name, "params": params}})
        model = copy.deepcopy(model0)
        method = catalog.METHODS.get(method_name).load()(
            spec.method.params, model, spec, device, autocast
        )
        sync(device)
        t0 = time.perf_counter()
        method.on_stage_end(stages[0], stages[1], transition)
        sync(device)
        if method_name == "igm":
            transition_s.append(time.perf_counter() - t0)
        method.on_stage_start(stages[1])
        opt = make_optimizer(spec, stage_parameters(model, stages[1]))
        step_fn = method.step
        if compile_mode != "off":  # as the trainer does with the spec's `compile`
            step_fn = CompiledStep(method.step, model, compile_mode)
        runners[label] = (model, step_fn, opt)

    def one_step(label: str, step: int) -> float:
        _, step_fn, opt = runners[label]
        ctx = StepContext(stages[1], 0, step, log=False, seed=step)
        sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        step_fn(xs, y, ctx)
        opt.step()
        sync(device)
        return time.perf_counter() - t0

    for step in range(3):  # warm-up
        for label in runners:
            one_step(label, step)
    times: dict[str, list[float]] = {label: [] for label in runners}
    for step in range(rounds):
        for label in runners:
            times[label].append(one_step(label, step))
    med = {label: statistics.median(t) for label, t in times.items()}
    steps_per_epoch = train.num_batches(batch)
    stage_alt = 5 * steps_per_epoch * med["alternating"]
    stage_igm = 5 * steps_per_epoch * med["igm sam=standard"]
    trans = statistics.median(transition_s)
    return {
        "model": name,
        "batch": batch,
        "train_samples": n,
        "device": str(device),
        "precision": precision,
        "compile": compile_mode,
        "step_ms": {k: v * 1e3 for k, v in med.items()},
        "ratio_vs_alternating": {k: v / med["alternating"] for k, v in med.items()},
        "transition_s": trans,
        "transition_vs_5epoch_stage": {
            "alternating": trans / stage_alt,
            "igm sam=standard": trans / stage_igm,
            "igm sam=reference": trans / (5 * steps_per_epoch * med["igm sam=reference"]),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--models", help="comma-separated (default: mlp,conv; on CUDA also conv-large)"
    )
    parser.add_argument(
        "--compile",
        nargs="?",
        const="on",
        choices=["on", "graphs"],
        help="also time every step with the encoders compiled (spec `compile`), in the same "
        "run, and print the SAM/alternating ratios without and with it",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    print(f"IGM step benchmark on {where}, torch {torch.__version__}, {args.precision}")
    models = args.models or (
        "mlp,conv,conv-large,resnet18-av" if device.type == "cuda" else "mlp,conv"
    )
    for name in models.split(","):
        r = bench_model(name, device, args.rounds, args.precision)
        print(f"\n[{name}] batch {r['batch']}, {r['train_samples']} training samples")
        for label, ms in r["step_ms"].items():
            print(
                f"  {label:24s} {ms:9.2f} ms/step  "
                f"{r['ratio_vs_alternating'][label]:5.2f}x alternating"
            )
        print(
            f"  transition (cov pass + eigh) {r['transition_s'] * 1e3:.1f} ms = "
            + ", ".join(
                f"{v * 100:.2f}% of a 5-epoch {k} stage"
                for k, v in r["transition_vs_5epoch_stage"].items()
            )
        )
        print("  json " + json.dumps(r))
        if args.compile:
            c = bench_model(name, device, args.rounds, args.precision, args.compile)
            print(f"  with compile {args.compile}:")
            for label, ms in c["step_ms"].items():
                print(
                    f"  {label:24s} {ms:9.2f} ms/step  "
                    f"{c['ratio_vs_alternating'][label]:5.2f}x alternating "
                    f"(eager {r['ratio_vs_alternating'][label]:.2f}x; "
                    f"{r['step_ms'][label] / ms:.2f}x faster than eager)"
                )
            print("  json " + json.dumps(c))


if __name__ == "__main__":
    main()
