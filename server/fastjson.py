"""JSON of experiments, written straight from database rows with orjson: the one read path of the
list, the changes feed and single experiments.

GET /experiments (a page of the list), the changes feed and GET /experiments/{id} are what
dashboards poll. The rows of server.crud's column reads become dicts in the order of the public
models' fields and orjson writes them: no ORM objects, no pydantic per row. The output is the
models' JSON (tests/service/test_fastjson.py compares it with the models' on SQLite and
PostgreSQL): UTC times end in "Z", a naive time is UTC, non-finite floats are null, tags are
sorted. The routes still declare their response models: they are the documentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import Response
from sqlalchemy.orm import Session

from server import crud
from server.schemas import (
    TRACEBACK_TAIL,
    ExperimentPublic,
    ExperimentSummaryPublic,
    error_excerpt,
)

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
SUMMARY_FIELDS = tuple(ExperimentSummaryPublic.model_fields)
DETAIL_FIELDS = tuple(ExperimentPublic.model_fields)
_INT64 = range(-(2**63), 2**64)  # the integers orjson writes


def _public(name: str, value: Any) -> Any:
    """A column's value as its public field shows it."""
    if name == "tags":
        return sorted(value.split(",")) if value else []
    if name == "traceback_tail":
        return value[-TRACEBACK_TAIL:] if value else None
    if name == "error_excerpt":
        return error_excerpt(value)
    return value


def summary_dict(row: Any) -> dict[str, Any]:
    """A row of crud.SUMMARY_COLUMNS as ExperimentSummaryPublic's fields, in their order."""
    m = row._mapping
    return {name: _public(name, m[name]) for name in SUMMARY_FIELDS}


def row_dict(row: Any, columns: Sequence[str] = ()) -> dict[str, Any]:
    """A list item (ExperimentRowPublic): a row of crud.list_experiment_rows, read with the keys
    `columns`, as the summary's fields and the value at each key."""
    m = row._mapping
    values = {key: m[crud.value_label(i)] for i, key in enumerate(columns)}
    return {**summary_dict(row), "values": values}


def detail_dict(row: Any, twins: list[str]) -> dict[str, Any]:
    """A row of crud.SUMMARY_COLUMNS + DETAIL_COLUMNS as ExperimentPublic's fields."""
    m = row._mapping
    return {name: twins if name == "twins" else _public(name, m[name]) for name in DETAIL_FIELDS}


def experiment(session: Session, experiment_id: str) -> dict[str, Any] | None:
    """One experiment (a full id) as ExperimentPublic's fields, its twins read too; or None."""
    row = crud.experiment_row(session, experiment_id)
    if row is None:
        return None
    return detail_dict(row, crud.twins(session, spec_hash=row.spec_hash, exclude_id=row.id))


def experiments(session: Session, experiment_ids: list[str]) -> list[dict[str, Any]]:
    """Experiments (full ids) as ExperimentPublic's fields, in the order given."""
    rows = crud.experiment_rows(session, experiment_ids)
    twins = crud.twins_of(session, rows)
    return [detail_dict(row, twins[row.id]) for row in rows]


def _exact(value: Any) -> Any:
    """`value` with every integer beyond orjson's 64 bits as its decimal text, spliced in."""
    if isinstance(value, int) and value not in _INT64:
        return orjson.Fragment(str(value))
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    """orjson's bytes of `value`. A JSON column may hold an integer beyond 64 bits (JSON sets no
    bound, orjson does): only then is the value walked, and such integers written exactly."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return orjson.dumps(_exact(value), option=_OPTIONS)


def response(value: Any, status_code: int = 200) -> Response:
    """`value` as an application/json response."""
    return Response(dumps(value), status_code=status_code, media_type="application/json")
