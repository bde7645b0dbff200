"""The comparison report as rich tables, for `igm compare`."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from igm_core.compare.report import METRICS

METRIC_LABEL = {"acc": "acc", "macro_f1": "macro-F1", "map": "mAP"}


def _fmt_stats(s: dict[str, float | None], n: int) -> str:
    if n == 1 or s["std"] is None:
        return f"{s['mean']:.4f}"
    if s["lo"] is None:
        return f"{s['mean']:.4f} ± {s['std']:.4f}\n(too few seeds for an interval)"
    return f"{s['mean']:.4f} ± {s['std']:.4f}\n[{s['lo']:.4f}, {s['hi']:.4f}]"


def metric_label(metric: str) -> str:
    """`acc` -> "acc", `modality_acc.audio` -> "audio acc"."""
    if metric.startswith("modality_acc."):
        return f"{metric.removeprefix('modality_acc.')} acc"
    return METRIC_LABEL.get(metric, metric)


def _fmt_paper(row: dict[str, Any]) -> tuple[str, str]:
    pub, diff, label = row["paper"], row["paper_diff"], row.get("paper_label")
    if pub is None:  # a paper spec not held to a published row still says what it runs
        return label or "-", "-"
    keys = [m for m in METRICS if m in pub]
    published = "\n".join(f"{METRIC_LABEL[m]} {pub[m]:.4f}" for m in keys)
    delta = "\n".join(f"{METRIC_LABEL[m]} {diff[m]:+.4f}" for m in keys)
    for m, v in diff.get("modality_acc", {}).items():
        published += f"\n{m} {pub['modality_acc'][m]:.4f}"
        delta += f"\n{m} {v:+.4f}"
    head = row["paper_config"] + (f": {label}" if label else "")
    return f"{head}\n{published}", delta


def _fmt_balance(b: dict[str, Any] | None) -> str:
    """BalanceBenchmark's measures of a group: the Shapley gap and values in points, the mean
    training FLOPs; "-" when its runs did not record them."""
    if b is None:
        return "-"
    lines = []
    if b["shapley_gap"] is not None:
        lines.append(f"gap {100 * b['shapley_gap']['mean']:.1f}")
    lines += [f"{m} {100 * s['mean']:+.1f}" for m, s in b["shapley_acc"].items()]
    if b["train_flops"] is not None:
        lines.append(f"{b['train_flops'] / 1e9:.3g} GFLOP")
    return "\n".join(lines) or "-"


def groups_table(report: dict[str, Any]) -> Table:
    stars = {(lead["group"], lead["metric"]) for lead in report.get("leads", []) if lead["star"]}
    title = "test metrics over seeds: mean ± std, [95% t-interval, clipped to [0, 1]]"
    table = Table(title=title, caption=f"* {report.get('star', '')}", show_lines=True)
    names = ("group", "n", "acc", "macro-F1", "mAP", "modality acc", "Shapley / FLOPs", "wall")
    for name in (*names, "paper", "Δ"):
        table.add_column(name, justify="left" if name in ("group", "paper") else "right")
    for row in report["groups"]:
        n = row["n"]
        seeds = ",".join(map(str, row["seeds"]))
        base = " (baseline)" if row["label"] == report.get("baseline") else ""
        mods = "\n".join(
            f"{m} {s['mean']:.4f}{' *' * ((row['label'], f'modality_acc.{m}') in stars)}"
            for m, s in row["modality_acc"].items()
        )
        wall = "-" if row["wall_time_s"] is None else f"{row['wall_time_s']:.1f}s"
        table.add_row(
            f"{row['label']}{base}\n{row['method']} on {row['dataset']}\nseeds {seeds}",
            str(n),
            *(
                _fmt_stats(row["metrics"][m], n) + " *" * ((row["label"], m) in stars)
                for m in METRICS
            ),
            mods,
            _fmt_balance(row.get("balance")),
            wall,
            *_fmt_paper(row),
        )
    return table


def pairs_table(report: dict[str, Any]) -> Table:
    title = f"paired by seed: B - baseline ({report['baseline']}), percentage points"
    table = Table(title=title, show_lines=False)
    for name in ("B", "metric", "n", "B - baseline", "95% CI", "verdict"):
        table.add_column(name, justify="right" if name in ("n", "B - baseline") else "left")
    for p in report["pairs"]:
        if p["lo_pp"] is None:
            ci, verdict = "-", p["note"] or "no interval"
        else:
            ci = f"[{p['lo_pp']:+.2f}, {p['hi_pp']:+.2f}]"
            better = "B" if p["diff_pp"] > 0 else "baseline"
            verdict = f"{better} better" if p["significant"] else "not significant"
        table.add_row(
            p["b"], metric_label(p["metric"]), str(p["n"]), f"{p['diff_pp']:+.2f}", ci, verdict
        )
    return table


def print_report(report: dict[str, Any], out: Console, err: Console) -> None:
    for warning in report["warnings"]:
        err.print(Text("warning: ", style="bold yellow") + Text(warning))
    out.print(groups_table(report))
    if report["pairs"]:
        out.print(pairs_table(report))
    for item in report["unpaired"]:
        out.print(Text(f"not paired with {report['baseline']}: {item['group']}: {item['reason']}"))
    if len(report["groups"]) > 1 and not report["pairs"] and not report["unpaired"]:
        out.print("no paired comparison: no baseline")
