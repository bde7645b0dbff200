"""Request dependencies: what a route needs, read from app.state, as Annotated aliases.

The app builds its settings, session factory, Celery app and MLflow reader once at start-up
(server.main) and keeps them on app.state; routes declare `session: SessionDep` and so on. The
checks that turn request input into trusted values live in server.inputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from celery import Celery
from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from server import crud
from server.mlflow_reader import MlflowReader
from server.models import Experiment
from server.settings import Settings

EXPERIMENT_ID = re.compile(r"^[0-9a-f]{32}$")


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


def get_experiment(experiment_id: str, session: SessionDep) -> Experiment:
    """The experiment named in the path, or 404 (also for ids that cannot exist)."""
    exp = (
        crud.get_experiment(session, experiment_id) if EXPERIMENT_ID.match(experiment_id) else None
    )
    if exp is None:
        raise HTTPException(status_code=404, detail=f"experiment {experiment_id[:100]} not found")
    return exp


ExperimentDep = Annotated[Experiment, Depends(get_experiment)]
