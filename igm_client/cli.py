"""The remote `igm` commands: submit, sweep, ls, show, cancel, retry, rm, logs, login and logout,
talking to an IGM Lab server through IGMClient (httpx only: no torch, no igm_core, no server code).
logs is in igm_client/logs.py, login and logout in igm_client/login.py.

The server is --url, else IGM_URL, else the config file that `igm login` and `igm up` write, else
http://127.0.0.1:8000 (igm_client.config). Ids may be shortened to a unique prefix (the server
resolves it). Exit codes: 0 ok; 1 server unreachable, server error or failed run; 2 bad request or
spec; 3 cancelled run; 130 interrupted while waiting.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from igm_client import login, logs
from igm_client.args import distribution, grid_values, pairs
from igm_client.client import FILTERS, IGMClient, IGMClientError, read_spec
from igm_client.format import (
    EXIT_BY_STATUS,
    console,
    fail,
    metrics_table,
    number,
    out_console,
    print_error,
    print_table,
    progress_text,
    report_finished,
    say,
    styled,
    swept_text,
    when,
)

COMMANDS = {
    "submit": "queue a spec on the server",
    "sweep": "queue one experiment per point of a grid and random samples over a spec",
    "ls": "list experiments",
    "show": "one experiment in full",
    "cancel": "cancel a queued or running experiment",
    "retry": "queue a failed or cancelled experiment again",
    "rm": "delete a finished experiment",
    "logs": "status, progress and errors of a run",
    "login": "remember the server (and its token) for these commands",
    "logout": "forget the token kept for a server",
}


# ----------------------------------------------------------------------------- commands


def cmd_submit(client: IGMClient, args: argparse.Namespace) -> int:
    spec = read_spec(args.spec)
    pairs(args.set, "--set")  # a malformed override fails here; the server reads the values
    exp = client.submit(
        spec,
        priority=args.priority,
        tags=args.tag or [],
        queue=args.queue,
        overrides=args.set or [],
    )
    if args.json and not args.wait:
        out_console.print_json(json.dumps(exp))
        return 0
    if not args.json:
        say(exp["id"])
        console.print(
            Text(f"submitted {exp.get('name')} ({exp.get('method')} on {exp.get('dataset')}): ")
            + styled(exp.get("status"))
            + Text(f" on queue {exp.get('queue')}", style="dim")
        )
        if exp.get("twins"):
            say(f"same resolved spec as: {', '.join(exp['twins'])}", err=True)
        if exp.get("warning"):
            console.print(Text("warning: ", style="bold yellow") + Text(exp["warning"]))
    return _wait(client, exp["id"], as_json=args.json) if args.wait else 0


def cmd_sweep(client: IGMClient, args: argparse.Namespace) -> int:
    base = read_spec(args.spec)
    grid = {k: grid_values(v) for k, v in pairs(args.grid, "--grid")}
    search = None
    if args.random:
        params = {k: distribution(k, v) for k, v in pairs(args.random, "--random")}
        search = {"samples": args.samples, "seed": args.seed, "params": params}
    elif args.samples != 1:
        raise ValueError("--samples needs at least one --random parameter")
    common = {"random": search, "name": args.name}
    if args.dry_run:
        preview = client.sweep_preview(base, grid, **common)
        if args.json:
            out_console.print_json(json.dumps(preview))
            return 0
        table = Table(title=f"{preview['count']} points (nothing submitted)")
        for col in ("#", "name", "values"):
            table.add_column(col)
        for i, point in enumerate(preview["points"]):
            values = ", ".join(f"{k}={v}" for k, v in point["values"].items())
            table.add_row(str(i), point["name"], values)
        print_table(table)
        return 0
    answer = client.sweep(
        base, grid, priority=args.priority, tags=args.tag or [], queue=args.queue, **common
    )
    if args.json:
        out_console.print_json(json.dumps(answer))
        return 0
    say(answer["sweep_id"])
    say(f"queued {answer['count']} experiments; igm ls --sweep {answer['sweep_id']}", err=True)
    if answer.get("warning"):
        console.print(Text("warning: ", style="bold yellow") + Text(answer["warning"]))
    return 0


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
        say(f"stopped waiting; the experiment goes on: igm logs {experiment_id} -f", err=True)
        return 130
    if as_json:
        out_console.print_json(json.dumps(final))
        return EXIT_BY_STATUS.get(final.get("status", ""), 1)
    return report_finished(final)


def _ls_columns(page: dict[str, Any]) -> list[str]:
    """The table's columns: with keys asked for (--column), the id, name, status and those keys;
    otherwise the fixed ones, with the swept values and macro-F1 for a sweep's points. The
    error's first line when a row failed."""
    failed = ["error"] if any(exp.get("error_excerpt") for exp in page["data"]) else []
    if page.get("columns"):
        return ["id", "name", "status", *page["columns"], *failed]
    swept = any(exp.get("sweep_values") for exp in page["data"])  # a sweep's points: their values
    return ["id", "name", *(["swept values"] if swept else []), "method", "dataset", "status",
            "progress", "test acc", *(["macro-F1"] if swept else []), "created",
            *failed]  # fmt: skip


