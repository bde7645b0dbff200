"""Paired comparisons of seed groups: every group against one baseline, and each metric's leader
against its runner-up.

A pair is B - baseline, seed by seed on the seeds both groups have, in percentage points, for
the fused test metrics (`acc`, `macro_f1`, `map`) and each modality's own test accuracy
(`modality_acc.<modality>`). Its 95% paired t-interval is clipped to [-100, +100] points (a
difference of two [0, 1] metrics) and given only with at least MIN_SEEDS shared seeds. A group
that cannot be paired (another dataset, no seed in common) is listed with the reason.

The default baseline is the joint-training group (method `joint`, the plain multimodal training
every method of this field is measured against), else the first group by label. A lead is the
best mean of a metric; it is starred only when its paired interval against the runner-up (the
second-best mean) lies above 0. Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from igm_core.compare.labels import Group
from igm_core.compare.stats import paired_diff

FUSED = ("acc", "macro_f1", "map")
MIN_SEEDS = 3
JOINT = "joint"
TOO_FEW = "too few seeds for an interval"
_DIFF_BOUNDS = (-1.0, 1.0)


class BaselineError(ValueError):
    """A baseline that names no group, or several."""


def modalities(groups: Sequence[Group]) -> list[str]:
    """The modalities with a test accuracy in any group, in order of first appearance."""
    tests = (r.result["test"] for g in groups for r in g.runs)
    return list(dict.fromkeys(m for t in tests for m in t.get("modality_acc", {})))


def pair_metrics(groups: Sequence[Group]) -> list[str]:
    """The metrics paired: the fused ones, then `modality_acc.<m>` for each modality."""
    return [*FUSED, *(f"modality_acc.{m}" for m in modalities(groups))]


def value(test: dict[str, Any], metric: str) -> float | None:
    """A test metric by name (`acc`, `modality_acc.audio`); None when the run lacks it."""
    if metric.startswith("modality_acc."):
        found = test.get("modality_acc", {}).get(metric.removeprefix("modality_acc."))
    else:
        found = test.get(metric)
    return float(found) if isinstance(found, int | float) else None


def per_seed(group: Group, metric: str) -> dict[int, float]:
    """The group's test `metric` per seed (the mean where a seed has several results)."""
    values: dict[int, list[float]] = {}
    for run in group.runs:
        v = value(run.result["test"], metric)
        if v is not None:
            values.setdefault(run.seed, []).append(v)
    return {s: math.fsum(v) / len(v) for s, v in values.items()}


def choose_baseline(groups: Sequence[Group], given: str | None) -> tuple[Group | None, str]:
    """The baseline group and why it is the one: `given` names a label, or a method that one
    group alone has; by default the joint-training group, else the first group by label."""
    if given is not None:
        by_label = [g for g in groups if g.label == given]
        by_method = [g for g in groups if g.spec.get("method", {}).get("name") == given]
        found = by_label or by_method
        if len(found) == 1:
            return found[0], "chosen"
        labels = ", ".join(g.label for g in found or groups) or "none"
        if found:
            raise BaselineError(f"baseline {given!r} names {len(found)} groups ({labels}): "
                                "give one of their labels")  # fmt: skip
        raise BaselineError(f"baseline {given!r} names no group; the groups: {labels}")
    if len(groups) < 2:
        return None, "one group: nothing to pair"
    joint = [g for g in groups if g.spec.get("method", {}).get("name") == JOINT]
    if joint:
        best = max(joint, key=lambda g: len({r.seed for r in g.runs}))  # most seeds, then label
        return best, "joint training"
    return groups[0], "no joint-training group: the first group by label"


