"""Benchmark: the cost of IGM's step and stage transition, as ratios measured in one run.

For each model (an MLP pair on feature vectors, a conv pair on image-like inputs) it times, on the
same model weights and the same batch, one training step of the second modality of an alternation
(the one whose head gradients are projected) for: `alternating` (plain cross-entropy), `igm` with
sam=none, sam=standard, sam=reference, and sam=reference with an encoder perturbation. Steps are
interleaved round-robin and summarised by their median. It then times the stage transition
(covariance pass over the training set + eigh) and reports it as a fraction of a 5-epoch stage.

    python bench/bench_igm.py [--device cpu|cuda] [--rounds 30] [--compile [on|graphs]]
        [--models resnet18-av] [--variants "alternating,igm sam=reference+enc"]
        [--reference-dir DIR [--reference-transition]]

With --compile, each model is timed a second time with its encoders compiled (the spec's
`compile` option), and the ratios to an alternating step are printed for both.

With --reference-dir DIR (a checkout of the authors' code, njustkmg/IJCAI25-IGM, that the user
provides; nothing of it is in this project, see authors_step.py), the resnet18-av model's rounds
also time the authors' IGM step (their train_CREMA.py loop body, their model) in the same process,
interleaved with these, and every step is also printed as a ratio to theirs. With
--reference-transition their stage transition (compute_P_matrix) is timed too, and both loops are
projected over the paper's CREMA-D schedule.

Targets: reference <= 1.3x, standard <= 2.2x an alternating step; transition <= 5% of a stage.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
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


# the paper's CREMA-D run (the authors' crema.json): 6,698 training clips in batches of 12 with
# the last partial batch dropped, 12 stages of 25 and 50 epochs, a transition before stages 2-12
PAPER_RUN = {"steps_per_epoch": 6698 // 12, "epochs": 6 * (25 + 50), "transitions": 11}


def bench_model(
    name: str,
    device: torch.device,
    rounds: int,
    precision: str,
    compile_mode: str = "off",
    variants: list[str] | None = None,
    authors: object | None = None,
    warmup: int = 3,
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
    chosen = {k: v for k, v in VARIANTS.items() if variants is None or k in variants}
    for label, (method_name, params) in chosen.items():
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
        if label == "authors":
            return authors.steps(1)[0]
        _, step_fn, opt = runners[label]
        ctx = StepContext(stages[1], 0, step, log=False, seed=step)
        sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        step_fn(xs, y, ctx)
        opt.step()
        sync(device)
        return time.perf_counter() - t0

    labels = [*runners, *(["authors"] if authors is not None else [])]
    for step in range(warmup):
        for label in labels:
            one_step(label, step)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for step in range(rounds):
        for label in labels:
            times[label].append(one_step(label, step))
    med = {label: statistics.median(t) for label, t in times.items()}
    steps_per_epoch = train.num_batches(batch)
    stage = {
        k: 5 * steps_per_epoch * med[k] for k in med if k.startswith("igm") or k == "alternating"
    }
    trans = statistics.median(transition_s) if transition_s else float("nan")
    result = {
        "model": name,
        "batch": batch,
        "train_samples": n,
        "device": str(device),
        "precision": precision,
        "compile": compile_mode,
        "load": os.getloadavg(),
        "step_ms": {k: v * 1e3 for k, v in med.items()},
        "step_ms_spread": {k: [min(t) * 1e3, max(t) * 1e3] for k, t in times.items()},
        "ratio_vs_alternating": (
            {k: v / med["alternating"] for k, v in med.items()} if "alternating" in med else {}
        ),
        "transition_s": trans,
        "transition_batches": -(-n // batch),
        "transition_vs_5epoch_stage": {k: trans / v for k, v in stage.items()},
    }
    if authors is not None:
        result["ratio_vs_authors"] = {k: v / med["authors"] for k, v in med.items()}
    return result


def project_paper_run(r: dict, authors_transition: tuple[float, float]) -> dict:
    """Seconds of the paper's CREMA-D run (steps and transitions; no evaluation, no data
    loading) for each variant and for the authors' loop, from the per-step medians and the
    transitions measured here. A transition passes once over the training set: ours costs its
    per-batch time; theirs a fixed part (23 SVDs) plus its per-batch covariance pass."""
    steps = PAPER_RUN["steps_per_epoch"] * PAPER_RUN["epochs"]
    ours_trans = r["transition_s"] / r["transition_batches"] * PAPER_RUN["steps_per_epoch"]
    fixed, per_batch = authors_transition
    theirs_trans = fixed + per_batch * PAPER_RUN["steps_per_epoch"]
    run = {
        k: steps * ms / 1e3
        + PAPER_RUN["transitions"] * (theirs_trans if k == "authors" else ours_trans)
        for k, ms in r["step_ms"].items()
    }
    return {
        "steps": steps,
        "transition_s": {"ours": ours_trans, "authors": theirs_trans},
        "run_h": {k: v / 3600 for k, v in run.items()},
        "authors_over": {k: run["authors"] / v for k, v in run.items() if k != "authors"},
    }


def print_result(r: dict) -> None:
    print(f"  load average {' '.join(f'{v:.2f}' for v in r['load'])}")
    for label, ms in r["step_ms"].items():
        lo, hi = r["step_ms_spread"][label]
        line = f"  {label:24s} {ms:9.2f} ms/step (min {lo:.1f}, max {hi:.1f})"
        if label in r["ratio_vs_alternating"]:
            line += f"  {r['ratio_vs_alternating'][label]:5.2f}x alternating"
        if "ratio_vs_authors" in r:
            line += f"  {r['ratio_vs_authors'][label]:5.3f}x the authors' step"
        print(line)
    print(
        f"  transition (cov pass + eigh, {r['transition_batches']} batches) "
        f"{r['transition_s'] * 1e3:.1f} ms = "
        + ", ".join(
            f"{v * 100:.2f}% of a 5-epoch {k} stage"
            for k, v in r["transition_vs_5epoch_stage"].items()
        )
    )


def authors_transition(authors: object) -> tuple[float, float]:
    """Their compute_P_matrix over one batch: (fixed seconds, seconds per batch)."""
    fixed, per_batch = authors.transition(1)
    print(
        f"  authors' transition over 1 batch: {per_batch:.1f} s of covariance pass, "
        f"{fixed:.1f} s of SVDs (23 layers)"
    )
    return fixed, per_batch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument(
        "--models", help="comma-separated (default: mlp,conv; on CUDA also conv-large)"
    )
    parser.add_argument(
        "--variants", help=f"comma-separated, of: {', '.join(VARIANTS)} (default: all)"
    )
    parser.add_argument(
        "--compile",
        nargs="?",
        const="on",
        choices=["on", "graphs"],
        help="also time every step with the encoders compiled (spec `compile`), in the same "
        "run, and print the SAM/alternating ratios without and with it",
    )
    parser.add_argument(
        "--reference-dir",
        help="a checkout of the authors' code (njustkmg/IJCAI25-IGM): time their IGM step on "
        "the resnet18-av model in the same run",
    )
    parser.add_argument(
        "--reference-transition",
        action="store_true",
        help="with --reference-dir: also time their stage transition and project both loops "
        "over the paper's CREMA-D run",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
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
    variants = args.variants.split(",") if args.variants else None
    if variants and (unknown := set(variants) - set(VARIANTS)):
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {list(VARIANTS)}")
    reference = None
    if args.reference_dir:
        import authors_step

        reference = authors_step.load(args.reference_dir)
    for name in models.split(","):
        authors = None
        if reference is not None and name == "resnet18-av":
            authors = authors_step.AuthorsStep(reference, device, MODELS[name][2])
        r = bench_model(
            name, device, args.rounds, args.precision, "off", variants, authors, args.warmup
        )
        print(f"\n[{name}] batch {r['batch']}, {r['train_samples']} training samples")
        print_result(r)
        if authors is not None and args.reference_transition:
            r["projection"] = project_paper_run(r, authors_transition(authors))
            proj = r["projection"]
            print(f"  paper CREMA-D run ({proj['steps']} steps, 11 transitions; no evaluation):")
            for label, hours in proj["run_h"].items():
                over = proj["authors_over"].get(label)
                print(
                    f"    {label:24s} {hours:8.1f} h"
                    + (f"  the authors' loop takes {over:.2f}x this" if over else "")
                )
        print("  json " + json.dumps(r))
        if args.compile:
            c = bench_model(
                name, device, args.rounds, args.precision, args.compile, variants, None, args.warmup
            )
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
