"""The image-text step of the IGM paper's model, and its loader: how many images per second.

The model is the paper's (ResNet-50 with its 1000-way fc and a Linear to 768, BERT-base-shaped:
12 layers, 768 wide, 12 heads, vocabulary 30,522; heads 256-64-C), built here with random
weights: BERT is saved once with save_pretrained into a temporary folder and loaded by the `bert`
encoder as a run loads it. One training step at batch 12 is timed for each modality (IGM trains
one modality per stage) and method: `alternating` (plain cross-entropy) and `igm` with the
authors' loss (`sam: reference`: mixup on images, the perturbed-head term) and the projection of
the head's gradients in place (a second stage). Captions of 30 tokens (padded to 50).

The loader is timed on generated Sarcasm-layout data (tweet-sized JPEGs of 600 x 450 with noise,
captions of 20 words): full training epochs through the real DatasetSplit (random crops, flips
and RandomAugment(2, 7)), decoding every JPEG and reading the `igm prepare` cache, with 0 and 2
DataLoader workers. The ratio "loader / step" says whether the model would wait for data.

    .venv/bin/python bench/bench_image_text.py [--device cpu|cuda] [--rounds 3] [--pairs 96]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from igm_core import catalog
from igm_core.data import examples_image_text as ex
from igm_core.data import image_text, image_text_meta, image_text_prepare
from igm_core.methods.base import Stage, StepContext
from igm_core.models import MultimodalModel
from igm_core.resnet50 import ResNet50Encoder
from igm_core.spec import resolve_spec
from igm_core.text_encoders import BertEncoder

BATCH, TOKENS, CAPTION = 12, 50, 30


def bert_base(folder: Path) -> Path:
    from transformers import BertConfig, BertModel

    from igm_core.hf import quiet

    config = BertConfig()  # the defaults are BERT-base's
    with torch.random.fork_rng(devices=[]), quiet():
        torch.manual_seed(0)
        BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))
    return folder


def build(folder: Path, device: torch.device) -> tuple[MultimodalModel, dict]:
    """The paper's model and, over it, the two methods timed."""
    torch.manual_seed(0)
    encoders = {
        "text": BertEncoder((2, TOKENS), str(folder)),
        "image": ResNet50Encoder((3, 224, 224), proj_dim=768),
    }
    model = MultimodalModel(encoders, [256, 64], 2).to(device)
    methods = {}
    for label, method in METHODS.items():
        spec = resolve_spec(
            {
                "name": "bench",
                "dataset": {"name": "synthetic", "params": {"modalities": ["text", "image"]}},
                "method": method,
                "schedule": {"stage_epochs": [1, 1, 1], "modality_order": ["text", "image"]},
            }
        )
        factory = catalog.METHODS.get(method["name"]).load()
        methods[label] = factory(spec.method.params, model, spec, device)
    return model, methods


METHODS = {
    "alternating": {"name": "alternating"},
    "igm reference, projected": {"name": "igm", "params": {"sam": "reference"}},
}


def batch(device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.zeros(BATCH, 2, TOKENS, dtype=torch.long)
    ids[:, 0, :CAPTION] = torch.randint(1000, 30000, (BATCH, CAPTION), generator=g)
    ids[:, 1, :CAPTION] = 1
    images = torch.randn(BATCH, 3, 224, 224, generator=g)
    y = torch.randint(0, 2, (BATCH,), generator=g)
    return {"text": ids.to(device), "image": images.to(device)}, y.to(device)


def one_step(model, method, m: str, xs, y, device, r: int) -> float:
    """Seconds of one training step of modality m (gradients, projection, Adam)."""
    projected = hasattr(method, "proj")  # IGM: a second stage's projection
    other = "image" if m == "text" else "text"
    if projected:
        method.proj = {
            n: torch.eye(layer.weight.shape[1], device=device) * 0.9
            for n, layer in model.branch_modules(other).items()
            if n.startswith("head.")
        }
        method.source = other
    stage = Stage(1 if projected else 0, (m,), 1)
    method.on_stage_start(stage)
    optimizer = torch.optim.Adam(model.branch_parameters(m), lr=1e-5, weight_decay=1e-4)
    ctx = StepContext(stage, 0, r, log=False, seed=r)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    method.step({m: xs[m]}, y, ctx)
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_steps(model, methods: dict, xs, y, device, rounds: int) -> dict:
    """Median seconds per (method, modality), the rounds interleaved so that a change in the
    machine's load touches every case alike; one warm-up round."""
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds + 1):
        for label, method in methods.items():
            for m in ("text", "image"):
                t = one_step(model, method, m, xs, y, device, r)
                if r:
                    times.setdefault((label, m), []).append(t)
    return {k: statistics.median(v) for k, v in times.items()}


