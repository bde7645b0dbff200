"""The command line of one worker process: `igm worker`, `igm up`, tests and benchmarks."""

from __future__ import annotations

import sys


def worker_command(queues: list[str], name: str, loglevel: str = "WARNING") -> list[str]:
    """One Celery worker process that runs one task at a time (one GPU each)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "-Q",
        ",".join(queues),
        "--concurrency",
        "1",
        "--pool",
        "prefork",
        "-n",
        name,
        "--loglevel",
        loglevel,
    ]
