"""Reads of experiments as the API shows them: a page of the list, the changes feed, one
experiment, an experiment's twins.

The hot reads fetch plain columns, tags in the same query, and server.fastjson writes the JSON:
no ORM objects, no pydantic per row. The columns are those of the public models' fields
(server.schemas: ExperimentSummaryPublic for a list item, ExperimentPublic for one experiment),
each read from the model's column of the same name, so a field added there is read here. A
list's chosen columns (server.keys: spec values and metrics by key) are read beside them, and a
list can be sorted by a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from server import keys
from server.filters import ExperimentFilters
from server.models import Experiment, ExperimentTag
from server.schemas import ExperimentPublic, ExperimentSummaryPublic

SORTS = {
    "created_at": Experiment.created_at,
    "name": Experiment.name,
    "status": Experiment.status,
    "priority": Experiment.priority,
    "method": Experiment.method,
    "dataset": Experiment.dataset,
    "updated_at": Experiment.updated_at,
}
SORT_CHOICES = tuple(f"{p}{key}" for key in SORTS for p in ("", "-"))
MAX_TWINS = 20
_CHUNK = 500  # bound parameters per IN (...)

_TAGS = (
    select(func.aggregate_strings(ExperimentTag.tag, ","))  # tags never hold a comma
    .where(ExperimentTag.experiment_id == Experiment.id)
    .correlate(Experiment)
    .scalar_subquery()
    .label("tags")
)
# fields whose value is not the column of the same name (twins come from twins())
_EXPRESSIONS = {
    "tags": _TAGS,
    "traceback_tail": Experiment.traceback.label("traceback_tail"),
    # the excerpt is its first line (server.fastjson): no error's first line is longer
    "error_excerpt": func.substr(Experiment.error, 1, 2000).label("error_excerpt"),
}
_SUMMARY = tuple(ExperimentSummaryPublic.model_fields)
_DETAIL = tuple(n for n in ExperimentPublic.model_fields if n not in _SUMMARY and n != "twins")


def _column(field: str) -> Any:
    """What a public field is read from: its expression, or the column of the same name."""
    return _EXPRESSIONS[field] if field in _EXPRESSIONS else getattr(Experiment, field)


SUMMARY_COLUMNS = tuple(map(_column, _SUMMARY))
DETAIL_COLUMNS = tuple(map(_column, _DETAIL))


def get_experiment(session: Session, experiment_id: str) -> Experiment | None:
    return session.get(Experiment, experiment_id)


def value_label(i: int) -> str:
    """The label of the i-th chosen column's value in a row (server.fastjson reads it)."""
    return f"_value_{i}"


def _row_columns(columns: Sequence[keys.Key]) -> tuple[Any, ...]:
    values = (key.value().label(value_label(i)) for i, key in enumerate(columns))
    return (*SUMMARY_COLUMNS, *values)


def _order(sort: str) -> list[Any]:
    """ORDER BY clauses of a sort: a SORT_CHOICES key or a key of server.keys, '-' first for
    descending (keys: experiments without a value last either way)."""
    descending, name = sort.startswith("-"), sort.removeprefix("-")
    if name in SORTS:
        return [SORTS[name].desc() if descending else SORTS[name].asc()]
    return keys.parse_key(name).order(descending)


def list_experiment_rows(
    session: Session,
    *,
    filters: ExperimentFilters,
    sort: str = "-created_at",
    limit: int = 50,
    offset: int = 0,
    columns: Sequence[keys.Key] = (),
) -> tuple[list[Row[Any]], int]:
    """One page of the experiments matching `filters` (a sweep given by its full id) as rows of
    SUMMARY_COLUMNS and the value of each of `columns` (labelled by value_label), in the order
    of `sort` (a SORT_CHOICES key, or a key), and how many match in all."""
    q = filters.where(select(Experiment.id)).order_by(*_order(sort), Experiment.id)
    q = q.limit(limit).offset(offset)
    if filters.match:  # conditions read JSON on every row: count them in the same pass
        page = session.execute(q.add_columns(func.count().over().label("total"))).all()
        ids = [row.id for row in page]
        count = page[0].total if page else _count(session, filters) if offset else 0
    else:
        count = _count(session, filters)
        if not columns:
            return list(session.execute(q.with_only_columns(*SUMMARY_COLUMNS))), count
        ids = list(session.scalars(q))
    if not ids:
        return [], count
    # the page's ids first, then the values of their columns: read in one query, the values
    # would be computed for every matching row before the sort (each parses its JSON document)
    found = {row.id: row for row in session.execute(_rows_of(ids, columns))}
    return [found[i] for i in ids if i in found], count


