"""JSON bytes of the API's hot reads, written straight from database rows with orjson.

GET /experiments (a page of the list) and GET /experiments/{id} are what dashboards poll. Building
ORM objects and validating each one into a pydantic model cost most of their CPU; here the rows
of server.crud's column reads become dicts in the order of the public models' fields and orjson
writes them. The output equals the models' JSON (tests/service/test_fastjson.py checks it on
SQLite and PostgreSQL): UTC times end in "Z", a naive time is UTC, non-finite floats are null,
tags are sorted. The routes still declare their response models, so the OpenAPI schema is the
same. A value orjson cannot write (an integer beyond 64 bits in a JSON column) makes `dumps`
return None and the caller takes the pydantic path.
"""

from __future__ import annotations

from typing import Any

import orjson

from server.schemas import TRACEBACK_TAIL, ExperimentPublic, ExperimentSummaryPublic

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
SUMMARY_FIELDS = tuple(ExperimentSummaryPublic.model_fields)
DETAIL_FIELDS = tuple(ExperimentPublic.model_fields)


def _tags(joined: str | None) -> list[str]:
    return sorted(joined.split(",")) if joined else []


def summary_dict(row: Any) -> dict[str, Any]:
    """A row of crud.SUMMARY_COLUMNS as ExperimentSummaryPublic's fields, in their order."""
    m = row._mapping
    return {name: _tags(m["tags"]) if name == "tags" else m[name] for name in SUMMARY_FIELDS}


def detail_dict(row: Any, twins: list[str]) -> dict[str, Any]:
    """A row of crud.SUMMARY_COLUMNS + DETAIL_COLUMNS as ExperimentPublic's fields."""
    m = row._mapping
    tb = m["traceback"]
    extra = {"tags": _tags(m["tags"]), "twins": twins, "traceback_tail": None}
    if tb:
        extra["traceback_tail"] = tb[-TRACEBACK_TAIL:]
    return {name: extra[name] if name in extra else m[name] for name in DETAIL_FIELDS}


def dumps(value: Any) -> bytes | None:
    """orjson's bytes, or None when a value is beyond what it writes."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return None
