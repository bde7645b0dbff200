"""Input path throughput: the cached CREMA-D loader with frames augmented in the loader (cpu) or
on the training device (device), against the paper's model's training step, as ratios.

Generates CREMA-D-shaped data (bench_loader.make_data), writes the `igm prepare` cache, then
times training epochs through DatasetSplit.batches(device=...) for `augment: cpu` and
`augment: device` (worker start-up included, as in training). With CUDA it also times the
training step of the paper's CREMA-D model (ResNet-18 audio and visual branches, batch 12, the
visual branch's step, bench_igm's `resnet18-av`) and prints loader samples/s over step
samples/s: above 1.2 the loader keeps the GPU fed (issue 11's target). It then trains one epoch
per path with the real loader feeding the model and reports the share of the wall time the
training steps kept the device busy (CUDA events). On a CPU the device path
runs its float64 resampling products on the CPU, which is slower than PIL: the figure only shows
that the path works there; its purpose is the GPU.

    python bench/bench_input.py [--clips 96] [--epochs 2] [--batch 12] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_loader import make_data

from bench_igm import bench_model
from igm_core import catalog
from igm_core.data import av, av_meta, av_prepare
from igm_core.device import pick_autocast
from igm_core.methods.base import Stage, StepContext, stage_parameters
from igm_core.models import build_model
from igm_core.optim import make_optimizer
from igm_core.spec import resolve_spec


def loader_rate(
    root: Path, augment: str, workers: int, epochs: int, batch: int, device: torch.device
) -> float:
    """Training epochs (train split) through the real loader onto `device`; samples per second."""
    params = av_meta.CremaDParams(root=str(root), num_workers=workers, augment=augment)
    train = av.load_crema_d(params, seed=0).splits["train"]
    n, start = 0, time.perf_counter()
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(epoch)
        for xs, y in train.batches(batch, generator=gen, device=device):
            assert xs["visual"].shape[-1] == params.image_size
            n += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def epoch_busy(
    root: Path, augment: str, workers: int, batch: int, device: torch.device, precision: str
) -> tuple[float, float]:
    """One training epoch of the paper's CREMA-D model (ResNet-18 branches; the visual branch
    trains, as in bench_igm) fed by the real loader: (time the training steps kept the device
    busy, wall time), from CUDA events around each step (host timers on a CPU)."""
    params = av_meta.CremaDParams(root=str(root), num_workers=workers, augment=augment)
    data = av.load_crema_d(params, seed=0)
    train = data.splits["train"]
    shapes = train.shapes()
    enc = {"name": "resnet18", "params": {}}
    torch.manual_seed(0)
    model = build_model({m: enc for m in shapes}, shapes, [256, 64], data.n_classes, False)
    model = model.to(device)
    spec = resolve_spec(
        {
            "name": "bench-input",
            "dataset": {"name": "crema_d", "params": {"root": str(root), "augment": augment}},
            "method": {"name": "alternating"},
            "batch_size": batch,
            "model": {"encoders": {m: enc for m in shapes}},
        }
    )
    _, autocast = pick_autocast(precision, device)
    method = catalog.METHODS.get("alternating").load()(
        spec.method.params, model, spec, device, autocast
    )
    stage = Stage(1, ("visual",), 1)
    opt = make_optimizer(spec, stage_parameters(model, stage))
    cuda = device.type == "cuda"
    marks, busy = [], 0.0
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(0)
    for i, (xs, y) in enumerate(train.batches(batch, generator=gen, device=device)):
        t0 = torch.cuda.Event(enable_timing=True) if cuda else time.perf_counter()
        if cuda:
            t0.record()
        opt.zero_grad(set_to_none=True)
        method.step(xs, y, StepContext(stage, 0, i, log=False, seed=i))
        opt.step()
        if cuda:
            t1 = torch.cuda.Event(enable_timing=True)
            t1.record()
            marks.append((t0, t1))
        else:
            busy += time.perf_counter() - t0
    if cuda:
        torch.cuda.synchronize()
        busy = sum(a.elapsed_time(b) for a, b in marks) / 1e3
    return busy, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30, help="timed steps per variant (CUDA)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument(
        "--epoch", action="store_true", help="also train one epoch per path (default on CUDA)"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"input path benchmark on {where}, torch {torch.__version__}, {args.workers} workers")
    with tempfile.TemporaryDirectory() as tmp:
        root = make_data(Path(tmp) / "crema_d", args.clips)
        av_prepare.prepare("crema_d", str(root), {"num_workers": 2})
        rates = {}
        for augment in ("cpu", "device"):
            rates[augment] = loader_rate(
                root, augment, args.workers, args.epochs, args.batch, device
            )
            print(f"  loader, augment {augment:6s} {rates[augment]:9.1f} samples/s", flush=True)
        print(f"  device / cpu augmentation: {rates['device'] / rates['cpu']:.2f}x")
        if args.epoch or device.type == "cuda":
            for augment in ("cpu", "device"):
                busy, wall = epoch_busy(
                    root, augment, args.workers, args.batch, device, args.precision
                )
                print(
                    f"  one epoch, augment {augment:6s} steps busy {busy:7.2f} s of {wall:7.2f} s "
                    f"wall: utilisation {busy / wall:6.1%} (target > 90%)",
                    flush=True,
                )
    if device.type != "cuda":
        print("  (no CUDA device: the step's samples/s and the loader/step ratio need one)")
        return 0
    r = bench_model("resnet18-av", device, args.rounds, "fp32")
    for label in ("alternating", "igm sam=reference"):
        step_rate = r["batch"] / (r["step_ms"][label] / 1e3)
        print(f"  step {label:18s} {step_rate:9.1f} samples/s (batch {r['batch']})")
        for augment, rate in rates.items():
            print(f"    loader (augment {augment}) / step: {rate / step_rate:.2f}x (target >= 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
