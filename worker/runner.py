"""Runs one experiment: claim the row, train with igm_core, report progress, record the outcome.

Tests call `run` directly (never through Celery's eager mode). The spec stored in the row is the
resolved one: it is rebuilt without reading any data file. Progress and cancel go through
worker.bridge.
"""

from __future__ import annotations

import logging
import subprocess
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from server import crud
from server.db import session_factory
from server.models import CANCELLED, FAILED, SUCCEEDED
from server.settings import Settings
from worker.bridge import Bridge

log = logging.getLogger("worker.runner")
TRACEBACK_CHARS = 20_000


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def run(experiment_id: str, *, settings: Settings, worker: str) -> str:
    """Run the experiment if this worker can claim it; returns the final status or 'skipped'."""
    sessions = session_factory(settings.resolved_database_url())
    with sessions() as s:
        exp = crud.claim(
            s, experiment_id=experiment_id, worker=worker, stale_after_s=settings.stale_after_s
        )
    if exp is None:
        log.info(
            "experiment %s not claimable (re-delivered, cancelled or finished): skipped",
            experiment_id,
        )
        return "skipped"
    try:
        status, summary, error, tb = _train(exp, settings, sessions, worker)
    except Exception as err:  # never a silent loss: record what happened
        status, summary = FAILED, None
        error, tb = f"{type(err).__name__}: {err}", traceback.format_exc()[-TRACEBACK_CHARS:]
    with sessions() as s:
        crud.finish(
            s,
            experiment_id=experiment_id,
            worker=worker,
            status=status,
            summary=summary,
            error=error,
            traceback=tb,
        )
    return status


def _train(
    exp: Any, settings: Settings, sessions: sessionmaker[Session], worker: str
) -> tuple[str, dict[str, Any] | None, str | None, str | None]:
    from pydantic import ValidationError

    from igm_core.paths import PathRefused, confine_spec
    from igm_core.spec import ResolvedSpec
    from igm_core.tracking import MlflowTracker
    from igm_core.trainer import train

    try:  # the paths again, here, before anything opens them (a link may have changed since)
        spec = ResolvedSpec.model_validate(confine_spec(exp.spec, settings.data_roots))
    except PathRefused as err:
        return FAILED, None, f"refused path: {err}", None
    except ValidationError as err:
        return FAILED, None, f"invalid spec: {err}", None
    tags = {
        "igm.experiment_id": exp.id,
        "igm.spec_hash": exp.spec_hash,
        "method": exp.method,
        "dataset": exp.dataset,
        "igm.attempt": str(exp.attempts),
        "igm.worker": worker,
    }
    if commit := git_commit():
        tags["git.commit"] = commit
    tracker = MlflowTracker(
        settings.resolved_mlflow_uri(),
        settings.project,
        run_name=f"{exp.name} #{exp.attempts}",
        tags=tags,
        artifact_location=settings.mlflow_artifact_root(),
    )
    with sessions() as s:
        crud.set_mlflow_run(s, experiment_id=exp.id, run_id=tracker.run_id)
    with Bridge(sessions, exp.id, worker, settings.heartbeat_s) as bridge:
        bridge.beat()
        result = train(
            spec,
            out_dir=settings.runs_dir() / exp.id,
            tracker=tracker,
            should_stop=bridge.should_stop,
            on_event=bridge.on_event,
        )
    if result.status == "stopped":
        return CANCELLED, None, None, None
    r = result.result
    summary = {
        "test": r["test"],
        "val": {k: v for k, v in r["val"].items() if k != "confidence"},
        "best": r["best"],
        "run": r["run"],
    }
    return SUCCEEDED, summary, None, None
