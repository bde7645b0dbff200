"""`igm compare`: seed statistics over result.json files, paired comparisons, published numbers.

Results whose resolved specs differ only in their seed form a group (the name may differ by a
trailing "-seed<k>"). Per group: the mean, sample std and 95% t-interval of the fused test metrics
over its seeds, per-modality accuracies, the mean wall time and, when the spec names a paper
configuration (igm_core.paper), the published numbers and the difference. Groups on the same
dataset with the same set of seeds are compared pairwise, seed by seed (paired t-interval).

Also here, for `igm train --seeds`: `parse_seeds` and `seed_specs`. Torch-free; scipy is imported
only to compute intervals.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from igm_core import paper

METRICS = ("acc", "macro_f1", "map")
METRIC_LABEL = {"acc": "acc", "macro_f1": "macro-F1", "map": "mAP"}
MAX_SEED = 2**31 - 1
_SEED_SUFFIX = re.compile(r"-seed[0-9]+$")


class CompareError(ValueError):
    """A file that cannot be compared (unreadable, not JSON, not a result.json)."""


class SeedsError(ValueError, argparse.ArgumentTypeError):
    """A --seeds value that does not parse; argparse prints its message as is."""


# ----------------------------------------------------------------------------- seeds


def parse_seeds(text: str) -> list[int]:
    """Seeds from "0,1,2" or ranges such as "0-4" (inclusive), mixed: "0-2,7". Distinct, in order.

    Raises SeedsError (a ValueError and an argparse.ArgumentTypeError) with the reason.
    """
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part)
        if match is None:
            raise SeedsError(
                f"bad seed {part!r} in {text!r}: give non-negative integers or ranges, e.g. 0,1,2 "
                "or 0-4"
            )
        lo, hi = int(match[1]), int(match[2] or match[1])
        if hi < lo:
            raise SeedsError(f"bad seed range {part!r}: the end is below the start")
        if hi > MAX_SEED or hi - lo >= 10_000:
            raise SeedsError(
                f"bad seed range {part!r}: seeds lie in [0, {MAX_SEED}], 10,000 at most"
            )
        for seed in range(lo, hi + 1):
            if seed in seeds:
                raise SeedsError(f"seed {seed} is given twice in {text!r}")
            seeds.append(seed)
    return seeds


def seed_specs(
    spec: dict[str, Any], seeds: Sequence[int], out: str | Path
) -> list[tuple[int, dict[str, Any], Path]]:
    """(seed, spec mapping with that seed, out/seed-<seed>) for each seed; the name is kept."""
    base = Path(out)
    return [(s, {**spec, "seed": s}, base / f"seed-{s}") for s in seeds]


def already_done(out: str | Path, spec_hash: str) -> bool:
    """True when out/result.json holds a finished run of exactly this resolved spec."""
    try:
        data = json.loads((Path(out) / "result.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("spec_hash") == spec_hash


# ----------------------------------------------------------------------------- statistics


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, ...]:
    """(mean, sample std, lower, upper) of a Student t-interval for the mean.

    With one value: (value, nan, nan, nan), there is no interval. With zero spread the interval
    is the mean itself.
    """
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    mean = math.fsum(values) / n
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    from scipy import stats

    half = float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def paired_diff(
    a: dict[int, float], b: dict[int, float], confidence: float = 0.95
) -> tuple[float, float, float, int]:
    """(mean, lower, upper, n) of b[s] - a[s] over the seeds both have (paired t-interval)."""
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("no seed in common")
    mean, _, lo, hi = mean_ci([b[s] - a[s] for s in common], confidence)
    return mean, lo, hi, len(common)


# ----------------------------------------------------------------------------- loading


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
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    groups = group_runs(load_result(p) for p in paths)
    return {
        "metric": metric,
        "confidence": 0.95,
        "groups": [summarize(g) for g in groups],
        "pairs": compare_pairs(groups, metric),
        "warnings": _duplicate_warnings(groups),
    }


# ----------------------------------------------------------------------------- rendering


def _fmt_stats(s: dict[str, float | None], n: int) -> str:
    if n == 1 or s["std"] is None:
        return f"{s['mean']:.4f}"
    return f"{s['mean']:.4f} ± {s['std']:.4f}\n[{s['lo']:.4f}, {s['hi']:.4f}]"


def _fmt_paper(row: dict[str, Any]) -> tuple[str, str]:
    pub, diff = row["paper"], row["paper_diff"]
    if pub is None:
        return "-", "-"
    keys = [m for m in METRICS if m in pub]
    published = "\n".join(f"{METRIC_LABEL[m]} {pub[m]:.4f}" for m in keys)
    delta = "\n".join(f"{METRIC_LABEL[m]} {diff[m]:+.4f}" for m in keys)
    for m, v in diff.get("modality_acc", {}).items():
        published += f"\n{m} {pub['modality_acc'][m]:.4f}"
        delta += f"\n{m} {v:+.4f}"
    return f"{row['paper_config']}\n{published}", delta


def groups_table(report: dict[str, Any]) -> Table:
    table = Table(title="test metrics over seeds: mean ± std, [95% t-interval]", show_lines=True)
    for name in ("group", "n", "acc", "macro-F1", "mAP", "modality acc", "wall", "paper", "Δ"):
        table.add_column(name, justify="left" if name in ("group", "paper") else "right")
    for row in report["groups"]:
        n = row["n"]
        seeds = ",".join(map(str, row["seeds"]))
        mods = "\n".join(f"{m} {s['mean']:.4f}" for m, s in row["modality_acc"].items())
        wall = "-" if row["wall_time_s"] is None else f"{row['wall_time_s']:.1f}s"
        table.add_row(
            f"{row['label']}\n{row['method']} on {row['dataset']}\nseeds {seeds}",
            str(n),
            *(_fmt_stats(row["metrics"][m], n) for m in METRICS),
            mods,
            wall,
            *_fmt_paper(row),
        )
    return table


def pairs_table(report: dict[str, Any]) -> Table:
    metric = METRIC_LABEL[report["metric"]]
    table = Table(title=f"paired by seed: B - A of fused test {metric}", show_lines=True)
    for name in ("A", "B", "n", "mean B - A", "95% CI", "verdict"):
        table.add_column(name, justify="right" if name in ("n", "mean B - A") else "left")
    for p in report["pairs"]:
        if p["lo"] is None:
            ci, verdict = "-", "one seed: no interval"
        else:
            ci = f"[{p['lo']:+.4f}, {p['hi']:+.4f}]"
            better = "B" if p["mean_diff"] > 0 else "A"
            verdict = f"{better} better" if p["significant"] else "not significant"
        table.add_row(p["a"], p["b"], str(p["n"]), f"{p['mean_diff']:+.4f}", ci, verdict)
    return table


def print_report(report: dict[str, Any], out: Console, err: Console) -> None:
    for warning in report["warnings"]:
        err.print(Text("warning: ", style="bold yellow") + Text(warning))
    out.print(groups_table(report))
    if report["pairs"]:
        out.print(pairs_table(report))
    elif len(report["groups"]) > 1:
        out.print("no paired comparison: no two groups share a dataset and the same seeds")


# ----------------------------------------------------------------------------- command


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of `igm compare` (used by compare_main and by igm_core.cli)."""
    p.add_argument("results", nargs="+", metavar="RESULT.json", help="result.json files")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--metric",
        choices=METRICS,
        default="acc",
        help="fused test metric of the paired comparison (default acc)",
    )
    p.set_defaults(func=cmd_compare)
    return p


def cmd_compare(args: argparse.Namespace) -> int:
    """Run `igm compare` on parsed arguments; 2 with a message for an unusable file."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        report = build_report(args.results, args.metric)
    except CompareError as error:
        err.print(Text("error: ", style="bold red") + Text(str(error)))
        return 2
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    print_report(report, Console(), err)
    return 0


def compare_main(argv: Sequence[str] | None = None) -> int:
    """`igm compare RESULT.json [RESULT.json ...] [--json] [--metric acc|macro_f1|map]`."""
    parser = configure_parser(
        argparse.ArgumentParser(
            prog="igm compare",
            description="seed statistics, paired comparisons and published numbers",
        )
    )
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:  # --help, or a usage error argparse has printed
        return exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    return cmd_compare(args)


if __name__ == "__main__":
    sys.exit(compare_main())
