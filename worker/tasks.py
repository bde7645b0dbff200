"""The one task: run_experiment(experiment_id). Thin: all logic lives in worker.runner."""

from __future__ import annotations

import os
import socket

from server.queue import TASK_NAME
from server.settings import get_settings
from worker.celery_app import app


@app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)
def run_experiment(experiment_id: str) -> str:
    from worker.runner import run  # imports torch: only in the child that runs the task

    return run(
        experiment_id, settings=get_settings(), worker=f"{socket.gethostname()}:{os.getpid()}"
    )
