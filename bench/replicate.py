"""Replication report: every method and fusion on the built-in data, 5 seeds each.

    python bench/replicate.py [--seeds 0,1,2,3,4] [--out docs/replication.md] [--only LABELS]

Trains joint, unimodal (each modality), alternating, mla, ogm_ge, igm and the field's imbalance
baselines (gblending, agm, pmr, mmpareto, reconboost, relearning) on three settings:
`synthetic` with a strongly imbalanced pair (a linear, fast-learned modality beside one whose
signal is mostly behind a nonlinear code), `digits` with 2 views and with 3 views. IGM runs in its
two SAM variants, each under a label that says which: `igm reference` (`sam: reference`, the
authors' code, which produced the paper's IGM numbers) and `igm standard` (`sam: standard`, true
SAM as the paper's equations state it). MLA runs as its paper and release define it and in three
sensitivity variants: `mla project` (the paper's OWM projection, `project: true`), `mla linear
head` (the release's one-Linear shared head, `model.head_hidden: []`) and both. The
alternating-family methods run once per seed with their default fusion (`mean`, or MLA's
`entropy_logits`, which also selects the checkpoint); result["fusions"] scores every fusion (mean,
entropy, geometric, calibrated) on that same selected model. Statistics are the ones `igm compare`
prints (igm_core.compare): mean, 95% t-interval over seeds, and paired per-seed differences with
their 95% t-interval; BalanceBenchmark's measures (result.json's `balance`: each modality's
Shapley value of fused test accuracy, their gap, training FLOPs) per method. The report
(Markdown) states the command, the versions, the machine and its load, and the wall time;
progress goes to stdout (bench/results/replicate.log when run as below). `--only LABELS` (or
`--only baselines`) trains only those methods and merges them with every other row of an
earlier run's bench/results/replicate.json; the report then names each run behind it.

    nohup nice -n 10 .venv/bin/python bench/replicate.py > bench/results/replicate.log 2>&1 &
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from igm_core import catalog
from igm_core.compare import compare_pairs, group_runs, parse_seeds, report_from_results
from igm_core.compare.report import Run, summarize_balance
from igm_core.spec import resolve_spec
from igm_core.trainer import train

ROOT = Path(__file__).resolve().parents[1]
FAMILY = ("alternating", "mla", "igm")  # methods that fuse unimodal outputs
# Each run of an alternating-family method: its label -> (method, method params, model keys, the
# fusions the report shows: None for all). A label says what runs; a variant is never "igm".
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any], tuple[str, ...] | None]] = {
    "alternating": ("alternating", {}, {}, None),
    "mla": ("mla", {}, {}, None),
    "mla project": ("mla", {"project": True}, {}, ("entropy_logits",)),
    "mla linear head": ("mla", {}, {"head_hidden": []}, ("entropy_logits",)),
    "mla linear head project": ("mla", {"project": True}, {"head_hidden": []}, ("entropy_logits",)),
    "igm reference": ("igm", {"sam": "reference"}, {}, None),
    "igm standard": ("igm", {"sam": "standard"}, {}, None),
}
IGM = ("igm reference", "igm standard")  # the first is the variant behind the paper's numbers
# each with its default fusion against both IGM variants with theirs
# The field's imbalance baselines (igm_core/catalog/baselines.py), each run once per seed at its
# release's defaults but where a default counts in a run length these settings do not have
# (baseline_spec says which and why).
BASELINES = ("gblending", "agm", "pmr", "mmpareto", "reconboost", "relearning")
RIVALS = ("joint", "alternating", "mla", "mla project", "mla linear head",
          "mla linear head project", "ogm_ge", *BASELINES)  # fmt: skip
SAME_FUSION_RIVALS = ("joint", "alternating", "mla", "ogm_ge")  # fusion by fusion, vs IGM's first
OUTPUTS = ("docs/replication.md", "bench/results/replicate.log", "bench/results/replicate.json")

# Each setting: the dataset, its modalities, the optimiser and batch, and the stage lengths of the
# staged methods (alternating, igm). Every method gives each modality's branch the same number of
# passes over the training set, E = sum(stage_epochs) / M: the staged methods train one modality
# per stage, the others (joint, ogm_ge, unimodal, and mla, which alternates modalities inside every
# mini-batch) train E epochs. Every method selects its checkpoint on the validation split.
SETTINGS: dict[str, dict[str, Any]] = {
    "synthetic (imbalanced)": {
        "dataset": {
            "name": "synthetic",
            "params": {"dims": [32, 32], "signal": [2.0, 2.0], "difficulty": [0.0, 0.8]},
        },
        "modalities": ["strong", "weak"],
        "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
        "batch_size": 64,
        "stage_epochs": [3] * 8,
    },
    "digits, 2 views": {
        "dataset": {"name": "digits", "params": {"views": 2, "noise": [0.1, 0.6]}},
        "modalities": ["top", "bottom"],
        "optimizer": {"name": "sgd", "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-4},
        "batch_size": 32,
        "stage_epochs": [3] * 6,
    },
    "digits, 3 views": {
        "dataset": {"name": "digits", "params": {"views": 3, "noise": [0.1, 0.6, 0.3]}},
        "modalities": ["top", "bottom", "coarse"],
        "optimizer": {"name": "sgd", "lr": 0.02, "momentum": 0.9, "weight_decay": 1e-4},
        "batch_size": 32,
        "stage_epochs": [3] * 9,
    },
}


def specs_for(setting: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """label -> spec (without seed) of every method run on one setting."""
    base = {k: setting[k] for k in ("dataset", "modalities", "optimizer", "batch_size")}
    stages = {"stage_epochs": setting["stage_epochs"]}
    epochs = {"epochs": sum(setting["stage_epochs"]) // len(setting["modalities"])}
    out = {"joint": {"method": {"name": "joint"}, "schedule": epochs}}
    for m in setting["modalities"]:
        out[f"unimodal {m}"] = {
            "method": {"name": "unimodal", "params": {"modality": m}},
            "schedule": epochs,
        }
    out["ogm_ge"] = {"method": {"name": "ogm_ge"}, "schedule": epochs}
    for label, (name, params, model, _) in VARIANTS.items():
        form = catalog.method_rules(name).schedule  # of the default parameters
        out[label] = {
            "method": {"name": name, "params": params},
            "schedule": stages if form == "stages" else epochs,
            **({"model": model} if model else {}),
        }
    for name in BASELINES:
        out[name] = baseline_spec(name, len(setting["modalities"]), epochs["epochs"])
    return {label: {"name": label, **copy.deepcopy(base), **spec} for label, spec in out.items()}


def reconboost_rounds(m: int, epochs: int) -> int:
    """Fewest one-epoch boosting rounds, each followed by one rectification epoch, that give the
    M modalities' branches at least `epochs` passes on average: modality i (in order) is boosted
    in rounds i, i + M, ... and rectified in every round from its first on."""
    rounds = 1
    while True:
        passes = [len(range(i, rounds, m)) + max(rounds - i, 0) for i in range(m)]
        if sum(passes) / m >= epochs:
            return rounds
        rounds += 1


def baseline_spec(name: str, m: int, epochs: int) -> dict[str, Any]:
    """A baseline's method and schedule for a setting with m modalities and `epochs` passes per
    branch. ReconBoost: one-epoch boosting rounds and one rectification epoch per round (the
    release's 4 would give its branches about four times the passes of every other method), as
    many rounds as give the branches `epochs` passes on average. Re-learning: its diagnosis
    every epochs // 4 epochs (the release's every 20th never comes in a run this short), so its
    3 diagnoses fall inside the run."""
    if name == "reconboost":
        schedule = {"stage_epochs": [1] * reconboost_rounds(m, epochs)}
        return {"method": {"name": name, "params": {"correct_epochs": 1}}, "schedule": schedule}
    params = {"reinit_epoch": max(1, epochs // 4)} if name == "relearning" else {}
    return {"method": {"name": name, "params": params}, "schedule": {"epochs": epochs}}


def family(label: str) -> bool:
    """Is this run's method one that fuses unimodal outputs (scored under every fusion)?"""
    return label in VARIANTS


def git_commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        outputs = [f":!{p}" for p in OUTPUTS]  # this run rewrites them: not a code change
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *outputs],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + (" (with uncommitted changes)" if dirty else "")