def _pair(a: Group, b: Group, metric: str) -> dict[str, Any] | None:
    """b - a of `metric` on the seeds both have, in percentage points; None without one."""
    sa, sb = per_seed(a, metric), per_seed(b, metric)
    shared = sorted(set(sa) & set(sb))
    if not shared:
        return None
    mean, lo, hi, n = paired_diff(sa, sb, bounds=_DIFF_BOUNDS)
    interval = n >= MIN_SEEDS and not (math.isnan(lo) or math.isnan(hi))
    notes = [] if interval else [TOO_FEW]
    alone = sorted((set(sa) | set(sb)) - set(shared))
    if alone:
        notes.append(f"seed{'s' * (len(alone) > 1)} {', '.join(map(str, alone))} not in both")
    return {
        "a": a.label,
        "b": b.label,
        "metric": metric,
        "seeds": shared,
        "n": n,
        "diff_pp": 100.0 * mean,
        "lo_pp": 100.0 * lo if interval else None,
        "hi_pp": 100.0 * hi if interval else None,
        "significant": (not lo <= 0.0 <= hi) if interval else None,
        "note": "; ".join(notes) or None,
    }


def why_not_paired(a: Group, b: Group) -> str | None:
    """Why `b` cannot be paired with `a` (another dataset, no seed in common), or None."""
    da, db = a.spec.get("dataset", {}), b.spec.get("dataset", {})
    if da.get("name") != db.get("name"):
        return f"another dataset ({db.get('name')}; {a.label}: {da.get('name')})"
    if da != db:
        return f"the dataset's parameters differ from those of {a.label}"
    seeds_a, seeds_b = sorted({r.seed for r in a.runs}), sorted({r.seed for r in b.runs})
    if not set(seeds_a) & set(seeds_b):
        mine, theirs = (", ".join(map(str, s)) for s in (seeds_b, seeds_a))
        return f"no seed in common (seeds {mine}; {a.label}: {theirs})"
    return None


def against(
    groups: Sequence[Group], baseline: Group | None, metrics: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every other group paired with the baseline on each metric both have; and the groups
    that could not be paired, with the reason."""
    pairs: list[dict[str, Any]] = []
    unpaired: list[dict[str, str]] = []
    if baseline is None:
        return pairs, unpaired
    for group in groups:
        if group is baseline:
            continue
        reason = why_not_paired(baseline, group)
        found = [] if reason else [p for m in metrics if (p := _pair(baseline, group, m))]
        if found:
            pairs.extend(found)
        else:
            unpaired.append({"group": group.label, "reason": reason or "no metric in common"})
    return pairs, unpaired


def leads(groups: Sequence[Group], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Per metric, the group with the best mean and its paired difference against the runner-up;
    `star` only where that interval lies above 0."""
    out = []
    for metric in metrics:
        means = {g.label: sum(v.values()) / len(v) for g in groups if (v := per_seed(g, metric))}
        ranked = sorted((g for g in groups if g.label in means), key=lambda g: -means[g.label])
        if len(ranked) < 2:
            continue
        best, runner = ranked[:2]
        lead: dict[str, Any] = {"metric": metric, "group": best.label, "runner_up": runner.label}
        reason = why_not_paired(runner, best)
        pair = None if reason else _pair(runner, best, metric)
        if pair is not None:
            lead.update({k: pair[k] for k in ("n", "diff_pp", "lo_pp", "hi_pp")})
        lead["star"] = bool(pair and pair["significant"] and pair["diff_pp"] > 0)
        lead["reason"] = _lead_reason(lead, reason, pair)
        out.append(lead)
    return out


def _lead_reason(lead: dict[str, Any], reason: str | None, pair: dict | None) -> str:
    runner = lead["runner_up"]
    if reason or pair is None:
        return f"not paired with the runner-up {runner}: {reason or 'no seed in common'}"
    if pair["lo_pp"] is None:
        return f"{TOO_FEW} against the runner-up {runner} ({pair['n']} shared)"
    if lead["star"]:
        return f"ahead of the runner-up {runner}: the paired interval lies above 0"
    return f"not shown ahead of the runner-up {runner}: the paired interval includes 0"
