"""`igm compare`: seed statistics over results, paired comparisons, published numbers.

stats.py (intervals), report.py (grouping and the report), render.py (tables), seeds.py (`igm
train --seeds`). Torch-free; scipy is imported only to compute intervals.
"""

from igm_core.compare.report import (
    METRICS,
    CompareError,
    build_report,
    compare_pairs,
    group_runs,
    load_result,
    report_from_results,
    summarize,
)
from igm_core.compare.seeds import SeedsError, already_done, parse_seeds, seed_specs
from igm_core.compare.stats import mean_ci, paired_diff

__all__ = [
    "METRICS",
    "CompareError",
    "SeedsError",
    "already_done",
    "build_report",
    "compare_pairs",
    "group_runs",
    "load_result",
    "mean_ci",
    "paired_diff",
    "parse_seeds",
    "report_from_results",
    "seed_specs",
    "summarize",
]
