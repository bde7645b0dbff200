"""The worker's Celery app (configured by server.queue from the settings) with its task."""

from __future__ import annotations

from server.queue import make_celery
from server.settings import get_settings

app = make_celery(get_settings())
app.conf.include = ["worker.tasks"]
