"""A worker's warm shutdown, told to the experiment that its pool child runs.

On SIGTERM (`docker stop`, a restart) or a first Ctrl-C, Celery's main process starts a warm
shutdown: it takes no new message and waits for the running task. That task runs in a forked
pool child (prefork, concurrency 1), which the signal does not reach: Docker signals the
container's first process only, Celery resets SIGTERM in its children to its default action (a
cold shutdown terminates them with it) and they ignore SIGINT. So the main process sets a flag
in memory it shares with its children: an anonymous shared mapping made when this module is
imported, before any child is forked (worker.tasks imports worker.runner, which imports this).
The runner's should_stop reads it between training steps; the attempt then stops, keeps its
checkpoint and goes back to the queue (worker.runner), and the warm shutdown ends with it.

The signal handler only writes one byte (no logging, no lock): the child says what it did.
A pool started by spawn or forkserver would not share the flag; Celery's prefork pool forks.
"""

from __future__ import annotations

import mmap
from typing import Any

# MAP_SHARED | MAP_ANONYMOUS: the same page in this process and every child forked after import
_flag = mmap.mmap(-1, 1)


def requested() -> bool:
    """Whether this worker is shutting down (read by the running attempt between steps)."""
    return _flag[0] == 1


def request() -> None:
    _flag[0] = 1


def clear() -> None:
    _flag[0] = 0


def on_shutting_down(**_kw: Any) -> None:
    """Celery's worker_shutting_down, in the main process (warm or cold): the running experiment
    stops at its next step. A cold shutdown terminates the child anyway; the flag costs nothing
    there."""
    request()


def connect() -> None:
    from celery.signals import worker_shutting_down

    worker_shutting_down.connect(on_shutting_down, weak=False)
