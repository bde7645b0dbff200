"""The comparison report: results grouped by spec up to the seed, summarised, compared pairwise.

Results whose resolved specs differ only in their seed form a group (the name may differ by a
trailing "-seed<k>"). Per group: the mean, sample std and 95% t-interval of the fused test metrics
over its seeds, per-modality accuracies, the mean wall time and, when the spec is a paper spec
(igm_core.paper.SPECS), what it runs and, where it is held to a published row, the published
numbers and the difference. Groups on the same
dataset with the same set of seeds are compared pairwise, seed by seed (paired t-interval).
Results come from result.json files (`build_report`) or as mappings (`report_from_results`, used
by the service, which fetches them from its store). Torch-free.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igm_core import paper
from igm_core.compare.stats import mean_ci, paired_diff

METRICS = ("acc", "macro_f1", "map")
_SEED_SUFFIX = re.compile(r"-seed[0-9]+$")


class CompareError(ValueError):
    """A file that cannot be compared (unreadable, not JSON, not a result.json)."""


@dataclass
class Run:
    path: Path
    result: dict[str, Any]

    @property
    def seed(self) -> int:
        return int(self.result["spec"]["seed"])


@dataclass
class Group:
    label: str
    spec: dict[str, Any]  # the resolved spec, seed removed, name without "-seed<k>"
    runs: list[Run] = field(default_factory=list)


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


def group_key(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec without its seed, and its name without a trailing "-seed<k>"."""
    key = {k: v for k, v in spec.items() if k != "seed"}
    key["name"] = _SEED_SUFFIX.sub("", spec["name"])
    return key


def group_runs(runs: Iterable[Run]) -> list[Group]:
    """Group the runs whose specs differ only in the seed; sorted by label."""
    groups: dict[str, Group] = {}
    for run in runs:
        key = group_key(run.result["spec"])
        canon = json.dumps(key, sort_keys=True, separators=(",", ":"))
        groups.setdefault(canon, Group(key["name"], key)).runs.append(run)
    by_label: dict[str, list[tuple[str, Group]]] = {}
    for canon, group in groups.items():
        by_label.setdefault(group.label, []).append((canon, group))
    for same in by_label.values():
        if len(same) > 1:  # the same name for different specs: tell them apart by a hash
            for canon, group in same:
                group.label += f" #{hashlib.sha256(canon.encode()).hexdigest()[:8]}"
    for group in groups.values():
        group.runs.sort(key=lambda r: (r.seed, str(r.path)))
    return sorted(groups.values(), key=lambda g: g.label)


# ----------------------------------------------------------------------------- the report


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    mean, std, lo, hi = mean_ci(values)
    return {
        k: None if math.isnan(v) else v
        for k, v in zip(("mean", "std", "lo", "hi"), (mean, std, lo, hi), strict=True)
    }


def per_seed(group: Group, metric: str) -> dict[int, float]:
    """The group's test `metric` per seed (the mean where a seed has several results)."""
    values: dict[int, list[float]] = {}
    for run in group.runs:
        values.setdefault(run.seed, []).append(float(run.result["test"][metric]))
    return {s: math.fsum(v) / len(v) for s, v in values.items()}


def summarize(group: Group) -> dict[str, Any]:
    """One group's row: seeds, metric statistics, modality means, wall time, published numbers."""
    tests = [r.result["test"] for r in group.runs]
    modalities = list(dict.fromkeys(m for t in tests for m in t["modality_acc"]))
    walls = [r.result.get("run", {}).get("wall_time_s") for r in group.runs]
    walls = [float(w) for w in walls if isinstance(w, int | float)]
    row: dict[str, Any] = {
        "label": group.label,
        "n": len(group.runs),
        "seeds": sorted({r.seed for r in group.runs}),
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
    return row


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
    """Paired B - A differences of `metric` for groups on the same dataset with the same seeds."""
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


def build_report(paths: Sequence[str | Path], metric: str = "acc") -> dict[str, Any]:
    """Load, group and summarise result files; CompareError names the first unusable file."""
    return _report([load_result(p) for p in paths], metric)


def report_from_results(
    results: Sequence[tuple[str, dict[str, Any]]], metric: str = "acc"
) -> dict[str, Any]:
    """The report of (source, result mapping) pairs; CompareError names the first unusable one."""
    runs = []
    for source, data in results:
        problem = _result_problem(data)
        if problem:
            raise CompareError(f"{source}: not an igm result ({problem})")
        runs.append(Run(Path(source), data))
    return _report(runs, metric)


def _report(runs: list[Run], metric: str) -> dict[str, Any]:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    groups = group_runs(runs)
    return {
        "metric": metric,
        "confidence": 0.95,
        "groups": [summarize(g) for g in groups],
        "pairs": compare_pairs(groups, metric),
        "warnings": _duplicate_warnings(groups),
    }