def make_pairs(root: Path, n: int) -> dict:
    """Sarcasm layout: n noisy 600 x 450 JPEGs (train 2/3, val and test 1/6 each), captions."""
    rng = np.random.default_rng(0)
    words = ex.vocabulary()[5:]
    split_of = ["train"] * 4 + ["val", "test"]
    rows = {s: [] for s in image_text_meta.SPLITS}
    (root / "images").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        img = rng.integers(0, 256, (450, 600, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "images" / f"{k:05d}.jpg", quality=85)
        text = " ".join(rng.choice(words, 20))
        rows[split_of[k % 6]].append({"image": f"{k:05d}.jpg", "text": text, "label": k % 2})
    (root / "annotations").mkdir(exist_ok=True)
    for split, items in rows.items():
        name = image_text_meta.FILES["sarcasm"][split]
        (root / "annotations" / name).write_text(json.dumps(items))
    bert = ex.write_tiny_bert(root / "bert-tiny")
    return {"root": str(root), "tokenizer": str(bert), "max_tokens": TOKENS}


def loader_rate(params: dict, cache: bool, workers: int, epochs: int) -> float:
    p = image_text_meta.SarcasmParams(**params, cache=cache, num_workers=workers)
    data = image_text.build("sarcasm", p)
    assert (data.info["cache"]["train"]["images"] is not None) == cache
    split, n = data.splits["train"], 0
    start = time.perf_counter()
    for e in range(epochs):
        for xs, _ in split.batches(BATCH, generator=torch.Generator().manual_seed(e)):
            n += xs["image"].shape[0]
    return n / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workers", default="0,2")
    args = ap.parse_args()
    device = torch.device(args.device)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {device}" + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = bert_base(Path(tmp) / "bert-base")
        xs, y = batch(device)
        print(
            f"\nstep at batch {BATCH} (captions of {CAPTION} tokens, images 224 x 224), median "
            f"of {args.rounds} interleaved rounds:"
        )
        model, methods = build(folder, device)
        steps = time_steps(model, methods, xs, y, device, args.rounds)
        for (label, m), t in steps.items():
            ratio = t / steps[("alternating", m)]
            print(
                f"  {label:26s} {m:5s} {t * 1000:9.1f} ms  {BATCH / t:7.2f} pairs/s  {ratio:.2f}x"
            )
        del model, methods
        root = Path(tmp) / "sarcasm"
        params = make_pairs(root, args.pairs)
        image_text_prepare.prepare(
            "sarcasm", params["root"], {k: v for k, v in params.items() if k != "root"}
        )
        print(
            f"\nloader, training epochs of {len(range(0, args.pairs, 6)) * 4} pairs "
            f"(600 x 450 JPEGs, crops, flips, RandomAugment(2, 7)):"
        )
        image_step = steps[("alternating", "image")]
        for workers in [int(w) for w in args.workers.split(",")]:
            rates = {c: loader_rate(params, c, workers, args.epochs) for c in (False, True)}
            need = BATCH / image_step
            print(
                f"  workers {workers}: decoding {rates[False]:7.1f} images/s, cache "
                f"{rates[True]:7.1f} images/s ({rates[True] / rates[False]:.1f}x); the image "
                f"step consumes {need:.1f} images/s: loader/step {rates[False] / need:.1f}x "
                f"decoding, {rates[True] / need:.1f}x cached"
            )
    print(f"\nload after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
