"""The one task: run_experiment(experiment_id). Thin: all logic lives in worker.runner."""

from __future__ import annotations

import os
import socket

from server.queue import TASK_NAME
from server.settings import get_settings
from worker.celery_app import app
from worker.runner import run

# Loaded once in the parent and inherited by every forked child (one child per task): importing
# torch does not initialise CUDA, which stays for the child that runs the experiment.
import igm_core.trainer  # noqa: F401  isort: skip


@app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)
def run_experiment(experiment_id: str, time_limit_s: float | None = None) -> str:
    return run(
        experiment_id,
        settings=get_settings(),
        worker=f"{socket.gethostname()}:{os.getpid()}",
        time_limit_s=time_limit_s,
        celery=app,  # a worker's shutdown sends the id of the experiment it stopped again
    )
