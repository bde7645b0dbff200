"""The experiment filters: one model for every list of experiments (GET /experiments, the changes
feed, the page at `/`), and the one place they become SQL.

A new filter is a field of ExperimentFilters (its bounds and description: the API schema), a
check if its values are a closed set, and a clause in `where`. The dashboard renders the field
names into its filter form (data-filters); igm_client.FILTERS must equal them (a test says so).
Request models of the routes extend ExperimentFilters with what else they take (a sort and a
page, a cursor), so FastAPI reads each as one query-parameter model.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from server import ids
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


class ExperimentFilters(BaseModel):
    """Experiments matching every filter given (an empty filter matches all)."""

    status: Annotated[Status, Field(description=f"one of: {', '.join(STATUSES)}")] = None
    method: Name = None
    dataset: Name = None
    tag: Name = None
    q: Annotated[Words, Field(description="text in the name")] = None
    sweep: Annotated[Name, Field(description=SWEEP_HELP)] = None

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
        return q


FILTER_NAMES = tuple(ExperimentFilters.model_fields)
