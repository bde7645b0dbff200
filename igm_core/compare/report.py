"""The comparison report: results grouped by spec up to the seed, summarised, paired against a
baseline.

Results whose resolved specs differ only in their seed form a group (labels.py: the name may
differ by a trailing "-seed<k>"; groups that share a name are labelled by the spec keys that tell
them apart). Per group: the mean, sample std and 95% t-interval of the fused test metrics over
its seeds (clipped to [0, 1]; none with fewer than 3 seeds), per-modality accuracies, the mean
wall time and, when the spec is a paper spec (igm_core.paper.SPECS), what it runs and, where it
is held to a published row, the published numbers and the difference. Every other group is
paired with the baseline seed by seed (pairs.py), and each metric's leader with its runner-up.
Results come from result.json files (`build_report`) or as mappings (`report_from_results`, used
by the service, which fetches them from its store). Torch-free.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from igm_core import paper
from igm_core.compare import pairs as paired
from igm_core.compare.labels import Group, Run, group_runs
from igm_core.compare.pairs import MIN_SEEDS, TOO_FEW, per_seed
from igm_core.compare.stats import mean_ci, paired_diff

METRICS = paired.FUSED
INTERVAL = (
    "95% Student t-interval over seeds, clipped to the metric's range ([0, 1]; a paired "
    f"difference to [-100, +100] points); none with fewer than {MIN_SEEDS} seeds"
)
STAR = (
    "the best mean of a metric, when its paired 95% interval against the runner-up (the "
    "second-best mean, on their shared seeds) lies above 0"
)


class CompareError(ValueError):
    """A file that cannot be compared (unreadable, not JSON, not a result.json)."""


def load_result(path: str | Path) -> Run:
    """Read one result.json; CompareError naming the file when it cannot be used."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise CompareError(f"{path}: cannot read: {err.strerror or err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CompareError(f"{path}: not a JSON file: {err}") from None
    problem = _result_problem(data)
    if problem:
        raise CompareError(f"{path}: not an igm result.json ({problem})")
    return Run(path, data)


def _result_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "the top level is not an object"
    spec, test = data.get("spec"), data.get("test")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        return "no spec with a name"
    if not isinstance(spec.get("seed"), int) or not isinstance(spec.get("dataset"), dict):
        return "the spec has no seed or dataset"
    if not isinstance(test, dict):
        return "no test metrics"
    for key in METRICS:
        if not isinstance(test.get(key), int | float):
            return f"test.{key} missing"
    if not isinstance(test.get("modality_acc"), dict):
        return "test.modality_acc missing"
    return None


# ----------------------------------------------------------------------------- the report


def _stats(
    values: Sequence[float], bounds: tuple[float, float] = (0.0, 1.0)
) -> dict[str, float | None]:
    """Mean, std and the clipped t-interval; no interval below MIN_SEEDS values."""
    mean, std, lo, hi = mean_ci(values, bounds=bounds)
    if len(values) < MIN_SEEDS:
        lo = hi = math.nan
    return {
        k: None if math.isnan(v) else v
        for k, v in zip(("mean", "std", "lo", "hi"), (mean, std, lo, hi), strict=True)
    }


def summarize(group: Group) -> dict[str, Any]:
    """One group's row: seeds, metric statistics, modality means, wall time, published numbers."""
    tests = [r.result["test"] for r in group.runs]
    modalities = list(dict.fromkeys(m for t in tests for m in t["modality_acc"]))
    walls = [r.result.get("run", {}).get("wall_time_s") for r in group.runs]
    walls = [float(w) for w in walls if isinstance(w, int | float)]
    seeds = sorted({r.seed for r in group.runs})
    row: dict[str, Any] = {
        "label": group.label,
        "color_index": group.index,
        "n": len(group.runs),
        "seeds": seeds,
        "interval_note": TOO_FEW if len(seeds) < MIN_SEEDS else None,
        "files": [str(r.path) for r in group.runs],
        "method": group.spec.get("method", {}).get("name"),
        "dataset": group.spec.get("dataset", {}).get("name"),
        "metrics": {m: _stats([float(t[m]) for t in tests]) for m in METRICS},
        "modality_acc": {
            m: _stats([float(t["modality_acc"][m]) for t in tests if m in t["modality_acc"]])
            for m in modalities
        },
        "wall_time_s": math.fsum(walls) / len(walls) if walls else None,
        "paper_config": paper.paper_config(group.spec),
        "paper_label": paper.paper_label(group.spec),
    }
    row["paper"] = paper.PUBLISHED.get(row["paper_config"]) if row["paper_config"] else None
    row["paper_diff"] = _paper_diff(row)
    row["balance"] = summarize_balance([r.result.get("balance") for r in group.runs])
    return row


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def summarize_balance(measures: Sequence[Any]) -> dict[str, Any] | None:
    """BalanceBenchmark's measures (result.json's `balance`) over a group's runs: the Shapley
    gap and each modality's Shapley value of fused test accuracy (mean, interval as the metrics;
    a Shapley value lies in [-1, 1], the gap in [0, 2]) and the mean training FLOPs. `n` counts
    the runs that carry each; None when no run does (results older than the measures, or one
    modality evaluated)."""
    imb = [m.get("imbalance") for m in measures if isinstance(m, dict)]
    imb = [i for i in imb if isinstance(i, dict) and _number(i.get("shapley_gap"))]
    costs = [m.get("cost") for m in measures if isinstance(m, dict)]
    costs = [c for c in costs if isinstance(c, dict) and _number(c.get("train_flops"))]
    flops = [float(c["train_flops"]) for c in costs]
    if not imb and not flops:
        return None
    shap: dict[str, list[float]] = {}
    for i in imb:
        for mod, v in (i.get("shapley_acc") or {}).items():
            if _number(v):
                shap.setdefault(mod, []).append(float(v))
    return {
        "n": len(imb),
        "shapley_gap": _stats([float(i["shapley_gap"]) for i in imb], (0.0, 2.0)) if imb else None,
        "shapley_acc": {mod: _stats(v, (-1.0, 1.0)) for mod, v in shap.items()},
        "flops_n": len(flops),
        "train_flops": math.fsum(flops) / len(flops) if flops else None,
    }


def _paper_diff(row: dict[str, Any]) -> dict[str, Any] | None:
    pub = row["paper"]
    if pub is None:
        return None
    diff: dict[str, Any] = {m: row["metrics"][m]["mean"] - pub[m] for m in METRICS if m in pub}
    mods = {
        m: row["modality_acc"][m]["mean"] - v
        for m, v in pub.get("modality_acc", {}).items()
        if m in row["modality_acc"]
    }
    if mods:
        diff["modality_acc"] = mods
    return diff


def compare_pairs(groups: Sequence[Group], metric: str = "acc") -> list[dict[str, Any]]:
    """Paired B - A differences of `metric` (fractions, unclipped t-interval) for every two
    groups on the same dataset with the same seeds: the table of bench/replicate.py."""
    pairs = []
    for a, b in itertools.combinations(groups, 2):
        sa, sb = per_seed(a, metric), per_seed(b, metric)
        if set(sa) != set(sb) or a.spec.get("dataset") != b.spec.get("dataset"):
            continue
        mean, lo, hi, n = paired_diff(sa, sb)
        interval = not (math.isnan(lo) or math.isnan(hi))
        pairs.append(
            {
                "a": a.label,
                "b": b.label,
                "metric": metric,
                "seeds": sorted(sa),
                "n": n,
                "mean_diff": mean,
                "lo": lo if interval else None,
                "hi": hi if interval else None,
                "significant": (not lo <= 0.0 <= hi) if interval else None,
            }
        )
    return pairs


def _duplicate_warnings(groups: Sequence[Group]) -> list[str]:
    out = []
    for g in groups:
        seeds = [r.seed for r in g.runs]
        for s in sorted({s for s in seeds if seeds.count(s) > 1}):
            files = ", ".join(str(r.path) for r in g.runs if r.seed == s)
            out.append(f"{g.label}: seed {s} has {seeds.count(s)} results ({files}); all counted")
    return out


def build_report(
    paths: Sequence[str | Path], metric: str = "acc", baseline: str | None = None
) -> dict[str, Any]:
    """Load, group and summarise result files; CompareError names the first unusable file,
    BaselineError a baseline that names no group."""
    return _report([load_result(p) for p in paths], metric, baseline)


def report_from_results(
    results: Sequence[tuple[str, dict[str, Any]]],
    metric: str = "acc",
    baseline: str | None = None,
    others: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The report of (source, result mapping) pairs; CompareError names the first unusable one.
    `others`: specs of the same selection not among the results, labelled alike (group_runs)."""
    runs = []
    for source, data in results:
        problem = _result_problem(data)
        if problem:
            raise CompareError(f"{source}: not an igm result ({problem})")
        runs.append(Run(Path(source), data))
    return _report(runs, metric, baseline, others)


def _report(
    runs: list[Run], metric: str, baseline: str | None, others: Iterable[Mapping] = ()
) -> dict[str, Any]:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    groups = group_runs(runs, others)
    base, rule = paired.choose_baseline(groups, baseline)
    metrics = paired.pair_metrics(groups)
    pairs, unpaired = paired.against(groups, base, metrics)
    return {
        "metric": metric,
        "confidence": 0.95,
        "interval": INTERVAL,
        "min_seeds": MIN_SEEDS,
        "baseline": base.label if base else None,
        "baseline_rule": rule,
        "groups": [summarize(g) for g in groups],
        "pair_metrics": metrics,
        "pairs": pairs,
        "unpaired": unpaired,
        "leads": paired.leads(groups, metrics),
        "star": STAR,
        "warnings": _duplicate_warnings(groups),
    }
