"""How the `igm` remote commands show things: status colours, progress lines, metric tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console(stderr=True, soft_wrap=True)
out_console = Console(soft_wrap=True)

STATUS_STYLE = {"queued": "yellow", "running": "cyan", "succeeded": "green", "failed": "red"}
EXIT_BY_STATUS = {"succeeded": 0, "failed": 1, "cancelled": 3}
TRACEBACK_LINES = 15
PIPE_WIDTH = 160  # tables written to a pipe or file are not cut to 80 columns


def fail(message: str, code: int) -> int:
    console.print(Text("error: ", style="bold red") + Text(message))
    return code


def say(text: str, *, err: bool = False) -> None:
    """Plain text: no markup, no highlighting (names and messages come from elsewhere)."""
    (console if err else out_console).print(text, highlight=False, markup=False)


def styled(status: str | None) -> Text:
    return Text(status or "-", style=STATUS_STYLE.get(status or "", "magenta"))


def print_table(table: Table) -> None:
    target = out_console if out_console.is_terminal else Console(width=PIPE_WIDTH)
    target.print(table)


def duration(seconds: float) -> str:
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def when(stamp: str | None) -> str:
    if not stamp:
        return "-"
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return stamp


def number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def swept_text(exp: dict[str, Any]) -> str:
    """A sweep point's swept values, "key=value, ..." (floats to 4 significant digits)."""
    values = exp.get("sweep_values") or {}
    shown = (f"{v:.4g}" if isinstance(v, float) else str(v) for v in values.values())
    return ", ".join(f"{k}={v}" for k, v in zip(values, shown, strict=True)) or "-"


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
        parts.append(f"ETA {duration(eta)}")
    return "  ".join(parts)


def metrics_table(exp: dict[str, Any]) -> Table | None:
    test = (exp.get("summary") or {}).get("test")
    if not test:
        return None
    table = Table(title=f"{exp.get('name', '')}: test metrics")
    for col in ("", "acc", "macro-F1", "mAP"):
        table.add_column(col, justify="right" if col else "left")

    table.add_row(
        "fused", number(test.get("acc")), number(test.get("macro_f1")), number(test.get("map"))
    )
    for modality, acc in (test.get("modality_acc") or {}).items():
        table.add_row(modality, number(acc), "", "")
    return table


def print_error(exp: dict[str, Any]) -> None:
    if exp.get("error"):
        console.print(Text("run failed: ", style="bold red") + Text(exp["error"]))
    traceback = exp.get("traceback_tail") or exp.get("traceback")
    if traceback:
        tail = traceback.rstrip().splitlines()[-TRACEBACK_LINES:]
        console.print(Text("\n".join(tail), style="dim"))


def report_finished(exp: dict[str, Any]) -> int:
    """Print the outcome of a finished experiment; its exit code."""
    out_console.print(Text(f"{exp['id']}: ") + styled(exp.get("status")))
    table = metrics_table(exp)
    if table is not None:
        print_table(table)
    if exp.get("status") == "failed":
        print_error(exp)
    return EXIT_BY_STATUS.get(exp.get("status", ""), 1)
