"""Keys of the run table: dotted paths into an experiment's resolved spec (`optimizer.lr`,
`method.params.tau`, `seed`) or its run summary (`test.acc`, `test.modality_acc.weak`,
`val.macro_f1`), and the SQL that reads, sorts and compares the JSON values they name.

A key is checked against a grammar before any SQL is built: at most MAX_PARTS parts of letters,
digits and `_` (a part of digits only indexes a list), MAX_KEY_LENGTH characters, starting with
a field of the resolved spec or a part of the run summary. The path reaches the database as a
bound parameter through SQLAlchemy's JSON path indexing (SQLite's json_extract, PostgreSQL's
`#>` and `#>>`); the JSON type test (`kind`: json_type, json_typeof) and the read of a value as
JSON (`json_value`, which keeps booleans on SQLite) compile to what each database has. A value
is a number only where the JSON holds a number (never a string that looks like one, never a
boolean): numeric comparisons and the numeric part of a sort see numbers only, and nothing is
ever cast that could fail.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticCustomError
from sqlalchemy import JSON, ColumnElement, String, case, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from igm_core import summary as run_summary
from igm_core.spec import ResolvedSpec
from server.models import Experiment

MAX_KEY_LENGTH = 200
MAX_PARTS = 8
MAX_VALUE_LENGTH = 200
SUMMARY_PARTS = run_summary.PARTS  # what the service keeps of a run's result
SPEC_FIELDS = tuple(ResolvedSpec.model_fields)
OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
_PART = r"[A-Za-z0-9_]{1,64}"
_KEY = re.compile(rf"^{_PART}(\.{_PART}){{0,{MAX_PARTS - 1}}}$")
_INDEX = re.compile(r"^[0-9]{1,6}$")
_CONDITION = re.compile(r"^\s*(?P<key>[^<>=!~\s]*)\s*(?P<op>[<>=!~]+)\s*(?P<value>.*?)\s*$", re.S)
_NUMBER = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
KEY_HELP = (
    "a dotted key of the resolved spec (optimizer.lr, method.params.tau, seed) or of the run "
    "summary (test.acc, test.modality_acc.<modality>, val.macro_f1, run.wall_time_s)"
)

# the JSON type names of each database (SQLite's json_type, PostgreSQL's json_typeof)
NUMBER_KINDS = ("integer", "real", "number")
STRING_KINDS = ("text", "string")


class kind(FunctionElement):
    """The JSON type name of the value at a JSON path (column[path]); SQL NULL where none."""

    type = String()
    name = "kind"
    inherit_cache = True


class json_value(FunctionElement):
    """The JSON value at a JSON path (column[path]), as JSON; null where there is none."""

    type = JSON()
    name = "json_value"
    inherit_cache = True


def _parts(element: FunctionElement, compiler: Any, **kw: Any) -> tuple[str, str]:
    """The column and the path (a bound parameter) of the column[path] an element wraps."""
    (node,) = element.clauses.clauses
    return compiler.process(node.left, **kw), compiler.process(node.right, **kw)


# SQLite: json_type and json_extract take the column and the path (JSON_QUOTE(JSON_EXTRACT()),
# SQLAlchemy's column[path], would turn booleans into 0 and 1)
@compiles(kind, "sqlite")
def _kind_sqlite(element: kind, compiler: Any, **kw: Any) -> str:
    column, path = _parts(element, compiler, **kw)
    return f"json_type({column}, {path})"


@compiles(json_value, "sqlite")
def _value_sqlite(element: json_value, compiler: Any, **kw: Any) -> str:
    column, path = _parts(element, compiler, **kw)
    return (
        f"CASE json_type({column}, {path}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
        f"ELSE json_quote(json_extract({column}, {path})) END"
    )


# PostgreSQL: the value at the path is `column #> path` (the json type, as the columns are)
@compiles(kind, "postgresql")
def _kind_postgresql(element: kind, compiler: Any, **kw: Any) -> str:
    column, path = _parts(element, compiler, **kw)
    return f"json_typeof({column} #> {path})"


@compiles(json_value, "postgresql")
def _value_postgresql(element: json_value, compiler: Any, **kw: Any) -> str:
    column, path = _parts(element, compiler, **kw)
    return f"({column} #> {path})"


def _bad_key(text: str, why: str) -> PydanticCustomError:
    return PydanticCustomError("key", f"bad key {text[:MAX_KEY_LENGTH]!r}: {why}")


@dataclass(frozen=True)
class Key:
    """A checked key: its text, the JSON column it reads (spec or summary) and its path there."""

    text: str
    column: str
    path: tuple[str | int, ...]

    def _node(self) -> Any:
        return getattr(Experiment, self.column)[self.path]

    def value(self) -> ColumnElement[Any]:
        """The JSON value (null where the experiment has none)."""
        return json_value(self._node())

    def number(self) -> ColumnElement[Any]:
        """The value where it is a JSON number, else NULL."""
        node = self._node()
        # a simple CASE: the type is found once (each look-up parses the JSON on PostgreSQL)
        return case({k: node.as_float() for k in NUMBER_KINDS}, value=kind(node), else_=None)

    def text_value(self) -> ColumnElement[Any]:
        """The value as text where it is a string or a boolean ("true", "false"), else NULL."""
        node = self._node()
        whens: dict[str, Any] = {k: node.as_string() for k in STRING_KINDS}
        whens.update(true="true", false="false")  # SQLite: the type is the text
        whens["boolean"] = node.as_string()  # PostgreSQL: #>> gives the text
        return case(whens, value=kind(node), else_=None)

    def order(self, descending: bool) -> list[Any]:
        """ORDER BY clauses: numbers first (in order), then strings and booleans, then none."""
        by = [self.number(), self.text_value()]
        return [(c.desc() if descending else c.asc()).nulls_last() for c in by]


def parse_key(text: str) -> Key:
    """`text` as a Key, or a PydanticCustomError that names it and says what is wrong."""
    if len(text) > MAX_KEY_LENGTH:
        raise _bad_key(text, f"at most {MAX_KEY_LENGTH} characters")
    if not _KEY.match(text):
        raise _bad_key(
            text, f"write parts of letters, digits and _ joined by dots (at most {MAX_PARTS})"
        )
    parts = text.split(".")
    if parts[0] in SPEC_FIELDS:
        column = "spec"
    elif parts[0] in SUMMARY_PARTS:
        column = "summary"
    else:
        raise _bad_key(
            text,
            f"a key starts with a spec field ({', '.join(SPEC_FIELDS)}) or a part of the run "
            f"summary ({', '.join(SUMMARY_PARTS)})",
        )
    path = tuple(int(p) if _INDEX.match(p) else p for p in parts)
    return Key(text, column, path)


@dataclass(frozen=True)
class Condition:
    """KEY OP VALUE: a number compares numerically with the JSON numbers at the key; text
    (or a number in double quotes) compares with its strings and booleans, by = and != only."""

    key: Key
    op: str
    value: float | str

    def clause(self) -> ColumnElement[bool]:
        left = self.key.number() if isinstance(self.value, float) else self.key.text_value()
        right = literal(self.value)
        return {
            "=": left == right,
            "!=": left != right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[self.op]


def parse_condition(text: str) -> Condition:
    """`text` ("KEY OP VALUE") as a Condition, or a PydanticCustomError naming what is wrong."""
    shown = text[: MAX_KEY_LENGTH + MAX_VALUE_LENGTH]
    found = _CONDITION.match(text)
    if not found or not found["key"]:
        raise PydanticCustomError(
            "condition",
            f"bad condition {shown!r}: write KEY OP VALUE, OP one of {' '.join(OPERATORS)}",
        )
    key, op, raw = parse_key(found["key"]), found["op"], found["value"]
    op = "=" if op == "==" else op
    if op not in OPERATORS:
        raise PydanticCustomError(
            "operator",
            f"unknown operator {op!r} in {shown!r}; use one of: {' '.join(OPERATORS)}",
        )
    if len(raw) > MAX_VALUE_LENGTH:
        raise PydanticCustomError(
            "condition", f"the value of {shown[:80]!r}... is longer than {MAX_VALUE_LENGTH}"
        )
    if _NUMBER.match(raw):
        number = float(raw)
        if not math.isfinite(number):
            raise PydanticCustomError("condition", f"{raw[:80]!r} in {shown!r} is too large")
        return Condition(key, op, number)
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1]
    if op not in ("=", "!="):
        raise PydanticCustomError(
            "condition", f"{op!r} compares numbers: {raw[:80]!r} in {shown!r} is not one"
        )
    return Condition(key, op, raw)
