"""The image-text parts of `igm prepare` and `igm export-features` (sarcasm, twitter2015).

    igm prepare sarcasm --root DIR --param tokenizer=BERT_DIR
        checks the folder (every file, image and label; the first problem is named with its file
        and row) and caches the decoded images and tokenised captions of every split.
    igm export-features sarcasm --param root=DIR --param tokenizer=BERT_DIR --bert BERT_DIR \\
        --resnet50 resnet50.pth --out OUT
        runs the frozen encoders once over every split (evaluation transforms) and writes
        OUT/{train,val,test}.npz in the `features` layout: `label`, `text` (BERT's [CLS] vector)
        and `image` (ResNet-50's 1000 ImageNet logits, or its 2048 pooled features with
        --image-output pool), plus OUT/features.json saying how they were made. Heads trained
        on them run in minutes on a CPU.
cli.py and prepare_cli.py register these; the logic lives here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from igm_core.data.image_text_meta import IMAGE, PARAMS, TEXT
from igm_core.spec import SpecError, apply_overrides

DATASETS = tuple(PARAMS)
console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)


def _fail(message: str) -> int:
    console.print(Text("error: ", style="bold red") + Text(message))
    return 2


class SplitBars:
    """A progress bar per split, added when the split's first `unit` is done."""

    def __init__(self, quiet: bool, unit: str) -> None:
        self.unit = unit
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=quiet,
        )
        self.tasks: dict[str, Any] = {}

    def update(self, split: str, done: int, total: int) -> None:
        if split not in self.tasks:
            self.tasks[split] = self.progress.add_task(f"{split} {self.unit}", total=total)
        self.progress.update(self.tasks[split], completed=done)


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def run_prepare(args: argparse.Namespace) -> int:
    """`igm prepare sarcasm|twitter2015`: returns the exit status."""
    try:
        params: dict[str, Any] = apply_overrides({}, args.param or [])
        bars = SplitBars(args.quiet, "images")
        from igm_core.data import image_text_prepare  # torch: only when preparing

        with bars.progress:
            reports = image_text_prepare.prepare(
                args.dataset, args.root, params, progress=bars.update
            )
    except (SpecError, ValidationError, OSError, ValueError) as err:
        return _fail(_message(err))
    table = Table(title=f"igm prepare {args.dataset}")
    for col in ("split", "pairs", "status", "size", "images", "tokens"):
        table.add_column(col, overflow="fold")
    for r in reports:
        status = "written" if r.written else "up to date"
        table.add_row(
            r.split, str(r.pairs), status, _mib(r.bytes), str(r.images_path), str(r.tokens_path)
        )
    out_console.print(table)
    return 0


def _message(err: Exception) -> str:
    if isinstance(err, SpecError):
        return "; ".join(f"{k}: {m}" for k, m in err.errors)
    return str(err)


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `igm export-features` takes for the image-text datasets."""
    group = parser.add_argument_group("image-text datasets (sarcasm, twitter2015)")
    group.add_argument("--bert", metavar="DIR", help="BERT folder (default: the tokenizer's)")
    group.add_argument("--resnet50", metavar="FILE", help="torchvision-format ResNet-50 weights")
    group.add_argument(
        "--image-output",
        choices=["fc", "pool"],
        default="fc",
        help="the 1000 ImageNet logits (fc, the authors' image features) or the 2048 pooled ones",
    )
    group.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    group.add_argument("--batch-size", type=int, default=64)
    group.add_argument("--quiet", action="store_true", help="no progress bar")


def run_export(args: argparse.Namespace) -> int:
    """`igm export-features sarcasm|twitter2015`: returns the exit status."""
    try:
        from igm_core.data import image_text_export  # torch and transformers

        raw = apply_overrides({}, args.param or [])
        p = PARAMS[args.dataset].model_validate(raw)
        if not args.resnet50:
            console.print("warning: no --resnet50 weights: the image vectors come from random ones")
        bars = SplitBars(args.quiet, "pairs")
        with bars.progress:
            summary = image_text_export.export(
                args.dataset,
                p,
                Path(args.out),
                bert=args.bert or p.tokenizer,
                resnet50=args.resnet50,
                image_output=args.image_output,
                device=args.device,
                batch_size=max(1, args.batch_size),
                progress=bars.update,
            )
    except (SpecError, ValidationError, OSError, ValueError, RuntimeError) as err:
        return _fail(_message(err))
    sizes = ", ".join(f"{k} {v}" for k, v in summary["sizes"].items())
    dims = f"{TEXT} {summary['dims'][TEXT]}-d, {IMAGE} {summary['dims'][IMAGE]}-d"
    out_console.print(
        f"wrote {args.out}/{{train,val,test}}.npz ({sizes}; {dims}) and features.json",
        highlight=False,
    )
    spec = json.dumps({"name": "features", "params": {"root": args.out}})
    out_console.print(f"train heads on them with dataset: {spec}", highlight=False)
    return 0
