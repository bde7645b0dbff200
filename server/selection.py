"""Which experiments a comparison shows, in which groups, under which labels: the one selection
and grouping of GET /compare, GET /compare/curves and so of the compare page.

A selection names experiments by ids (or unique prefixes of them) and by the experiment filters
(server.filters: a tag, a sweep id or prefix, ...); an experiment must match all that is given.
`chosen` checks and resolves it once. `compared` reads its succeeded experiments with their
results (for the report of /compare), `drawn` those with an MLflow run and their groups (for the
curves). Both name each sweep point by its swept values but the seed (`labelled`: "mx
(method=igm)") before the specs are grouped by igm_core.compare's group_runs (specs that differ
only in their seed form a group; groups that share a name are labelled by the keys that tell them
apart). Labels and their order (a group's colour) are made over `every` experiment of the
selection, whatever its status, so a group has the same label and colour in the table, the pairs
and the curves, and keeps them while its experiments run. A change to how groups are formed or
labelled belongs here or in igm_core.compare.labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, defer

from igm_core import compare
from igm_core import summary as run_summary
from igm_core.compare.labels import Group, Run, describe
from server import ids
from server.deps import ambiguous_is_409
from server.filters import SWEEP_HELP, ExperimentFilters, Name, no_nul
from server.models import SUCCEEDED, Experiment, Sweep

MAX_COMPARED = 500  # experiments in a report, and ids in a selection
MAX_CURVE_RUNS = 60
MAX_LABELLED = 1000  # experiments whose specs labels are made over
_CHUNK = 500  # bound parameters per IN (...)
_IDS_HELP = "experiment ids or unique prefixes, repeatable or comma-separated"


def _split(given: list[str] | None) -> list[str]:
    """`ids=a,b&ids=c` as [a, b, c]; at most MAX_COMPARED."""
    wanted = [i.strip() for item in given or [] for i in item.split(",") if i.strip()]
    if len(wanted) > MAX_COMPARED:
        raise PydanticCustomError("too_many", f"at most {MAX_COMPARED} ids")
    return wanted


Ids = Annotated[list[Annotated[str, AfterValidator(no_nul)]] | None, AfterValidator(_split)]


class SelectionQuery(BaseModel):
    """The query parameters that choose what to compare: at least one of them. They become a
    Selection whose filters are an ExperimentFilters: the list's other filters (status, method,
    dataset, q) would be fields here too, and query parameters of both routes (an API change)."""

    ids: Annotated[Ids, Field(description=_IDS_HELP)] = None
    tag: Name = None
    sweep: Annotated[Name, Field(description=SWEEP_HELP)] = None

    @model_validator(mode="after")
    def _not_empty(self) -> SelectionQuery:
        if not (self.ids or self.tag or self.sweep):
            raise PydanticCustomError("empty", "give experiment ids, a tag or a sweep to compare")
        return self


@dataclass(frozen=True)
class Selection:
    """A checked selection: the ids as given, the full id of each that names an experiment,
    and the filters with the sweep resolved."""

    given: list[str]
    full: dict[str, str]
    filters: ExperimentFilters

    def where(self, q: Select) -> Select:
        """`q` narrowed to the selected experiments (none when no given id names one)."""
        if self.given:
            q = q.where(Experiment.id.in_(list(self.full.values())))
        return self.filters.where(q)

    def not_found(self, found: set[str]) -> list[str]:
        """The given ids (as given) whose experiment is not among `found`."""
        return sorted(given for given in self.given if self.full.get(given) not in found)


def chosen(session: Session, query: SelectionQuery) -> Selection:
    """The selection `query` names, resolved: ids and the sweep by unique prefixes (409 when one
    names several); an id that names nothing is kept to be reported, the rest still count."""
    filters = ExperimentFilters(tag=query.tag, sweep=query.sweep)
    full = {}
    with ambiguous_is_409():
        for given in query.ids or []:
            if found := ids.resolve(session, Experiment, given):
                full[given] = found
        filters = filters.resolved(session)
    return Selection(given=list(query.ids or []), full=full, filters=filters)


def _page(session: Session, selection: Selection, q: Select, limit: int) -> tuple[list, int]:
    """The first `limit` rows of `q` (oldest experiment first) among the selection, and how
    many rows it has in all."""
    q = selection.where(q)
    count = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    page = q.order_by(Experiment.created_at, Experiment.id).limit(limit)
    return list(session.execute(page)), count


def compared(
    session: Session, selection: Selection
) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """(experiment id, result mapping) of the selection's succeeded experiments, oldest first,
    at most MAX_COMPARED, with their specs `labelled`; and how many matched. A result mapping
    holds what igm_core.compare reads: the spec, the test metrics, the run's figures and its
    balance measures (igm_core.summary.as_result)."""
    q = select(Experiment.id, Experiment.spec, Experiment.summary).where(
        Experiment.status == SUCCEEDED, Experiment.summary.is_not(None)
    )
    rows, matched = _page(session, selection, q, MAX_COMPARED)
    specs = labelled(session, {exp_id: spec for exp_id, spec, _ in rows})
    results = [(eid, run_summary.as_result(specs[eid], summary)) for eid, _, summary in rows]
    return results, matched


def every(session: Session, selection: Selection) -> list[dict[str, Any]]:
    """The `labelled` specs of the selection's experiments of any status, oldest first, at most
    MAX_LABELLED: what the labels and their order are made over, in every view."""
    rows, _ = _page(session, selection, select(Experiment.id, Experiment.spec), MAX_LABELLED)
    return list(labelled(session, {exp_id: spec for exp_id, spec in rows}).values())


def drawn(
    session: Session, selection: Selection, others: Sequence[dict[str, Any]] = ()
) -> tuple[list[Experiment], list[Group], int]:
    """The selection's experiments that have an MLflow run (any status: running ones too),
    oldest first, at most MAX_CURVE_RUNS; their `groups` (labelled over `others` too); and how
    many matched."""
    q = (
        select(Experiment)
        .options(defer(Experiment.traceback))
        .where(Experiment.mlflow_run_id.is_not(None))
    )
    rows, matched = _page(session, selection, q, MAX_CURVE_RUNS)
    exps = [exp for (exp,) in rows]
    return exps, groups(labelled(session, {e.id: e.spec for e in exps}), others), matched


def labelled(session: Session, specs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Experiment id -> spec, with the name of each sweep point among them replaced by "<sweep
    name> (key=value, ...)" (its swept values but the seed, keys under their short names:
    `method=igm`, `tau=0.4`): the points of a sweep that differ only in their seed then share a
    name, and their group says what was swept."""
    names = {}
    exp_ids = list(specs)
    for i in range(0, len(exp_ids), _CHUNK):
        q = (
            select(Experiment.id, Experiment.sweep_values, Sweep.name)
            .join(Sweep, Experiment.sweep_id == Sweep.id)
            .where(Experiment.id.in_(exp_ids[i : i + _CHUNK]))
        )
        for exp_id, values, name in session.execute(q):
            swept = {k: v for k, v in (values or {}).items() if k != "seed"}
            shown = describe(swept)
            names[exp_id] = f"{name} ({shown})" if shown else name
    return {i: {**spec, "name": names[i]} if i in names else spec for i, spec in specs.items()}


def groups(specs: dict[str, dict[str, Any]], others: Sequence[dict[str, Any]] = ()) -> list[Group]:
    """Experiment id -> labelled spec, grouped: specs that differ only in their seed form a
    group (igm_core.compare.group_runs, as in the report), labelled over `others` too; a run's
    path is its experiment id."""
    runs = (Run(Path(exp_id), {"spec": spec}) for exp_id, spec in specs.items())
    return compare.group_runs(runs, others)


def report(
    results: Sequence[tuple[str, dict[str, Any]]],
    metric: str,
    baseline: str | None,
    others: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """The `igm compare` report of `compared` results: grouped and labelled as `groups` groups
    and labels them; every other group paired with `baseline` (igm_core.compare.pairs)."""
    return compare.report_from_results(results, metric, baseline, others)