def run_all(
    seeds: list[int], only: set[str] | None = None, settings: list[str] | None = None
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """setting -> [(label, result)] for every method (those in `only`, when given) and seed of
    every setting (those in `settings`, when given); progress on stdout."""
    results: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for setting_name, setting in SETTINGS.items():
        if settings is not None and setting_name not in settings:
            continue
        rows = results.setdefault(setting_name, [])
        for label, spec in specs_for(setting).items():
            if only is not None and label not in only:
                continue
            for seed in seeds:
                t0 = time.perf_counter()
                result = train({**spec, "seed": seed}).result
                rows.append((label, result))
                fus = result.get("fusions") or {}
                print(
                    f"{setting_name} | {label} | seed {seed}: test acc {result['test']['acc']:.4f}"
                    + (
                        " | " + " ".join(f"{f} {fus[f]['test_acc']:.4f}" for f in fus)
                        if fus
                        else ""
                    )
                    + f" | {time.perf_counter() - t0:.1f} s",
                    flush=True,
                )
    return results


def stored_rows(
    data: dict[str, Any], seeds: list[int], skip: set[tuple[str, str]]
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The rows of an earlier run (replicate.json) as (label, result) for the report, leaving
    out the (setting, label) pairs in `skip`; an entry written before the spec was stored gets
    its spec resolved from this file's settings (the same spec: its label names it)."""
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for setting_name, entries in data["results"].items():
        specs = specs_for(SETTINGS[setting_name])
        rows = out.setdefault(setting_name, [])
        for e in entries:
            if (setting_name, e["label"]) in skip or e["seed"] not in seeds:
                continue
            spec = e.get("spec") or resolve_spec({**specs[e["label"]], "seed": e["seed"]}).to_dict()
            result = {
                "spec": spec,
                "test": e["test"],
                "fusions": e.get("fusions"),
                "calibration": e.get("calibration"),
                "best": e["best"],
                "run": {"wall_time_s": e["wall_time_s"]},
                "balance": e.get("balance"),
            }
            rows.append((e["label"], result))
    return out


def merged(
    old: dict[str, list[tuple[str, dict[str, Any]]]],
    new: dict[str, list[tuple[str, dict[str, Any]]]],
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Every setting's rows, earlier and new, in the order specs_for lists the methods."""
    out = {}
    for name, setting in SETTINGS.items():
        rows = old.get(name, []) + new.get(name, [])
        order = {label: i for i, label in enumerate(specs_for(setting))}
        out[name] = sorted(rows, key=lambda row: (order[row[0]], row[1]["spec"]["seed"]))
    return out


def fusion_results(label: str, result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One pseudo-result per fusion of an alternating-family run, for the compare statistics:
    the same spec and modality accuracies, the fused test metrics of that fusion."""
    out = []
    for fusion, row in result["fusions"].items():
        r = copy.deepcopy(result)
        r["spec"]["name"] = f"{label} [{fusion}]"
        r["spec"]["method"]["params"]["fusion"] = fusion
        r["test"] = {
            "acc": row["test_acc"],
            "macro_f1": row["test_macro_f1"],
            "map": row["test_map"],
            "modality_acc": result["test"]["modality_acc"],
        }
        out.append((f"{label} [{fusion}]", r))
    return out


def pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def ci(stats: dict[str, Any]) -> str:
    if stats["lo"] is None:
        return f"{pct(stats['mean'])}"
    return f"{pct(stats['mean'])} [{pct(stats['lo'])}, {pct(stats['hi'])}]"


def fusions_of(rows: list[tuple[str, dict[str, Any]]]) -> dict[str, list[str]]:
    """The fusions the report shows for each alternating-family run, in their order."""
    out: dict[str, list[str]] = {}
    for label, result in rows:
        if family(label):
            shown = VARIANTS[label][3]
            out.setdefault(label, [f for f in result["fusions"] if shown is None or f in shown])
    return out


def defaults_of(rows: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """Each alternating-family run's configured (default) fusion."""
    return {
        label: result["spec"]["method"]["params"]["fusion"]
        for label, result in rows
        if family(label)
    }


def wanted_pairs(fusions: dict[str, list[str]], defaults: dict[str, str]) -> list[tuple[str, str]]:
    """(A, B) pairs of the paired table, every IGM side naming its variant: each rival with its
    default fusion against both IGM variants with theirs; then, fusion by fusion, the rivals
    against IGM as the authors' code runs it, and the other IGM variant against it; then that
    variant's fusions against its mean fusion."""

    def at(label: str, fusion: str | None = None) -> str:
        return f"{label} [{fusion or defaults[label]}]" if family(label) else label

    ref, other = IGM
    wanted = [(at(rival), at(igm)) for igm in IGM for rival in RIVALS]
    for fusion in fusions[ref]:  # the same fusion on both sides
        for rival in SAME_FUSION_RIVALS:
            if not family(rival) or fusion in fusions[rival]:
                wanted.append((at(rival, fusion), at(ref, fusion)))
        wanted.append((at(other, fusion), at(ref, fusion)))
    wanted += [(at(ref, "mean"), at(ref, f)) for f in fusions[ref] if f != "mean"]
    return list(dict.fromkeys(wanted))


def setting_section(name: str, rows: list[tuple[str, dict[str, Any]]]) -> tuple[str, dict]:
    """Markdown of one setting, and its key numbers for the summary."""
    expanded: list[tuple[str, dict[str, Any]]] = []
    for label, result in rows:
        if family(label):
            expanded.extend(fusion_results(label, result))
        else:
            expanded.append((label, result))
    report = report_from_results(expanded)
    groups = {g["label"]: g for g in report["groups"]}
    modalities = SETTINGS[name]["modalities"]
    lines = [f"## {name}", ""]
    spec_line = dict(SETTINGS[name])
    lines.append(f"Setting: `{json.dumps(spec_line, separators=(', ', ': '))}`.")
    per_modality = sum(spec_line["stage_epochs"]) // len(modalities)
    lines += [
        "",
        f"Each modality's branch sees the training set {per_modality} times: joint, ogm_ge,"
        f" unimodal and the mla runs train {per_modality} epochs; alternating and the igm runs"
        f" train {len(spec_line['stage_epochs'])} stages of one modality each.",
        "",
    ]
    head = "| method [fusion] | fused test acc, % (95% CI) | macro-F1 | " + " | ".join(
        f"{m} acc, %" for m in modalities
    )
    lines += [head + " |", "|" + " --- |" * (3 + len(modalities))]
    fusions = fusions_of(rows)
    order = list(dict.fromkeys(lbl for lbl, _ in rows if not family(lbl)))
    for fam in VARIANTS:
        order += [f"{fam} [{f}]" for f in fusions[fam]]
    for label in order:
        g = groups[label]
        mods = " | ".join(
            ci(g["modality_acc"][m]) if m in g["modality_acc"] else "-" for m in modalities
        )
        lines.append(
            f"| {label} | {ci(g['metrics']['acc'])} | {ci(g['metrics']['macro_f1'])} | {mods} |"
        )
    lines.append("")
    lines += balance_table(rows, modalities)
    # paired differences, the statistics of `igm compare`
    by_label = {g.label: g for g in group_runs(Run(Path(lbl), r) for lbl, r in expanded)}
    wanted = wanted_pairs(fusions, defaults_of(rows))
    lines += [
        "Paired differences of fused test accuracy (B - A, per seed; mean and 95% t-interval):",
        "",
        "| A | B | B - A, points | 95% CI | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    key: dict[str, Any] = {}
    for a, b in wanted:
        if a not in by_label or b not in by_label:  # a run of a subset (--only) lacks it
            continue
        pair = compare_pairs([by_label[a], by_label[b]])  # b - a, seed by seed
        if not pair:
            continue
        mean, lo, hi = pair[0]["mean_diff"], pair[0]["lo"], pair[0]["hi"]
        if lo is None:
            verdict = "no interval"
        elif lo == hi == 0.0:
            verdict = "equal on every seed"
        elif lo <= 0.0 <= hi:
            verdict = "within interval"
        else:
            verdict = f"B {'higher' if mean > 0 else 'lower'}"
        rng = "-" if lo is None else f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"
        lines.append(f"| {a} | {b} | {100 * mean:+.1f} | {rng} | {verdict} |")
        key[(a, b)] = {"mean": mean, "lo": lo, "hi": hi, "verdict": verdict}
    lines.append("")
    balance = {
        label: summarize_balance([r.get("balance") for lbl, r in rows if lbl == label])
        for label in dict.fromkeys(lbl for lbl, _ in rows)
    }
    return "\n".join(lines), {"groups": groups, "pairs": key, "order": order, "balance": balance}


BALANCE_TEXT = (
    "Balance (BalanceBenchmark's measures, result.json's `balance`, igm_core/balance.py): each"
    " modality's Shapley value of fused test accuracy on the selected model (the inputs of the"
    " modalities outside a coalition set to zero; points, mean and 95% t-interval over seeds),"
    " the gap between the largest and the smallest, and the FLOPs of training (one step of each"
    " kind times the steps; the work some methods do between epochs, such as an estimate or a"
    " clustering, is not counted). An alternating-family run is measured with its configured"
    " fusion."
)


def points(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "-"
    if stats["lo"] is None:
        return f"{100 * stats['mean']:.1f}"
    return f"{100 * stats['mean']:.1f} [{100 * stats['lo']:.1f}, {100 * stats['hi']:.1f}]"


def balance_table(rows: list[tuple[str, dict[str, Any]]], modalities: list[str]) -> list[str]:
    """The balance measures of every run label that recorded them, and the labels that did not."""
    labels = list(dict.fromkeys(lbl for lbl, _ in rows))
    lines = [BALANCE_TEXT, ""]
    lines.append(
        "| method | Shapley gap, points | "
        + " | ".join(f"{m} Shapley, points" for m in modalities)
        + " | train GFLOP |"
    )
    lines.append("|" + " --- |" * (3 + len(modalities)))
    missing = []
    for label in labels:
        b = summarize_balance([r.get("balance") for lbl, r in rows if lbl == label])
        if b is None:
            missing.append(label)
            continue
        shap = " | ".join(points(b["shapley_acc"].get(m)) for m in modalities)
        flops = "-" if b["train_flops"] is None else f"{b['train_flops'] / 1e9:.1f}"
        lines.append(f"| {label} | {points(b['shapley_gap'])} | {shap} | {flops} |")
    if missing:
        lines += [
            "",
            "Not recorded (their results come from a run before result.json carried the"
            " measures; a full run records them): " + ", ".join(missing) + ".",
        ]
    return [*lines, ""]


def key_tables(summary: dict[str, dict[str, Any]]) -> list[str]:
    """The key table (fused test accuracy per method and setting) and IGM's paired verdicts."""
    names = list(summary)
    lines = [
        "## Key table: fused test accuracy, % (mean over seeds, 95% t-interval)",
        "",
        "| method [fusion] | " + " | ".join(names) + " |",
        "|" + " --- |" * (1 + len(names)),
    ]
    rows = list(dict.fromkeys(r for n in names for r in summary[n]["order"]))
    rows = [r for r in rows if not r.startswith("unimodal")]
    for row in rows:
        cells = [
            ci(summary[n]["groups"][row]["metrics"]["acc"]) if row in summary[n]["groups"] else "-"
            for n in names
        ]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "IGM minus each rival (B - A, points, 95% interval), every IGM side naming its variant:",
        "first each rival with its default fusion against both IGM variants with theirs; then,",
        "fusion by fusion, the rivals and `igm standard` against `igm reference`; then",
        "`igm reference`'s fusions against its mean fusion:",
        "",
        "| A | B | " + " | ".join(names) + " |",
        "|" + " --- |" * (2 + len(names)),
    ]
    pairs = list(dict.fromkeys(p for n in names for p in summary[n]["pairs"]))
    for a, b in pairs:
        cells = []
        for n in names:
            p = summary[n]["pairs"].get((a, b))
            if p is None or p["lo"] is None:
                cells.append("-")
                continue
            cells.append(
                f"{100 * p['mean']:+.1f} [{100 * p['lo']:+.1f}, {100 * p['hi']:+.1f}] "
                + p["verdict"]
            )
        lines.append(f"| {a} | {b} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Key table: balance (Shapley gap of fused test accuracy, points; training GFLOP)",
        "",
        "Mean over seeds; the gap's 95% interval and each modality's Shapley value are in the",
        "sections below. '-': not recorded by the run that produced the row.",
        "",
        "| method | " + " | ".join(names) + " |",
        "|" + " --- |" * (1 + len(names)),
    ]
    labels = list(dict.fromkeys(lbl for n in names for lbl in summary[n]["balance"]))
    for label in [lbl for lbl in labels if not lbl.startswith("unimodal")]:
        cells = []
        for n in names:
            b = summary[n]["balance"].get(label)
            if b is None or b["shapley_gap"] is None:
                cells.append("-")
                continue
            flops = "" if b["train_flops"] is None else f"; {b['train_flops'] / 1e9:.1f} GFLOP"
            cells.append(f"{100 * b['shapley_gap']['mean']:.1f}{flops}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def provenance_of(data: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    """The runs behind an earlier replicate.json: its `runs`, or, for a file written before
    they were stored, the one full run its report (`out`) states."""
    if "runs" in data:
        return data["runs"]
    stated = {"labels": None, "wall_s": data.get("wall_s"), "commit": None, "machine": None}
    if out.exists():
        for line in out.read_text().splitlines():
            if line.startswith("- git commit: "):
                stated["commit"] = line.removeprefix("- git commit: ")
            elif line.startswith("- python "):
                stated["machine"] = line.removeprefix("- ")
    return [stated]


def provenance_lines(runs: list[dict[str, Any]]) -> list[str]:
    """One bullet per run behind the report: what it ran, the code, the machine and its load."""
    lines = []
    for run in runs:
        what = "every method" if run["labels"] is None else ", ".join(run["labels"])
        if run.get("settings") and len(run["settings"]) < len(SETTINGS):
            what += " on " + "; ".join(run["settings"])
        wall = "?" if run.get("wall_s") is None else f"{run['wall_s'] / 60:.1f} min"
        lines.append(
            f"- {what}: git commit {run.get('commit') or 'unknown'}; {run.get('machine') or '?'};"
            f" wall time {wall}"
        )
    return lines


def machine_line(threads: int, load_start: float, load_end: float) -> str:
    return (
        f"python {platform.python_version()}, torch {torch.__version__}, {platform.machine()}"
        f" CPU, {threads} torch thread(s), {os.cpu_count()} cores, load average"
        f" {load_start:.1f} at the start and {load_end:.1f} at the end (the machine is shared)"
    )


def entry(label: str, r: dict[str, Any]) -> dict[str, Any]:
    """One run in replicate.json: enough to rebuild the report without training again."""
    return {
        "label": label,
        "seed": r["spec"]["seed"],
        "spec": r["spec"],
        "test": {k: v for k, v in r["test"].items() if k != "logits"},
        "fusions": r.get("fusions"),
        "calibration": r.get("calibration"),
        "best": r["best"],
        "wall_time_s": r["run"]["wall_time_s"],
        "balance": r.get("balance"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3,4", help="seeds (default 0,1,2,3,4)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "replication.md"))
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "replicate.json"))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument(
        "--only",
        default=None,
        help="comma-separated method labels (or 'baselines' for the six imbalance baselines):"
        " train only these, take every other row from --json (an earlier run) and merge",
    )
    ap.add_argument(
        "--settings",
        default=None,
        help=f"with --only: train in these settings only ({', '.join(SETTING_KEYS)})",
    )
    ap.add_argument(
        "--merge",
        default=None,
        help="with --only: train nothing; take the rows of those labels from these"
        " comma-separated replicate.json files of --only runs (each for the settings it trained,"
        " as when one run per setting ran side by side) and merge them into --json",
    )
    ap.add_argument(
        "--smoke", action="store_true", help="one epoch per stage, one stage per modality (a check)"
    )
    args = ap.parse_args(argv)
    if (args.settings or args.merge) and not args.only:
        ap.error("--settings and --merge go with --only")
    return args


SETTING_KEYS = dict(zip(("synthetic", "digits2", "digits3"), SETTINGS, strict=True))


def all_labels() -> list[str]:
    """Every method label of every setting, in specs_for's order."""
    return list(dict.fromkeys(lbl for setting in SETTINGS.values() for lbl in specs_for(setting)))


def only_labels(text: str | None) -> set[str] | None:
    if text is None:
        return None
    known = set(all_labels())
    labels = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        labels |= set(BASELINES) if part == "baselines" else {part}
    unknown = sorted(labels - known)
    if unknown:
        raise SystemExit(f"--only: unknown label(s) {', '.join(unknown)}; known: {sorted(known)}")
    return labels


def from_files(
    paths: list[str], seeds: list[int], only: set[str]
) -> tuple[dict[str, list[tuple[str, dict[str, Any]]]], list[dict[str, Any]]]:
    """The rows of `only` that each file's last run trained (its settings), and those runs."""
    new: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    runs = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        run = data["runs"][-1]
        trained = {(n, lbl) for n in run["settings"] for lbl in only}
        keep = {(n, e["label"]) for n, es in data["results"].items() for e in es} - trained
        for name, rows in stored_rows(data, seeds, keep).items():
            new.setdefault(name, []).extend(rows)
        runs.append(run)
    return new, runs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        for setting in SETTINGS.values():
            setting["stage_epochs"] = [1] * len(setting["modalities"])
    seeds = parse_seeds(args.seeds)
    only = only_labels(args.only)
    settings = None
    if args.settings:
        settings = [SETTING_KEYS[k.strip()] for k in args.settings.split(",")]
    torch.set_num_threads(args.threads)
    commit = git_commit()  # the code the runs use
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    earlier: dict[str, Any] = {"results": {}}
    if only is not None:  # the rows not trained now come from the earlier run
        earlier = json.loads(Path(args.json).read_text())
    t0 = time.perf_counter()
    if args.merge:
        new, these = from_files(args.merge.split(","), seeds, only)
    else:
        new = run_all(seeds, only, settings)
    wall = time.perf_counter() - t0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if not args.merge:
        these = [
            {
                "labels": None if only is None else [lbl for lbl in all_labels() if lbl in only],
                "settings": list(new),
                "wall_s": wall,
                "commit": commit,
                "machine": machine_line(args.threads, load_start, load),
            }
        ]
    runs, results = these, new
    if only is not None:
        trained = {(n, lbl) for n in new for lbl in only}
        runs = [*provenance_of(earlier, Path(args.out)), *these]
        results = merged(stored_rows(earlier, seeds, trained), new)
    write_outputs(args, seeds, results, runs)
    print(f"wrote {args.out} and {args.json}; trained for {wall / 60:.1f} min", flush=True)
    return 0


def write_outputs(
    args: argparse.Namespace,
    seeds: list[int],
    results: dict[str, list[tuple[str, dict[str, Any]]]],
    runs: list[dict[str, Any]],
) -> None:
    raw = {name: [entry(label, r) for label, r in rows] for name, rows in results.items()}
    wall = math.fsum(r["wall_s"] or 0.0 for r in runs)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"wall_s": wall, "runs": runs, "results": raw}, indent=1))
    sections, summary = [], {}
    for name, rows in results.items():
        text, key = setting_section(name, rows)
        sections.append(text)
        summary[name] = key
    command = (
        "python bench/replicate.py"
        + (f" --seeds {args.seeds}" if args.seeds != "0,1,2,3,4" else "")
        + (" --smoke" if args.smoke else "")
    )
    header = [
        "# Replication report: IGM against its baselines on the built-in data",
        "",
        f"Generated by `{command}` (with `--only LABELS`, which trains only those methods and"
        " takes every other row from bench/results/replicate.json); do not edit by hand.",
        "",
        "The runs behind it:",
        "",
        *provenance_lines(runs),
        f"- seeds: {', '.join(map(str, seeds))}",
        "",
        *HOW_TO_READ,
    ]
    text = "\n".join(header + key_tables(summary)) + "\n" + "\n".join(sections)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


HOW_TO_READ = [
    "How to read it. Every number is a test-set percentage: the mean over seeds and its 95%",
    "Student t-interval (`igm compare`'s statistics, igm_core.compare). Every run selects its",
    "checkpoint on the validation split and is tested once. The alternating-family runs",
    "(alternating, the mla runs, the igm runs) are trained ONCE per seed with their default",
    "fusion (mean for alternating and igm, entropy_logits for mla), which also selects the",
    "checkpoint; every fusion is then scored on that same selected model (result.json's",
    "`fusions`): `calibrated` fits its per-modality temperatures on the validation split.",
    "Every method gives each modality's branch the same number of passes over the training",
    "set (alternating and igm: one modality per stage; joint, ogm_ge, unimodal and mla, which",
    "alternates modalities inside each mini-batch, and the joint baselines: that many epochs;",
    "reconboost: enough one-epoch boosting rounds, each followed by one rectification epoch, to",
    "give its branches as many passes on average). A paired difference",
    "compares two methods seed by seed (a seed draws the initial weights and the data: the",
    "synthetic samples, the digits splits and noise); 'within interval' means its 95%",
    "interval covers 0: no difference is shown.",
    "",
    "The variants, by label:",
    "",
    "- `igm reference`: IGM as the authors' code runs it (`sam: reference`: (1 - 0.3) mixup",
    "  CE + 0.3 CE of the head perturbed by rho 1e-10 per tensor, the perturbation kept), the",
    "  variant behind the paper's IGM numbers.",
    "- `igm standard`: IGM by the paper's equations (`sam: standard`: true SAM, one global",
    "  norm, theta restored) at the project's default rho 0.05 (the paper's 1e-10 changes",
    "  nothing in float32).",
    "- `mla`: MLA as its paper and release define it (one step per modality per mini-batch",
    "  over a shared head, here the 3-layer head of every other method; no projection, as the",
    "  release applies none; `entropy_logits` fusion). Sensitivity rows, default fusion only:",
    "  `mla project` (`project: true`: the paper's OWM rule with the release's alpha",
    "  schedule and normalisation), `mla linear head` (the release's one-Linear shared head,",
    "  `model.head_hidden: []`) and `mla linear head project` (both).",
    "- The field's imbalance baselines (igm_core/catalog/baselines.py), at their releases'",
    "  defaults: `gblending` (offline weights estimated on a held-out tenth of the training",
    "  split), `agm`, `pmr`, `mmpareto`; `reconboost` with one-epoch rounds and one",
    "  rectification epoch per round (the release's 4 would give its branches about four times",
    "  the passes of every other method); `relearning` with its diagnosis every epochs // 4",
    "  epochs (the release's every 20th never comes in runs this short), so its 3 diagnoses",
    "  fall inside the run.",
    "",
]


if __name__ == "__main__":
    sys.exit(main())
