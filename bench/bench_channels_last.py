"""Benchmark: the conv encoder's layers in channels-last against the default (contiguous) layout.

igm_core/models.py keeps ConvEncoder channels-last; this measures why, on the README's conv model
(3 x 64 x 64 inputs, channels 32-64-128, batch 32): a forward and backward pass of its conv,
batch-norm and pooling layers, the same weights and batch in each layout, interleaved round-robin
and summarised by the median, so the ratio comes from one run.

    python bench/bench_channels_last.py [--device cpu|cuda] [--rounds 30] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch

from igm_core.models import ConvEncoder


def time_pass(net: torch.nn.Module, x: torch.Tensor, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    net(x).sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    encoder = ConvEncoder((3, 64, 64), [32, 64, 128], 512).to(device)
    layouts = {
        "channels_last": (encoder.net, torch.channels_last),
        "contiguous": (
            copy.deepcopy(encoder.net).to(memory_format=torch.contiguous_format),
            torch.contiguous_format,
        ),
    }
    batch = torch.randn(args.batch, 3, 64, 64, device=device)
    inputs = {k: batch.contiguous(memory_format=fmt) for k, (_, fmt) in layouts.items()}
    times: dict[str, list[float]] = {k: [] for k in layouts}
    for r in range(args.rounds + 3):  # 3 warm-up rounds, not counted
        for name, (net, _) in layouts.items():
            elapsed = time_pass(net, inputs[name], device)
            if r >= 3:
                times[name].append(elapsed)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        json.dumps(
            {
                "device": str(device),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "batch": args.batch,
                "rounds": args.rounds,
                "median_ms": {k: round(v * 1e3, 2) for k, v in med.items()},
                "contiguous_over_channels_last": round(med["contiguous"] / med["channels_last"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
