"""The Celery app both sides share: the server sends tasks by name, the worker runs them.

Settings for multi-hour GPU jobs: acks late with reject on worker lost (a lost worker's task is
delivered again; the attempt cap lives in the database), prefetch 1, a visibility timeout above the
longest job, one task per child process (frees GPU memory), no result backend (state is in the
experiments table). Importing this module does not import torch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import Celery

from server.settings import Settings

logger = logging.getLogger("server.queue")

TASK_NAME = "igm.run_experiment"
MAX_PRIORITY = 9


def hard_limit(limit_s: int) -> int:
    """Celery's hard time limit for a run limited to `limit_s`: some minutes later."""
    return limit_s + max(60, limit_s // 20)


def make_celery(settings: Settings) -> Celery:
    url = settings.resolved_broker_url()
    app = Celery("igm_lab", broker=url, set_as_current=False)
    options: dict = {"visibility_timeout": settings.visibility_timeout_s}
    if url.startswith("filesystem"):
        folder = settings.broker_folder()
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        # every folder of the transport under the data directory, the control folder included
        # (kombu's default is ./control in the working directory of whatever process runs)
        options.update(
            data_folder_in=str(folder / "queue"),
            data_folder_out=str(folder / "queue"),
            processed_folder=str(folder / "processed"),
            control_folder=str(folder / "control"),
            store_processed=False,
            polling_interval=settings.broker_poll_s,
        )
    elif url.startswith("redis"):
        options.update(
            queue_order_strategy="priority", priority_steps=list(range(MAX_PRIORITY + 1))
        )
    app.conf.update(
        broker_transport_options=options,
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_default_queue=settings.default_queue,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=settings.worker_max_tasks_per_child,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        # the backstop of a run stuck outside its steps; each message carries its queue's
        task_time_limit=hard_limit(settings.task_time_limit_s),
    )
    app.conf.igm_time_limits = {q: settings.time_limit_s(q) for q in settings.queues}
    app.conf.igm_default_time_limit = settings.time_limit_s(settings.default_queue)
    return app


def send_run(app: Celery, *, experiment_id: str, queue: str, priority: int) -> None:
    """Enqueue one experiment id; call only after its row is committed."""
    # API priority: higher runs first; Redis orders 0 first
    limit = (app.conf.get("igm_time_limits") or {}).get(queue) or app.conf.get(
        "igm_default_time_limit"
    )
    # the worker stops the run at its first step past `limit` (failed, with the reason); the
    # hard limit, later, ends a child stuck elsewhere (the row is then taken over)
    extra = {"kwargs": {"time_limit_s": limit}, "time_limit": hard_limit(limit)} if limit else {}
    app.send_task(
        TASK_NAME,
        args=[experiment_id],
        queue=queue,
        **extra,
        priority=MAX_PRIORITY - max(0, min(priority, MAX_PRIORITY)),
    )


def waiting(app: Celery, queue: str) -> int:
    """How many messages wait in the broker's queue (0 when the broker does not know the queue,
    e.g. a Redis restarted empty); raises when the broker cannot be reached."""
    from kombu.exceptions import ChannelError

    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=2.0)
        try:
            return int(conn.default_channel.queue_declare(queue=queue, passive=True)[1])
        except ChannelError:
            return 0


def enqueue(celery: Celery, experiments: Sequence[Any]) -> str | None:
    """Send one task per (committed) experiment; a warning when the broker refused."""
    for i, exp in enumerate(experiments):
        try:
            send_run(celery, experiment_id=exp.id, queue=exp.queue, priority=exp.priority)
        except Exception as exc:  # broker down: the rows stay queued in the database
            left = len(experiments) - i
            logger.error("could not enqueue %d experiment(s) from %s: %s", left, exp.id, exc)
            return (
                f"not enqueued: the broker could not be reached ({exc}); {left} experiment(s) "
                "stay queued in the database and can be re-enqueued"
            )
    return None