def _value(value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return "-" if value is None else str(value)
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return json.dumps(value)


def cmd_ls(client: IGMClient, args: argparse.Namespace) -> int:
    filters = {name: getattr(args, name) for name in FILTERS}
    page = client.list(
        sort=args.sort, limit=args.limit, offset=args.offset, columns=args.column or (), **filters
    )
    if args.json:
        out_console.print_json(json.dumps(page))
        return 0
    columns = _ls_columns(page)
    table = Table()
    for col in columns:
        numeric = col in ("progress", "test acc", "macro-F1", *page.get("columns", []))
        table.add_column(col, justify="right" if numeric else "left",
                         no_wrap=col not in ("name", "swept values", "error"))  # fmt: skip
    for exp in page["data"]:
        fraction = (exp.get("progress") or {}).get("fraction")
        fraction = 1.0 if exp.get("status") == "succeeded" else fraction
        test = (exp.get("summary") or {}).get("test") or {}
        cells = {
            "id": exp["id"][:8], "name": exp.get("name"), "swept values": swept_text(exp),
            "method": exp.get("method"), "dataset": exp.get("dataset"),
            "status": styled(exp.get("status")),
            "progress": "-" if fraction is None else f"{100 * fraction:.0f}%",
            "test acc": number(test.get("acc")), "macro-F1": number(test.get("macro_f1")),
            "created": when(exp.get("created_at")), "error": exp.get("error_excerpt") or "",
            **{key: _value(v) for key, v in (exp.get("values") or {}).items()},
        }  # fmt: skip
        table.add_row(*(cells[col] for col in columns))
    print_table(table)
    say(f"{len(page['data'])} of {page['count']}")
    return 0


def cmd_show(client: IGMClient, args: argparse.Namespace) -> int:
    exp = client.get(args.id)
    if args.json:
        out_console.print_json(json.dumps(exp))
        return 0
    skip = {"spec", "summary", "progress", "error", "traceback", "traceback_tail"}
    for key, value in exp.items():
        if key in skip or isinstance(value, dict):
            continue
        if key.endswith("_at"):
            value = when(value)
        elif isinstance(value, list):
            value = ", ".join(map(str, value))
        shown = Text("-" if value in (None, "") else str(value))
        out_console.print(
            Text(f"{key:<18}", style="bold") + (styled(value) if key == "status" else shown)
        )
    if exp.get("progress"):
        out_console.print(Text(f"{'progress':<18}", style="bold") + Text(progress_text(exp)))
    if exp.get("spec"):
        out_console.rule("resolved spec")
        text = yaml.safe_dump(exp["spec"], sort_keys=False, default_flow_style=None)
        say(text.rstrip())
    table = metrics_table(exp)
    if table is not None:
        print_table(table)
    if exp.get("status") == "failed":
        print_error(exp)
    return 0


def cmd_action(client: IGMClient, args: argparse.Namespace) -> int:
    """cancel, retry, rm."""
    experiment_id = client.get(args.id)["id"]  # the full id, for the message
    if args.command == "rm":
        client.delete(experiment_id)
        say(f"deleted {experiment_id}")
        return 0
    exp = getattr(client, args.command)(experiment_id)
    line = Text(f"{experiment_id}: ") + styled(exp.get("status"))
    if exp.get("status") == "running" and args.command == "cancel":
        line += Text(" (cancel requested: the run stops after its current step)")
    out_console.print(line)
    return 0


# ----------------------------------------------------------------------------- parsing


def _parents() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The options many commands share: --url, and --json."""
    url = argparse.ArgumentParser(add_help=False)
    url.add_argument(
        "--url",
        help="the server (default: IGM_URL, else the one `igm login` or `igm up` saved, "
        "else http://127.0.0.1:8000)",
    )
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print the server's JSON answer")
    return url, as_json


def _add_submit(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("submit", parents=parents, help="queue a spec on the server")
    s.add_argument("spec", help="a YAML or JSON spec file")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a spec field")
    s.add_argument("--priority", type=int, help="0..9, higher runs first (server default 5)")
    s.add_argument("--tag", action="append", metavar="T", help="a tag (repeatable)")
    s.add_argument("--queue", help="the queue to run on (default: the server's)")
    s.add_argument("--wait", action="store_true", help="follow it to the end, show the metrics")
    s.set_defaults(func=cmd_submit)


def _add_sweep(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    sw = sub.add_parser("sweep", parents=parents, help=COMMANDS["sweep"])
    sw.add_argument("spec", help="the base spec, a YAML or JSON file")
    sw.add_argument(
        "--grid",
        action="append",
        metavar="KEY=V1,V2",
        help="values of a dotted key, e.g. method.params.tau=0.2,0.4 (repeatable; product)",
    )
    sw.add_argument(
        "--random",
        action="append",
        metavar="KEY=DIST",
        help="a sampled key: uniform:lo:hi, log_uniform:lo:hi, int_uniform:lo:hi, choice:a,b",
    )
    sw.add_argument(
        "--samples", type=int, default=1, help="random draws, each with every grid point"
    )
    sw.add_argument("--seed", type=int, default=0, help="seed of the random draws")
    sw.add_argument("--name", help="name of the sweep (points: <name>-<i>)")
    sw.add_argument("--priority", type=int, help="0..9, higher runs first")
    sw.add_argument("--tag", action="append", metavar="T", help="a tag (repeatable)")
    sw.add_argument("--queue", help="the queue to run on (default: the server's)")
    sw.add_argument("--dry-run", action="store_true", help="list the points; submit nothing")
    sw.set_defaults(func=cmd_sweep)


# how `igm ls` shows a filter's option, where it says more than --NAME NAME
FILTER_OPTIONS: dict[str, dict[str, Any]] = {
    "q": {"metavar": "TEXT", "help": "name contains TEXT"},
    "match": {
        "action": "append",
        "metavar": "COND",
        "help": "KEY OP VALUE on a spec value or result metric, OP one of = != < <= > >= "
        "(repeatable): 'test.acc>=0.8', 'optimizer.lr<0.01', 'method.name=igm'",
    },
}


def _add_ls(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    ls = sub.add_parser("ls", parents=parents, help="list experiments")
    for name in FILTERS:  # the server's filters (igm_client.client.FILTERS)
        ls.add_argument(f"--{name}", **FILTER_OPTIONS.get(name, {}))
    ls.add_argument(
        "--column",
        "-c",
        action="append",
        metavar="KEY",
        help="show a spec value or result metric (repeatable, or comma-separated): "
        "optimizer.lr, method.params.tau, test.acc, test.modality_acc.weak, ...",
    )
    ls.add_argument(
        "--sort",
        help="created_at, name, status, priority, ... or a key such as test.acc; "
        "descending: --sort=-KEY",
    )
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--offset", type=int, default=0)
    ls.set_defaults(func=cmd_ls)


def _add_by_id(
    sub: argparse._SubParsersAction,
    url: argparse.ArgumentParser,
    as_json: argparse.ArgumentParser,
) -> None:
    """show, cancel, retry, rm: one experiment named by its id or a unique prefix."""
    show = sub.add_parser("show", parents=[url, as_json], help="one experiment in full")
    show.add_argument("id", help="an id, or the start of one")
    show.set_defaults(func=cmd_show)
    for name in ("cancel", "retry", "rm"):
        p = sub.add_parser(name, parents=[url], help=COMMANDS[name])
        p.add_argument("id", help="an id, or the start of one")
        p.set_defaults(func=cmd_action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="igm",
        description="IGM Lab's remote commands: they talk to a server (--url, IGM_URL, or the "
        "one `igm login` and `igm up` saved). `igm --help` lists every command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    url, as_json = _parents()
    _add_submit(sub, [url, as_json])
    _add_sweep(sub, [url, as_json])
    _add_ls(sub, [url, as_json])
    _add_by_id(sub, url, as_json)
    logs.add_parser(sub, [url])
    login.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `igm` command; returns its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as err:  # argparse: --help, or a usage error it has printed
        return err.code if isinstance(err.code, int) else int(err.code is not None)
    try:
        if not getattr(args, "needs_client", True):
            return args.func(args)
        with IGMClient(args.url) as client:
            try:
                return args.func(client, args)
            except IGMClientError as err:
                if err.status_code == 0:  # say where the URL came from: the usual newcomer trap
                    return fail(f"{err}\n(the server URL is {login.where(client.settings)})", 1)
                raise
    except IGMClientError as err:
        return fail(str(err), 2 if 400 <= err.status_code < 500 else 1)
    except (OSError, ValueError) as err:
        return fail(str(err), 2)


if __name__ == "__main__":
    sys.exit(main())