def _count(session: Session, filters: ExperimentFilters) -> int:
    return session.scalar(filters.where(select(func.count(Experiment.id)))) or 0


def _rows_of(ids: Sequence[str], columns: Sequence[keys.Key]) -> Any:
    return select(*_row_columns(columns)).where(Experiment.id.in_(ids))


def experiment_row(session: Session, experiment_id: str) -> Row[Any] | None:
    """One experiment as a row of SUMMARY_COLUMNS + DETAIL_COLUMNS, or None."""
    q = select(*SUMMARY_COLUMNS, *DETAIL_COLUMNS).where(Experiment.id == experiment_id)
    return session.execute(q).first()


def experiment_rows(session: Session, experiment_ids: Sequence[str]) -> list[Row[Any]]:
    """Experiments as rows of SUMMARY_COLUMNS + DETAIL_COLUMNS, in the order of the ids given
    (those that exist)."""
    ids = list(experiment_ids)
    found = {}
    for i in range(0, len(ids), _CHUNK):
        q = select(*SUMMARY_COLUMNS, *DETAIL_COLUMNS).where(Experiment.id.in_(ids[i : i + _CHUNK]))
        found.update((row.id, row) for row in session.execute(q))
    return [found[i] for i in ids if i in found]


def changed_experiments(
    session: Session,
    *,
    filters: ExperimentFilters,
    since: datetime | None,
    limit: int,
    columns: Sequence[keys.Key] = (),
) -> tuple[list[Row[Any]], int, datetime | None]:
    """For a changes feed: the rows (as list_experiment_rows reads them) matching `filters`
    written at or after `since` (oldest change first, at most `limit`), how many rows match now,
    and the newest updated_at of any row (the next cursor)."""
    count = _count(session, filters)
    newest = session.scalar(select(func.max(Experiment.updated_at)))
    if since is None:
        return [], count, newest
    q = filters.where(select(*_row_columns(columns)).where(Experiment.updated_at >= since))
    q = q.order_by(Experiment.updated_at, Experiment.id).limit(limit)
    return list(session.execute(q)), count, newest


def twins(session: Session, *, spec_hash: str, exclude_id: str) -> list[str]:
    """Ids of other experiments with the same resolved spec (oldest first)."""
    q = (
        select(Experiment.id)
        .where(Experiment.spec_hash == spec_hash, Experiment.id != exclude_id)
        .order_by(Experiment.created_at)
        .limit(MAX_TWINS)
    )
    return list(session.scalars(q))


def twins_of(session: Session, experiments: Sequence[Any]) -> dict[str, list[str]]:
    """Like twins for many experiments (objects or rows with an id and a spec_hash) at once:
    id -> ids of the other experiments with the same spec hash, oldest first, at most MAX_TWINS
    each."""
    hashes = sorted({exp.spec_hash for exp in experiments})
    by_hash: dict[str, list[str]] = {h: [] for h in hashes}
    for i in range(0, len(hashes), _CHUNK):
        q = (
            select(Experiment.spec_hash, Experiment.id)
            .where(Experiment.spec_hash.in_(hashes[i : i + _CHUNK]))
            .order_by(Experiment.created_at, Experiment.id)
        )
        for spec_hash, exp_id in session.execute(q):
            by_hash[spec_hash].append(exp_id)
    return {
        exp.id: [other for other in by_hash[exp.spec_hash] if other != exp.id][:MAX_TWINS]
        for exp in experiments
    }
