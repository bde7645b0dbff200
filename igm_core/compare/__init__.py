"""`igm compare`: seed statistics over results, paired comparisons, published numbers.

labels.py (seed groups and their labels), stats.py (intervals), pairs.py (pairs against a
baseline, leads), report.py (the report), render.py (tables), seeds.py (`igm train --seeds`).
Torch-free; scipy is imported only to compute intervals.
"""

from igm_core.compare.labels import Group, Run, group_runs
from igm_core.compare.pairs import BaselineError, per_seed
from igm_core.compare.report import (
    INTERVAL,
    METRICS,
    STAR,
    CompareError,
    build_report,
    compare_pairs,
    load_result,
    report_from_results,
    summarize,
)
from igm_core.compare.seeds import SeedsError, already_done, parse_seeds, seed_specs
from igm_core.compare.stats import mean_ci, paired_diff

__all__ = [
    "INTERVAL",
    "METRICS",
    "STAR",
    "BaselineError",
    "CompareError",
    "Group",
    "Run",
    "SeedsError",
    "already_done",
    "build_report",
    "compare_pairs",
    "group_runs",
    "load_result",
    "mean_ci",
    "paired_diff",
    "parse_seeds",
    "per_seed",
    "report_from_results",
    "seed_specs",
    "summarize",
]
