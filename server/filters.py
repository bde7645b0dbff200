"""The experiment filters: one model for every list of experiments (GET /experiments, the changes
feed, the page at `/`), and the one place they become SQL.

A new filter is a field of ExperimentFilters (its bounds and description: the API schema), a
check if its values are a closed set, and a clause in `where`. The dashboard renders the field
names into its filter form (data-filters); igm_client.FILTERS must equal them (a test says so).
`match` holds conditions on any spec value or result metric (server.keys: `test.acc>=0.8`).
ExperimentView adds the columns a list shows (spec values and metrics by key); request models of
the routes extend it with what else they take (a sort and a page, a cursor), so FastAPI reads
each as one query-parameter model.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from server import ids, keys
from server.models import STATUSES, Experiment, ExperimentTag, Sweep


def no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail in the driver
    if "\x00" in value:
        raise PydanticCustomError("nul", "must not contain NUL characters")
    return value


def choice(what: str, choices: tuple[str, ...]) -> AfterValidator:
    """A check that a value is one of `choices` (the message names them)."""

    def check(value: str) -> str:
        if value not in choices:
            raise PydanticCustomError(
                "choice", f"unknown {what} {value[:80]!r}; choose one of: {', '.join(choices)}"
            )
        return value

    return AfterValidator(check)


def text(max_length: int | None = None, *checks: AfterValidator) -> Any:
    """The type of an optional query string of at most `max_length` characters, without NUL,
    that passes `checks` (bounds on the str itself: the schema FastAPI's Query(max_length) has)."""
    return Annotated[str, Field(max_length=max_length), AfterValidator(no_nul), *checks] | None


Name = text(64)
Words = text(128)
Status = text(None, choice("status", STATUSES))
SWEEP_HELP = "a sweep id, or a unique prefix of one"
MAX_CONDITIONS = 20
MAX_COLUMNS = 20
MATCH_HELP = (
    "repeatable: KEY OP VALUE, OP one of = != < <= > >=, on " + keys.KEY_HELP + "; a number "
    "compares numerically (optimizer.lr<0.01, test.acc>=0.8), text by = and != "
    "(method.name=igm); experiments without the key never match"
)
COLUMNS_HELP = (
    f"repeatable or comma-separated, at most {MAX_COLUMNS}: each item's `values` gets the value "
    "of each key, " + keys.KEY_HELP
)


def _condition(text: str) -> str:
    keys.parse_condition(text)
    return text


def _conditions(given: list[str] | None) -> list[str] | None:
    if given is not None and len(given) > MAX_CONDITIONS:
        raise PydanticCustomError("too_many", f"at most {MAX_CONDITIONS} conditions")
    return given or None


def _columns(given: list[str] | None) -> list[str] | None:
    """`columns=a,b&columns=c` as [a, b, c], each a checked key, without repeats."""
    wanted = [k.strip() for item in given or [] for k in item.split(",") if k.strip()]
    wanted = list(dict.fromkeys(wanted))
    if len(wanted) > MAX_COLUMNS:
        raise PydanticCustomError("too_many", f"at most {MAX_COLUMNS} columns")
    for key in wanted:
        keys.parse_key(key)
    return wanted or None


Conditions = Annotated[
    list[
        Annotated[
            str,
            Field(max_length=keys.MAX_KEY_LENGTH + keys.MAX_VALUE_LENGTH + 8),
            AfterValidator(no_nul),
            AfterValidator(_condition),
        ]
    ]
    | None,
    AfterValidator(_conditions),
]
Columns = Annotated[
    list[Annotated[str, Field(max_length=4096), AfterValidator(no_nul)]] | None,
    AfterValidator(_columns),
]


def sort_check(choices: tuple[str, ...]) -> AfterValidator:
    """A check that a sort is one of `choices` or a key ('-' first: descending)."""

    def check(value: str) -> str:
        if value in choices:
            return value
        try:
            keys.parse_key(value.removeprefix("-"))
        except PydanticCustomError as err:
            names = ", ".join(c for c in choices if not c.startswith("-"))
            raise PydanticCustomError(
                "sort",
                f"unknown sort {value[:80]!r}; choose one of: {names}, or a spec or result key "
                f"('-' first for descending): {err.message()}",
            ) from None
        return value

    return AfterValidator(check)


class ExperimentFilters(BaseModel):
    """Experiments matching every filter given (an empty filter matches all)."""

    status: Annotated[Status, Field(description=f"one of: {', '.join(STATUSES)}")] = None
    method: Name = None
    dataset: Name = None
    tag: Name = None
    q: Annotated[Words, Field(description="text in the name")] = None
    sweep: Annotated[Name, Field(description=SWEEP_HELP)] = None
    match: Annotated[Conditions, Field(description=MATCH_HELP)] = None

    def filters(self) -> ExperimentFilters:
        """Only the filters, without what a subclass adds."""
        return ExperimentFilters(**{k: getattr(self, k) for k in FILTER_NAMES})

    def resolved(self, session: Session) -> ExperimentFilters:
        """The filters, with `sweep` as a full id when it names a sweep by a unique prefix
        (ids.AmbiguousId when several match); an unknown sweep stays as given and matches
        nothing."""
        sweep = self.sweep and (ids.resolve(session, Sweep, self.sweep) or self.sweep)
        return self.filters().model_copy(update={"sweep": sweep})

    def where(self, q: Select) -> Select:
        """`q` narrowed to the experiments matching every filter (sweep: a full id)."""
        if self.status:
            q = q.where(Experiment.status == self.status)
        if self.method:
            q = q.where(Experiment.method == self.method)
        if self.dataset:
            q = q.where(Experiment.dataset == self.dataset)
        if self.sweep:
            q = q.where(Experiment.sweep_id == self.sweep)
        if self.q:
            escaped = self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(Experiment.name.ilike(f"%{escaped}%", escape="\\"))
        if self.tag:
            tagged = select(ExperimentTag.experiment_id).where(ExperimentTag.tag == self.tag)
            q = q.where(Experiment.id.in_(tagged))
        for text in self.match or []:
            q = q.where(keys.parse_condition(text).clause())
        return q


FILTER_NAMES = tuple(ExperimentFilters.model_fields)


class ExperimentView(ExperimentFilters):
    """The filters and the columns a list shows: spec values and result metrics by key."""

    columns: Annotated[Columns, Field(description=COLUMNS_HELP)] = None

    def column_keys(self) -> list[keys.Key]:
        return [keys.parse_key(k) for k in self.columns or []]
