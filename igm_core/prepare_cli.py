"""`igm prepare DATASET --root PATH [--param key=value ...]`: decode a clip dataset once.

Writes the memory-mappable cache of av_cache (spectrograms and resized frames per split) under
ROOT/.igm_cache/, which the `crema_d` and `kinetics_sounds` datasets then read instead of decoding
WAV and JPEG files every epoch. An up-to-date cache is left as it is.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from igm_core import image_text_cli
from igm_core.data import av_meta
from igm_core.spec import SpecError, apply_overrides

console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)


def build_parser(prog: str = "igm prepare") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="decode an audio-visual dataset once into its cache"
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments, for embedding as a subcommand of `igm`."""
    parser.add_argument("dataset", choices=[*av_meta.WAV_DIRS, *image_text_cli.DATASETS])
    parser.add_argument("--root", required=True, help="the dataset folder (annotations/, ...)")
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="a dataset parameter that changes the cache, e.g. image_size=224 (repeatable)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # unreachable; keeps type checkers content


def _summary(reports: list[Any]) -> None:
    table = Table(title="igm prepare")
    for col in ("split", "clips", "frames", "status", "size"):
        table.add_column(col, justify="right" if col in ("clips", "frames", "size") else "left")
    # fold rather than truncate: the path is what a user needs to find (or delete) the cache
    table.add_column("cache", overflow="fold")
    for r in reports:
        status = "written" if r.written else "up to date"
        table.add_row(r.split, str(r.clips), str(r.frames), status, _human(r.bytes), str(r.path))
    out_console.print(table)
    out_console.print(f"total {_human(sum(r.bytes for r in reports))}", highlight=False)


def run(args: argparse.Namespace) -> int:
    """Prepare the cache for parsed arguments; returns the exit status."""
    if args.dataset in image_text_cli.DATASETS:
        return image_text_cli.run_prepare(args)
    try:
        params: dict[str, Any] = apply_overrides({}, args.param or [])
        bars = image_text_cli.SplitBars(args.quiet, "clips")
        from igm_core.data import av_prepare  # torch: only when preparing

        with bars.progress:
            reports = av_prepare.prepare(args.dataset, args.root, params, progress=bars.update)
    except SpecError as err:
        return _fail("; ".join(f"{k}: {m}" for k, m in err.errors))
    except ValidationError as err:
        return _fail(str(err))
    except (OSError, ValueError) as err:  # data files: missing, unreadable, mislabelled
        return _fail(str(err))
    _summary(reports)
    return 0


def _fail(message: str) -> int:
    console.print(Text("error: ", style="bold red") + Text(message))
    return 2


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
