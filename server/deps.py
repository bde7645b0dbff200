"""Request dependencies: what a route needs, read from app.state, as Annotated aliases.

The app builds its settings, session factory, Celery app and MLflow reader once at start-up
(server.main) and keeps them on app.state; routes declare `session: SessionDep` and so on. The
checks that turn request input into trusted values live in server.inputs (the experiment
filters in server.filters).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from celery import Celery
from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from server import crud, ids
from server.filters import ExperimentFilters
from server.metric_store import MlflowReader
from server.models import Experiment
from server.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def get_celery(request: Request) -> Celery:
    return request.app.state.celery


def get_mlflow(request: Request) -> MlflowReader:
    return request.app.state.mlflow


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
MlflowDep = Annotated[MlflowReader, Depends(get_mlflow)]


def not_found(experiment_id: str) -> HTTPException:
    short = ids.too_short(experiment_id)
    hint = f": give at least {ids.MIN_PREFIX} hex digits of its id" if short else ""
    return HTTPException(
        status_code=404, detail=f"experiment {experiment_id[:100]} not found{hint}"
    )


@contextmanager
def ambiguous_is_409() -> Iterator[None]:
    try:
        yield
    except ids.AmbiguousId as err:
        raise HTTPException(status_code=409, detail=str(err)) from None


def resolve_experiment_id(session: Session, given: str) -> str:
    """The full id of the experiment named by its id or a unique prefix of it (server.ids);
    404 when none matches, 409 when several do. A whole id is not looked up here: the caller's
    read of the row says whether it exists."""
    ident = given.strip().lower()
    if len(ident) == ids.ID_LEN and ids.is_hex(ident):
        return ident
    with ambiguous_is_409():
        full = ids.resolve(session, Experiment, given)
    if full is None:
        raise not_found(given)
    return full


def get_experiment(experiment_id: str, session: SessionDep) -> Experiment:
    """The experiment named in the path by its id or a unique prefix of it (server.ids);
    404 when none matches, 409 when several do."""
    with ambiguous_is_409():
        full = ids.resolve(session, Experiment, experiment_id)
    exp = crud.get_experiment(session, full) if full else None
    if exp is None:
        raise not_found(experiment_id)
    return exp


def resolved(session: Session, filters: ExperimentFilters) -> ExperimentFilters:
    """The filters with a sweep named by a unique prefix as its full id (server.filters); 409
    when several sweeps match."""
    with ambiguous_is_409():
        return filters.resolved(session)


ExperimentDep = Annotated[Experiment, Depends(get_experiment)]


def get_experiment_row(exp: ExperimentDep, session: SessionDep) -> Experiment:
    """The experiment, with the request's database connection released: for routes that go on
    to call MLflow, which may be slow or down (the row stays readable, detached)."""
    session.close()
    return exp


ExperimentRowDep = Annotated[Experiment, Depends(get_experiment_row)]
