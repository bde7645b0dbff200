"""`igm compare`: seed statistics and paired differences of results, from files or from a server.

- `igm compare runs/*/result.json`: every argument an existing file, read here (igm_core.cli);
- `igm compare ID [ID ...]`, `--tag T`, `--sweep S`: experiments (ids or unique prefixes), the
  experiments carrying a tag, or a sweep's points, reported by the server (GET /compare, through
  --url, IGM_URL or the server `igm login` / `igm up` saved) and shown as the local command shows
  files. The filters combine: experiments matching all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from igm_client import IGMClient, IGMClientError
from igm_client.format import PIPE_WIDTH
from igm_client.login import where
from igm_core.cli import main as local_main
from igm_core.compare import METRICS, render

DESCRIPTION = __doc__.split("\n\n")[0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igm compare", description=__doc__)
    parser.add_argument(
        "items", nargs="*", metavar="RESULT.json|ID", help="result.json files, or experiment ids"
    )
    parser.add_argument("--tag", help="the experiments with this tag (on the server)")
    parser.add_argument("--sweep", metavar="SWEEP_ID", help="a sweep's points (on the server)")
    parser.add_argument(
        "--metric", choices=METRICS, default="acc", help="fused test metric of the paired diffs"
    )
    parser.add_argument(
        "--baseline",
        metavar="LABEL",
        help="the group every other is paired with: a label, or a method one group has "
        "(default: joint training where present)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--url", help="the server (default: IGM_URL, else the saved one)")
    return parser


def _is_path(item: str) -> bool:
    return Path(item).exists() or "/" in item or item.endswith(".json")


def main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as err:  # --help, or a usage error argparse has printed
        return err.code if isinstance(err.code, int) else int(err.code is not None)
    paths = [item for item in args.items if _is_path(item)]
    if paths and (len(paths) < len(args.items) or args.tag or args.sweep):
        return _fail("give either result.json files or experiment ids, --tag and --sweep")
    if paths:
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            return _fail(f"no such file: {missing[0]}")
        baseline = ["--baseline", args.baseline] if args.baseline is not None else []
        return local_main(
            ["compare", *paths, "--metric", args.metric, *baseline, *(["--json"] * args.json)]
        )
    if not (args.items or args.tag or args.sweep):
        return _fail("give result.json files, experiment ids, --tag or --sweep")
    return _remote(args)


def _remote(args: argparse.Namespace) -> int:
    try:
        with IGMClient(args.url) as client:
            try:
                report = client.compare(
                    args.items,
                    tag=args.tag,
                    sweep=args.sweep,
                    metric=args.metric,
                    baseline=args.baseline,
                )
            except IGMClientError as err:
                if err.status_code == 0:
                    return _fail(f"{err}\n(the server URL is {where(client.settings)})", 1)
                raise
    except IGMClientError as err:
        return _fail(str(err), 2 if 400 <= err.status_code < 500 else 1)
    except ValueError as err:  # a malformed URL or config file
        return _fail(str(err))
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    out, err = Console(), Console(stderr=True)
    if not out.is_terminal:  # a pipe or a file: tables are not cut to 80 columns
        out = Console(width=PIPE_WIDTH)
    if report.get("not_compared"):
        err.print(
            "left out (not found, or not succeeded): " + ", ".join(report["not_compared"]),
            markup=False,
            highlight=False,
        )
    if not report["groups"]:
        hint = "; a sweep id goes with --sweep" if args.items and not args.sweep else ""
        return _fail(f"nothing to compare: no succeeded experiment matches{hint}", 1)
    render.print_report(report, out, err)
    return 0


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code
