"""Feeds the dashboard polls: what changed in the experiments table since a cursor, and an
experiment's timeline (stages, epoch ends, clock) that its charts annotate.

The changes feed is cheap by construction: experiments.updated_at is set by every write and
indexed, so a poll is one indexed range query, one count with the list's filters (which is how a
page notices deletions) and one max(). Clients send the Authorization header like any other
request, so the feed is polled with fetch rather than EventSource.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from server import crud, fastjson, timeline
from server.deps import ExperimentRowDep, MlflowDep, SessionDep, SettingsDep, resolved
from server.filters import ExperimentView, Name
from server.inputs import unprocessable
from server.schemas import ChangesPublic, TimelinePublic

router = APIRouter(prefix="/experiments", tags=["dashboard"])

OVERLAP = timedelta(seconds=5)  # writes stamped just before the cursor but committed after it
MAX_CHANGES = 200


class _Cursor(BaseModel):
    """The feed's cursor: a base of ChangesQuery so that it comes first among the query's
    parameters, as in the API schema."""

    since: Annotated[Name, Field(description="the cursor of the previous answer")] = None


def _parse_cursor(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise unprocessable(
            "query.since", "not a cursor: pass the `cursor` of a previous answer"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ChangesQuery(ExperimentView, _Cursor):
    """GET /experiments/changes: a cursor, the filters and columns of GET /experiments, a
    limit."""

    # as recorded in the API schema; a unique prefix works here too, as in the list
    sweep: Annotated[Name, Field(description="a sweep id")] = None
    limit: Annotated[int, Field(ge=1, le=MAX_CHANGES)] = MAX_CHANGES


@router.get("/changes", response_model=ChangesPublic)
def experiment_changes(session: SessionDep, query: Annotated[ChangesQuery, Query()]) -> Response:
    """Experiments matching the filters of GET /experiments that were written since the cursor,
    with how many match now and the next cursor. Without `since`: no rows, only the count and
    a cursor to start from."""
    cursor = _parse_cursor(query.since)
    rows, count, newest = crud.changed_experiments(
        session,
        filters=resolved(session, query),
        since=cursor - OVERLAP if cursor else None,
        limit=query.limit + 1,
        columns=query.column_keys(),
    )
    if newest is not None and newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    if newest is None:  # an empty table: start from now
        newest = cursor or datetime.now(UTC)
    elif cursor is not None and newest < cursor:
        newest = cursor  # never move a cursor back (the newest rows deleted)
    changes = {
        "cursor": newest.isoformat(),
        "count": count,
        "data": [fastjson.row_dict(r, query.columns or []) for r in rows[: query.limit]],
        "truncated": len(rows) > query.limit,
    }
    return fastjson.response(changes)


def _mlflow_url(base: str | None, experiment_id: str | None, run_id: str) -> str | None:
    if not base or experiment_id is None:
        return None
    return f"{base.rstrip('/')}/#/experiments/{quote(experiment_id)}/runs/{quote(run_id)}"


@router.get("/{experiment_id}/timeline", response_model=TimelinePublic)
async def experiment_timeline(
    exp: ExperimentRowDep, reader: MlflowDep, settings: SettingsDep
) -> TimelinePublic:
    """The experiment's stages (modalities trained, step ranges), the step at each epoch's end,
    and its clock (steps -> seconds since its first point); estimated ranges where the run has
    not reached them yet. 503 when MLflow does not answer within the configured timeout."""
    runs = exp.runs()  # a resumed experiment's timeline spans all its attempts
    total = (exp.progress or {}).get("total_steps")
    logged = await reader.call(timeline.read, reader.store, runs) if runs else timeline.Logged()
    ends = [step for step, _ in logged.epoch_ends]
    plan = timeline.build(exp.spec, ends, total if isinstance(total, int) else None)
    clock = timeline.clock(logged.epoch_ends + logged.last_points, logged.start_ms)
    run_id = exp.mlflow_run_id
    return TimelinePublic(
        **plan,
        clock=clock,
        mlflow_run_id=run_id,
        mlflow_url=_mlflow_url(settings.mlflow_ui_url, logged.experiment_id, run_id)
        if run_id
        else None,
    )
