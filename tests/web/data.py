"""Rows and MLflow runs for the dashboard tests, written the way the service writes them: rows
through server.crud (created, claimed by a worker, finished), runs with MLflow's log_batch."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from igm_core.spec import resolve_spec
from server import crud
from server.settings import Settings
from tests.specs import schedule_kind

WORKER = "tests@dashboard"


def spec(name: str, **changes: Any) -> dict[str, Any]:
    method = changes.get("method", {"name": "igm"})
    staged = schedule_kind(method["name"], method.get("params")) == "stages"
    base = {
        "name": name,
        "dataset": {"name": "synthetic"},
        "method": {"name": "igm"},
        "schedule": {"stage_epochs": [2, 2]} if staged else {"epochs": 2},
    }
    return {**base, **changes}


def create(
    sessions: sessionmaker[Session], raw: dict[str, Any], *, tags: list[str] = (), queue: str
) -> str:
    with sessions() as s:
        exp = crud.create_experiment(
            s, spec=resolve_spec(raw), tags=list(tags), queue=queue, max_attempts=3, priority=5
        )
        return exp.id


def finish(
    sessions: sessionmaker[Session],
    experiment_id: str,
    status: str,
    *,
    run_id: str | None = None,
    summary: dict[str, Any] | None = None,
    error: str | None = None,
    traceback: str | None = None,
) -> None:
    """Claim the row as a worker would, point it at an MLflow run, and end it."""
    with sessions() as s:
        assert crud.claim(s, experiment_id=experiment_id, worker=WORKER, stale_after_s=60)
        if run_id:
            crud.set_mlflow_run(s, experiment_id=experiment_id, run_id=run_id)
        crud.finish(
            s,
            experiment_id=experiment_id,
            worker=WORKER,
            status=status,
            summary=summary,
            error=error,
            traceback=traceback,
        )


def summary(acc: float, strong: float, weak: float) -> dict[str, Any]:
    test = {
        "acc": acc,
        "macro_f1": acc - 0.01,
        "map": acc + 0.01,
        "loss": 1 - acc,
        "modality_acc": {"strong": strong, "weak": weak},
    }
    return {"test": test, "best": {"stage": 1, "epoch": 0, "score": acc}, "run": {"wall_time_s": 3}}


def log_run(
    settings: Settings,
    metrics: dict[str, tuple[list[int], list[float]]],
    artifacts: dict[str, Any] | None = None,
) -> str:
    """A finished MLflow run in the service's store holding `metrics` (key -> steps, values)
    and JSON artifacts; returns its id."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.resolved_mlflow_uri())
    found = client.get_experiment_by_name(settings.project)
    exp_id = (
        found.experiment_id
        if found
        else client.create_experiment(
            settings.project, artifact_location=settings.mlflow_artifact_root()
        )
    )
    run_id = client.create_run(exp_id).info.run_id
    batch = [
        Metric(key, float(v), 1_700_000_000_000 + 10 * step, step)
        for key, (steps, values) in metrics.items()
        for step, v in zip(steps, values, strict=True)
    ]
    for i in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[i : i + 1000])
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in (artifacts or {}).items():
            path = Path(tmp) / name
            path.write_text(json.dumps(content))
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    return run_id


def curve(n: int, start: float, end: float, wiggle: float, every: int = 1) -> tuple[list, list]:
    steps = list(range(every, n + 1, every))
    values = [end + (start - end) * math.exp(-4 * s / n) + wiggle * math.sin(s) for s in steps]
    return steps, values
