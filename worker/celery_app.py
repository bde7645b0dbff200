"""The worker's Celery app (configured by server.queue from the settings) with its task.

MLflow's HTTP client retries a failed call 7 times with a growing backoff (minutes) inside the
call; the worker's MLflow tracker and its start-up wait (worker.runner) retry on their own with a
bounded backoff, so a worker process makes one try per call: a call made
while MLflow was down then never sleeps on after it is back. Each worker reports its queues and
memory to the workers table (worker.presence); on a warm shutdown its running experiment goes
back to the queue at its next step (worker.shutdown).
"""

from __future__ import annotations

import os

from server.queue import make_celery
from server.settings import get_settings
from worker import presence, shutdown

os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"

app = make_celery(get_settings())
app.conf.include = ["worker.tasks"]
presence.connect()  # the workers table: memory and queues at start, fresh while running
shutdown.connect()  # a warm shutdown stops the running experiment and queues it again
