"""Runs one experiment: claim the row, train with igm_core, report progress, record the outcome.

Tests call `run` directly (never through Celery's eager mode). A heartbeat thread writes progress
and liveness to the row every few seconds and reads the cancel flag, so a long evaluation or stage
transition never looks like a lost worker, and a cancel is seen within one heartbeat.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import traceback
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from server import crud
from server.db import session_factory
from server.models import CANCELLED, FAILED, SUCCEEDED
from server.settings import Settings

log = logging.getLogger("worker.runner")
TRACEBACK_CHARS = 20_000
PROGRESS_EVENTS = {"progress", "stage_start", "epoch_end", "resumed"}


class Bridge:
    """Between the trainer (events, should_stop) and the experiment row (progress, cancel)."""

    def __init__(
        self, sessions: sessionmaker[Session], experiment_id: str, worker: str, interval: float
    ) -> None:
        self.sessions, self.experiment_id, self.worker = sessions, experiment_id, worker
        self.interval = interval
        self.progress: dict[str, Any] = {}
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def __enter__(self) -> Bridge:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.beat()  # the last progress, before the outcome is written

    def on_event(self, event: dict[str, Any]) -> None:
        if event["type"] not in PROGRESS_EVENTS:
            return
        keys = (
            "stage",
            "n_stages",
            "epoch",
            "epochs",
            "step",
            "total_steps",
            "fraction",
            "eta_s",
            "modalities",
        )
        self.progress = {**self.progress, **{k: event[k] for k in keys if k in event}}
        if event["type"] == "epoch_end":
            self.progress["val_acc"] = event["val"]["acc"]

    def should_stop(self) -> bool:
        return self.cancel.is_set()

    def beat(self) -> None:
        try:
            with self.sessions() as s:
                if crud.heartbeat(
                    s,
                    experiment_id=self.experiment_id,
                    worker=self.worker,
                    progress=dict(self.progress) or None,
                ):
                    self.cancel.set()
        except Exception:  # the database may blip; the next beat tries again
            log.exception("heartbeat for %s failed", self.experiment_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()


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
    from igm_core.spec import SpecError, resolve_spec
    from igm_core.tracking import MlflowTracker
    from igm_core.trainer import train

    try:
        spec = resolve_spec(exp.spec)
    except SpecError as err:
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
