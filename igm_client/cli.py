"""The `igm` console entry point: service commands here, local commands in igm_core.cli.

submit, ls, show, cancel, retry, rm and logs talk to an IGM Lab server (--url, default
http://127.0.0.1:8000) through IGMClient; `up` and `db` start the embedded service and migrate its
database; train, validate, methods, datasets, encoders and export-features run here, no server
needed. Exit codes: 0 ok; 1 server unreachable, server error or failed run; 2 bad request or spec;
3 cancelled run; 130 interrupted while waiting.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from igm_client.client import DEFAULT_URL, FINISHED, IGMClient, IGMClientError

console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)

LOCAL_COMMANDS = {
    "train": "train an experiment spec here, without a server",
    "validate": "print the resolved spec",
    "methods": "list the registered methods",
    "datasets": "list the registered datasets",
    "encoders": "list the registered encoders",
    "export-features": "write a built-in dataset as train/val/test.npz",
    "compare": "seed statistics and paired comparisons of result.json files",
    "prepare": "decode an audio-visual dataset once into its cache",
}
STATUS_STYLE = {"queued": "yellow", "running": "cyan", "succeeded": "green", "failed": "red"}
EXIT_BY_STATUS = {"succeeded": 0, "failed": 1, "cancelled": 3}
TRACEBACK_LINES = 15
ID_LEN = 32
PIPE_WIDTH = 160  # tables written to a pipe or file are not cut to 80 columns


def _fail(message: str, code: int) -> int:
    console.print(Text("error: ", style="bold red") + Text(message))
    return code


def _say(text: str, *, err: bool = False) -> None:
    """Plain text: no markup, no highlighting (names and messages come from elsewhere)."""
    (console if err else out_console).print(text, highlight=False, markup=False)


def _styled(status: str | None) -> Text:
    return Text(status or "-", style=STATUS_STYLE.get(status or "", "magenta"))


def _print_table(table: Table) -> None:
    target = out_console if out_console.is_terminal else Console(width=PIPE_WIDTH)
    target.print(table)


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _when(stamp: str | None) -> str:
    if not stamp:
        return "-"
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return stamp


def progress_text(exp: dict[str, Any]) -> str:
    """One line: status, attempt, stage/epoch/step, percent and ETA (the parts the row has)."""
    parts = [str(exp.get("status", "?"))]
    if exp.get("attempts"):
        parts.append(f"attempt {exp['attempts']}/{exp.get('max_attempts', '?')}")
    p = {k: v for k, v in (exp.get("progress") or {}).items() if v is not None}
    if "stage" in p:
        mods = f" ({'+'.join(p['modalities'])})" if p.get("modalities") else ""
        parts.append(f"stage {p['stage'] + 1}/{p.get('n_stages', '?')}{mods}")
    if "epoch" in p:
        parts.append(f"epoch {p['epoch'] + 1}/{p.get('epochs', '?')}")
    if "step" in p:
        parts.append(f"step {p['step']}/{p.get('total_steps', '?')}")
    if "fraction" in p:
        parts.append(f"{100 * p['fraction']:.1f}%")
    if "val_acc" in p:
        parts.append(f"val acc {p['val_acc']:.4f}")
    eta = p.get("eta_s", p.get("eta"))
    if exp.get("status") == "running" and eta is not None:
        parts.append(f"ETA {_duration(eta)}")
    return "  ".join(parts)


def _metrics_table(exp: dict[str, Any]) -> Table | None:
    test = (exp.get("summary") or {}).get("test")
    if not test:
        return None
    table = Table(title=f"{exp.get('name', '')}: test metrics")
    for col in ("", "acc", "macro-F1", "mAP"):
        table.add_column(col, justify="right" if col else "left")

    def num(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, int | float) else "-"

    table.add_row("fused", num(test.get("acc")), num(test.get("macro_f1")), num(test.get("map")))
    for modality, acc in (test.get("modality_acc") or {}).items():
        table.add_row(modality, num(acc), "", "")
    return table


def _print_error(exp: dict[str, Any]) -> None:
    if exp.get("error"):
        console.print(Text("run failed: ", style="bold red") + Text(exp["error"]))
    traceback = exp.get("traceback_tail") or exp.get("traceback")
    if traceback:
        tail = traceback.rstrip().splitlines()[-TRACEBACK_LINES:]
        console.print(Text("\n".join(tail), style="dim"))


def _report_finished(exp: dict[str, Any]) -> int:
    """Print the outcome of a finished experiment; its exit code."""
    out_console.print(Text(f"{exp['id']}: ") + _styled(exp.get("status")))
    table = _metrics_table(exp)
    if table is not None:
        _print_table(table)
    if exp.get("status") == "failed":
        _print_error(exp)
    return EXIT_BY_STATUS.get(exp.get("status", ""), 1)


def _resolve_id(client: IGMClient, ident: str) -> str:
    """A full experiment id from an id or the short prefix that `igm ls` shows."""
    if len(ident) >= ID_LEN:
        return ident
    try:
        return client.get(ident)["id"]
    except IGMClientError as err:
        if err.status_code != 404:
            raise
    matches: list[str] = []
    for offset in range(0, 10_000, 500):
        page = client.list(limit=500, offset=offset)
        matches += [e["id"] for e in page["data"] if e["id"].startswith(ident)]
        if offset + len(page["data"]) >= page["count"] or not page["data"]:
            break
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise IGMClientError(400, f"{ident!r} matches {len(matches)} experiments; give more of it")
    raise IGMClientError(404, f"no experiment with an id starting {ident!r}")


# ----------------------------------------------------------------------------- commands


def cmd_submit(client: IGMClient, args: argparse.Namespace) -> int:
    from igm_core.spec import SpecError, apply_overrides, load_spec_file

    try:
        spec = apply_overrides(load_spec_file(args.spec), args.set or [])
    except SpecError as err:
        lines = "\n".join(f"  {path or '(spec)'}: {msg}" for path, msg in err.errors)
        return _fail(f"invalid spec\n{lines}", 2)
    exp = client.submit(spec, priority=args.priority, tags=args.tag or [], queue=args.queue)
    if args.json and not args.wait:
        out_console.print_json(json.dumps(exp))
        return 0
    if not args.json:
        _say(exp["id"])
        console.print(
            Text(f"submitted {exp.get('name')} ({exp.get('method')} on {exp.get('dataset')}): ")
            + _styled(exp.get("status"))
            + Text(f" on queue {exp.get('queue')}", style="dim")
        )
        if exp.get("twins"):
            _say(f"same resolved spec as: {', '.join(exp['twins'])}", err=True)
        if exp.get("warning"):
            console.print(Text("warning: ", style="bold yellow") + Text(exp["warning"]))
    return _wait(client, exp["id"], as_json=args.json) if args.wait else 0


def _wait(client: IGMClient, experiment_id: str, *, as_json: bool) -> int:
    bar = Progress(TextColumn("{task.description}"), BarColumn(), console=console,
                   disable=as_json, transient=True)  # fmt: skip
    task = bar.add_task("waiting", total=1.0)

    def on_update(exp: dict[str, Any]) -> None:
        fraction = (exp.get("progress") or {}).get("fraction")
        done = 1.0 if exp.get("status") == "succeeded" else fraction or 0.0
        bar.update(task, completed=done, description=progress_text(exp))

    try:
        with bar:
            final = client.wait(experiment_id, poll=1.0, on_update=on_update)
    except KeyboardInterrupt:
        _say(f"stopped waiting; the experiment goes on: igm logs {experiment_id} -f", err=True)
        return 130
    if as_json:
        out_console.print_json(json.dumps(final))
        return EXIT_BY_STATUS.get(final.get("status", ""), 1)
    return _report_finished(final)


def cmd_ls(client: IGMClient, args: argparse.Namespace) -> int:
    filters = ("status", "method", "dataset", "tag", "q", "sweep", "sort", "limit", "offset")
    page = client.list(**{key: getattr(args, key) for key in filters})
    if args.json:
        out_console.print_json(json.dumps(page))
        return 0
    table = Table()
    for col in ("id", "name", "method", "dataset", "status", "progress", "test acc", "created"):
        numeric = col in ("progress", "test acc")
        table.add_column(col, justify="right" if numeric else "left", no_wrap=col != "name")
    for exp in page["data"]:
        fraction = (exp.get("progress") or {}).get("fraction")
        fraction = 1.0 if exp.get("status") == "succeeded" else fraction
        acc = ((exp.get("summary") or {}).get("test") or {}).get("acc")
        table.add_row(
            exp["id"][:8], exp.get("name"), exp.get("method"), exp.get("dataset"),
            _styled(exp.get("status")), "-" if fraction is None else f"{100 * fraction:.0f}%",
            "-" if acc is None else f"{acc:.4f}", _when(exp.get("created_at")),
        )  # fmt: skip
    _print_table(table)
    _say(f"{len(page['data'])} of {page['count']}")
    return 0


def cmd_show(client: IGMClient, args: argparse.Namespace) -> int:
    exp = client.get(_resolve_id(client, args.id))
    if args.json:
        out_console.print_json(json.dumps(exp))
        return 0
    skip = {"spec", "summary", "progress", "error", "traceback", "traceback_tail"}
    for key, value in exp.items():
        if key in skip or isinstance(value, dict):
            continue
        if key.endswith("_at"):
            value = _when(value)
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        shown = Text("-" if value in (None, "") else str(value))
        out_console.print(
            Text(f"{key:<18}", style="bold") + (_styled(value) if key == "status" else shown)
        )
    if exp.get("progress"):
        out_console.print(Text(f"{'progress':<18}", style="bold") + Text(progress_text(exp)))
    if exp.get("spec"):
        out_console.rule("resolved spec")
        text = yaml.safe_dump(exp["spec"], sort_keys=False, default_flow_style=None)
        _say(text.rstrip())
    table = _metrics_table(exp)
    if table is not None:
        _print_table(table)
    if exp.get("status") == "failed":
        _print_error(exp)
    return 0


def cmd_action(client: IGMClient, args: argparse.Namespace) -> int:
    """cancel, retry, rm."""
    experiment_id = _resolve_id(client, args.id)
    if args.command == "rm":
        client.delete(experiment_id)
        _say(f"deleted {experiment_id}")
        return 0
    exp = getattr(client, args.command)(experiment_id)
    line = Text(f"{experiment_id}: ") + _styled(exp.get("status"))
    if exp.get("status") == "running" and args.command == "cancel":
        line += Text(" (cancel requested: the run stops after its current step)")
    out_console.print(line)
    return 0


def _last_point(series: Any) -> tuple[Any, Any] | None:
    """(step, value) of the last finite point of {"steps": [...], "values": [...]}."""
    if not isinstance(series, dict):
        return None
    points = zip(series.get("steps") or [], series.get("values") or [], strict=False)
    finite = [(step, value) for step, value in points if value is not None]
    return finite[-1] if finite else None


def _latest_val(client: IGMClient, exp: dict[str, Any]) -> str | None:
    """'latest val acc 0.9120 (strong 0.9300, weak 0.6100) at step N', when the run logged it."""
    modalities = (exp.get("spec") or {}).get("modalities") or []
    keys = ["val/fused/acc", *(f"val/{m}/acc" for m in modalities)]
    try:
        series = client.metrics(exp["id"], keys=keys, max_points=200).get("metrics") or {}
    except IGMClientError as err:
        if err.status_code == 404:  # no run yet, or nothing logged under these keys yet
            return None
        raise
    fused = _last_point(series.get("val/fused/acc"))
    if fused is None:
        return None
    points = {m: _last_point(series.get(f"val/{m}/acc")) for m in modalities}
    mods = ", ".join(f"{m} {p[1]:.4f}" for m, p in points.items() if p is not None)
    return f"latest val acc {fused[1]:.4f}{f' ({mods})' if mods else ''} at step {fused[0]}"


def _logs_once(client: IGMClient, exp: dict[str, Any]) -> None:
    head = Text(f"{exp['id']} {exp.get('name', '')}: ") + _styled(exp.get("status"))
    head += Text(f"  attempts {exp.get('attempts', 0)}/{exp.get('max_attempts', '?')}")
    if exp.get("worker"):
        head += Text(f"  worker {exp['worker']}")
    out_console.print(head)
    if exp.get("started_at"):
        ended = f", finished {_when(exp.get('finished_at'))}" if exp.get("finished_at") else ""
        _say(f"started {_when(exp['started_at'])}{ended}")
    if exp.get("progress"):
        _say(progress_text(exp))
    val = _latest_val(client, exp)
    if val:
        _say(val)
    if exp.get("status") == "failed":
        _print_error(exp)


def cmd_logs(client: IGMClient, args: argparse.Namespace) -> int:
    exp = client.get(_resolve_id(client, args.id))
    _logs_once(client, exp)
    seen = (exp.get("status"), exp.get("progress"))
    epoch = {k: (exp.get("progress") or {}).get(k) for k in ("stage", "epoch")}
    try:
        while args.follow and exp.get("status") not in FINISHED:
            time.sleep(args.poll)
            exp = client.get(exp["id"])
            if (exp.get("status"), exp.get("progress")) == seen:
                continue
            seen = (exp.get("status"), exp.get("progress"))
            if exp.get("status") in FINISHED:
                _logs_once(client, exp)
                break
            stamp = datetime.now().strftime("%H:%M:%S")
            _say(f"{stamp}  {progress_text(exp)}")
            now = {k: (exp.get("progress") or {}).get(k) for k in ("stage", "epoch")}
            if now != epoch:  # a new epoch: the last one's validation metrics are in
                epoch, val = now, _latest_val(client, exp)
                if val:
                    _say(f"{stamp}  {val}")
    except KeyboardInterrupt:
        pass  # Ctrl-C only stops following
    return 0


# ----------------------------------------------------------------------------- parsing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="igm",
        description="IGM Lab: imbalanced multimodal learning. Service commands talk to a server "
        f"(--url, default {DEFAULT_URL}); train, validate and the registries run here.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    url = argparse.ArgumentParser(add_help=False)
    url.add_argument("--url", default=DEFAULT_URL, help=f"the server (default {DEFAULT_URL})")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the server's JSON answer")

    s = sub.add_parser("submit", parents=[url, as_json], help="queue a spec on the server")
    s.add_argument("spec", help="a YAML or JSON spec file")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a spec field")
    s.add_argument("--priority", type=int, help="0..9, higher runs first (server default 5)")
    s.add_argument("--tag", action="append", metavar="T", help="a tag (repeatable)")
    s.add_argument("--queue", help="the queue to run on (default: the server's)")
    s.add_argument("--wait", action="store_true", help="follow it to the end, show the metrics")
    s.set_defaults(func=cmd_submit)

    ls = sub.add_parser("ls", parents=[url, as_json], help="list experiments")
    for flag in ("status", "method", "dataset", "tag", "sweep"):
        ls.add_argument(f"--{flag}")
    ls.add_argument("--q", metavar="TEXT", help="name contains TEXT")
    ls.add_argument("--sort", help="created_at, name, status, priority, ...; '-' for descending")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--offset", type=int, default=0)
    ls.set_defaults(func=cmd_ls)

    show = sub.add_parser("show", parents=[url, as_json], help="one experiment in full")
    show.add_argument("id", help="an id, or the start of one")
    show.set_defaults(func=cmd_show)
    for name, text in (("cancel", "cancel a queued or running experiment"),
                       ("retry", "queue a failed or cancelled experiment again"),
                       ("rm", "delete a finished experiment")):  # fmt: skip
        p = sub.add_parser(name, parents=[url], help=text)
        p.add_argument("id", help="an id, or the start of one")
        p.set_defaults(func=cmd_action)
    logs = sub.add_parser("logs", parents=[url], help="status, progress and errors of a run")
    logs.add_argument("id", help="an id, or the start of one")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until it ends")
    logs.set_defaults(func=cmd_logs, poll=1.0)

    sub.add_parser("up", help="start the embedded service (API and worker)", add_help=False)
    sub.add_parser("db", help="database migrations", add_help=False)
    sub.add_parser("worker", help="run a worker (one per GPU: --gpu N)", add_help=False)
    for name, text in LOCAL_COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def _delegate(command: str, rest: list[str]) -> int:
    """`igm up`, `igm db` and `igm worker`, imported only when asked for."""
    try:
        if command == "up":
            from server.embedded import main as entry
        elif command == "worker":
            from worker.__main__ import main as entry
        else:
            from server.migrations import cli_main as entry
    except ImportError as err:
        return _fail(f"`igm {command}` is not available in this installation: {err}", 1)
    return entry(rest)


def main(argv: list[str] | None = None) -> int:
    """Run one `igm` command; returns its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    try:
        if command in ("up", "db", "worker"):
            return _delegate(command, argv[1:])
        if command in LOCAL_COMMANDS:
            from igm_core.cli import main as core_main

            return core_main(argv)
        args = build_parser().parse_args(argv)
    except SystemExit as err:  # argparse: --help, or a usage error it has printed
        return err.code if isinstance(err.code, int) else int(err.code is not None)
    with IGMClient(args.url) as client:
        try:
            return args.func(client, args)
        except IGMClientError as err:
            return _fail(str(err), 2 if 400 <= err.status_code < 500 else 1)
        except (OSError, ValueError) as err:
            return _fail(str(err), 2)


if __name__ == "__main__":
    sys.exit(main())
