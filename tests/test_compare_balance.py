"""BalanceBenchmark's measures in the comparison report: each group's Shapley values, their gap
and its training FLOPs over seeds (igm_core.compare.report.summarize_balance), carried by the
service's run summary (igm_core.summary) and printed by `igm compare`."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from igm_core import summary as run_summary
from igm_core.compare import report_from_results
from igm_core.compare.render import groups_table
from igm_core.compare.report import summarize_balance


def balance(strong: float, weak: float, flops: int) -> dict:
    return {
        "imbalance": {
            "shapley_acc": {"strong": strong, "weak": weak},
            "shapley_gap": abs(strong - weak),
            "coalition_acc": {"none": 0.25},
        },
        "cost": {"step_flops": {"strong+weak": flops // 10}, "train_flops": flops},
    }


def result(name: str, seed: int, acc: float, bal: dict | None) -> dict:
    out = {
        "spec": {"name": name, "seed": seed, "dataset": {"name": "synthetic"}},
        "test": {
            "acc": acc,
            "macro_f1": acc,
            "map": acc,
            "modality_acc": {"strong": acc, "weak": acc - 0.2},
        },
        "run": {"wall_time_s": 1.0},
    }
    if bal is not None:
        out["balance"] = bal
    return out


def test_group_means_and_intervals() -> None:
    runs = [
        ("a0", result("a", 0, 0.8, balance(0.50, 0.10, 100))),
        ("a1", result("a", 1, 0.8, balance(0.40, 0.20, 200))),
        ("a2", result("a", 2, 0.8, balance(0.60, 0.00, 300))),
    ]
    (group,) = report_from_results(runs)["groups"]
    b = group["balance"]
    assert b["n"] == 3 and b["flops_n"] == 3
    assert b["train_flops"] == pytest.approx(200.0)
    assert b["shapley_gap"]["mean"] == pytest.approx(0.4)
    assert b["shapley_gap"]["lo"] < 0.4 < b["shapley_gap"]["hi"]
    assert b["shapley_acc"]["strong"]["mean"] == pytest.approx(0.5)
    assert b["shapley_acc"]["weak"]["mean"] == pytest.approx(0.1)
    assert b["shapley_acc"]["weak"]["lo"] >= -1.0  # clipped to a Shapley value's range


def test_runs_without_the_measures() -> None:
    """Results older than the measures give none; a group with some is summarised over those,
    and says how many; one modality evaluated keeps its FLOPs."""
    assert summarize_balance([None, None]) is None
    assert summarize_balance([{}]) is None
    partial = summarize_balance([balance(0.5, 0.1, 100), None])
    assert partial["n"] == 1 and partial["shapley_gap"]["lo"] is None
    one = summarize_balance([{"imbalance": None, "cost": {"train_flops": 7}}])
    assert one["shapley_gap"] is None and one["shapley_acc"] == {} and one["train_flops"] == 7.0
    bad = summarize_balance([{"imbalance": {"shapley_gap": float("nan")}, "cost": {}}])
    assert bad is None


def test_summary_carries_balance_to_the_report() -> None:
    full = {
        "test": {"acc": 0.9},
        "val": {"acc": 0.8, "confidence": {}},
        "best": {},
        "run": {"wall_time_s": 2.0},
        "balance": balance(0.5, 0.1, 100),
    }
    kept = run_summary.of(full)
    assert kept["balance"] == full["balance"] and "confidence" not in kept["val"]
    assert "balance" not in run_summary.of({**full, "balance": None})
    spec = {"name": "x", "seed": 0}
    assert run_summary.as_result(spec, kept)["balance"] == full["balance"]
    assert run_summary.as_result(spec, {"test": {}})["balance"] is None


def test_cli_table_prints_the_measures() -> None:
    runs = [
        ("a0", result("a", 0, 0.8, balance(0.50, 0.10, 2_000_000_000))),
        ("b0", result("b", 0, 0.7, None)),
    ]
    out = io.StringIO()
    Console(file=out, width=250).print(groups_table(report_from_results(runs)))
    text = out.getvalue()
    assert "Shapley / FLOPs" in text
    assert "gap 40.0" in text and "strong +50.0" in text and "2 GFLOP" in text
