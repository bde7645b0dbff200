"""Reads and state transitions of experiments; the only package that commits.

create.py: a new experiment, a new sweep's experiments. reads.py: a page of the list, the
changes feed, one experiment, twins (the column rows server.fastjson writes). actions.py: what a
user asks (cancel, retry, delete). worker.py: what workers and the reconciler do (claim a row,
or the best queued row of a queue; heartbeat, the attempt's run, finish, requeue when a worker
shuts down, lost rows). Every name is importable as `crud.<name>`.
"""

from server.crud.actions import Conflict, delete_experiment, request_cancel, retry
from server.crud.create import create_experiment, create_sweep, new_id
from server.crud.reads import (
    DETAIL_COLUMNS,
    SORT_CHOICES,
    SORTS,
    SUMMARY_COLUMNS,
    changed_experiments,
    experiment_row,
    experiment_rows,
    get_experiment,
    list_experiment_rows,
    twins,
    twins_of,
    value_label,
)
from server.crud.worker import (
    claim,
    claim_next,
    finish,
    finite_json,
    heartbeat,
    orphans,
    queued_counts,
    queued_since,
    requeue,
    set_mlflow_run,
    touch,
)

__all__ = [
    "DETAIL_COLUMNS",
    "SORTS",
    "SORT_CHOICES",
    "SUMMARY_COLUMNS",
    "Conflict",
    "changed_experiments",
    "claim",
    "claim_next",
    "create_experiment",
    "create_sweep",
    "delete_experiment",
    "experiment_row",
    "experiment_rows",
    "finish",
    "finite_json",
    "get_experiment",
    "heartbeat",
    "list_experiment_rows",
    "new_id",
    "orphans",
    "queued_counts",
    "queued_since",
    "request_cancel",
    "requeue",
    "retry",
    "set_mlflow_run",
    "touch",
    "twins",
    "twins_of",
    "value_label",
]
