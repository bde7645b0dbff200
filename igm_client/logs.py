"""`igm logs ID [-f]`: an experiment's status, progress, latest validation accuracy and error,
once or followed until it ends."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any

from rich.text import Text

from igm_client.client import FINISHED, IGMClient, IGMClientError
from igm_client.format import out_console, print_error, progress_text, say, styled, when


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
    head = Text(f"{exp['id']} {exp.get('name', '')}: ") + styled(exp.get("status"))
    head += Text(f"  attempts {exp.get('attempts', 0)}/{exp.get('max_attempts', '?')}")
    if exp.get("worker"):
        head += Text(f"  worker {exp['worker']}")
    out_console.print(head)
    if exp.get("started_at"):
        ended = f", finished {when(exp.get('finished_at'))}" if exp.get("finished_at") else ""
        say(f"started {when(exp['started_at'])}{ended}")
    if exp.get("progress"):
        say(progress_text(exp))
    val = _latest_val(client, exp)
    if val:
        say(val)
    if exp.get("status") == "failed":
        print_error(exp)


def cmd_logs(client: IGMClient, args: argparse.Namespace) -> int:
    exp = client.get(args.id)
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
            say(f"{stamp}  {progress_text(exp)}")
            now = {k: (exp.get("progress") or {}).get(k) for k in ("stage", "epoch")}
            if now != epoch:  # a new epoch: the last one's validation metrics are in
                epoch, val = now, _latest_val(client, exp)
                if val:
                    say(f"{stamp}  {val}")
    except KeyboardInterrupt:
        pass  # Ctrl-C only stops following
    return 0


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    logs = sub.add_parser("logs", parents=parents, help="status, progress and errors of a run")
    logs.add_argument("id", help="an id, or the start of one")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until it ends")
    logs.set_defaults(func=cmd_logs, poll=1.0)
