"""A worker's report of itself in the workers table (server.workers), which the API sizes each
queue's cost caps from (server.capacity).

When the Celery worker is ready, a thread of its parent process measures what a run may use here
and registers the worker (name, host, queues, memory, GPU memory); it then reports every fifth of
settings.worker_seen_within_s, and marks the worker stopped when it shuts down cleanly. Memory is
the machine's RAM, or its cgroup's limit when lower (a container with a memory limit). GPU memory
is that of device 0 as CUDA_VISIBLE_DEVICES shows it (the device the trainer picks), read in a
short child process: the parent must never initialise CUDA, its forked children run the
experiments. The thread has its own database engine without a pool, so that no connection is
shared with a forked child. A report that fails (the database away, a schema not upgraded) is
logged and tried again at the next beat; it never stops the worker.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from server import workers
from server.settings import Settings, get_settings

log = logging.getLogger("worker.presence")
CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)
GPU_PROBE = (
    "import json, torch\n"
    "p = torch.cuda.get_device_properties(0) if torch.cuda.is_available() else None\n"
    "print(json.dumps(p and [p.total_memory, p.name]))\n"
)
GPU_PROBE_TIMEOUT_S = 120
# a GPU driver's device files (NVIDIA, AMD ROCm): without them there is nothing to probe
GPU_DEVICE_FILES = (Path("/dev/nvidiactl"), Path("/dev/kfd"))


@dataclass(frozen=True)
class Capacity:
    memory_bytes: int
    gpu_memory_bytes: int | None
    gpu_name: str | None


def host_memory() -> int:
    """This machine's RAM in bytes, or its cgroup's memory limit when that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (v2) or a page-rounded 2^63 (v1) mean no limit
            total = min(total, int(text))
    return total


def gpu_memory() -> tuple[int | None, str | None]:
    """(total bytes, name) of CUDA device 0 as this process's environment shows it, or
    (None, None) without one; read in a child process so that CUDA stays uninitialised here
    (a machine without a GPU driver is not probed: no torch import for nothing)."""
    if not any(path.exists() for path in GPU_DEVICE_FILES):
        return None, None
    try:
        out = subprocess.run(
            [sys.executable, "-c", GPU_PROBE],
            capture_output=True,
            text=True,
            timeout=GPU_PROBE_TIMEOUT_S,
        )
        found = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as err:
        log.warning("could not read the GPU's memory (%s): reporting none", err)
        return None, None
    if out.returncode != 0:
        log.warning("could not read the GPU's memory: %s", out.stderr.strip()[-500:])
    return (int(found[0]), str(found[1])) if found else (None, None)


def measure() -> Capacity:
    total, name = gpu_memory()
    return Capacity(host_memory(), total, name)


def _engine(settings: Settings) -> Engine:
    url = settings.resolved_database_url()
    args = {"timeout": 30} if url.startswith("sqlite") else {}
    return create_engine(url, poolclass=NullPool, connect_args=args)


def register(engine: Engine, name: str, queues: list[str], capacity: Capacity) -> None:
    with Session(engine) as session:
        workers.register(
            session,
            name=name,
            host=socket.gethostname(),
            queues=queues,
            memory_bytes=capacity.memory_bytes,
            gpu_memory_bytes=capacity.gpu_memory_bytes,
            gpu_name=capacity.gpu_name,
        )


class Presence:
    """Registers a worker, keeps its row fresh from a thread, marks it stopped."""

    def __init__(self, settings: Settings, name: str, queues: list[str]) -> None:
        self.settings, self.name, self.queues = settings, name, list(queues)
        self.engine = _engine(settings)
        self.capacity: Capacity | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="presence", daemon=True)

    def start(self) -> Presence:
        self._thread.start()
        return self

    def report(self) -> bool:
        """Register (measuring first, once) or beat; False when the database refused."""
        try:
            if self.capacity is None:
                self.capacity = measure()
                if self._stop.is_set():  # stopped while measuring: nothing to report
                    return True
                register(self.engine, self.name, self.queues, self.capacity)
                log.info("worker %s registered: %s", self.name, self.capacity)
                return True
            with Session(self.engine) as session:
                if workers.beat(session, name=self.name):
                    return True
            register(self.engine, self.name, self.queues, self.capacity)  # its row went away
            return True
        except Exception as err:  # the database may be away: the next beat tries again
            log.warning("worker %s could not report itself: %s", self.name, err)
            return False

    def _loop(self) -> None:
        interval = self.settings.worker_seen_within_s / 5
        while not self._stop.is_set():
            self.report()
            self._stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        try:
            with Session(self.engine) as session:
                workers.stop(session, name=self.name)
        except Exception as err:  # it will simply stop counting once its reports are old
            log.warning("worker %s could not mark itself stopped: %s", self.name, err)
        self.engine.dispose()


_current: dict[str, Presence] = {}


def _queues(consumer: Any) -> list[str]:
    return sorted({queue.name for queue in consumer.task_consumer.queues})


def on_ready(sender: Any, **_kw: Any) -> None:
    """Celery's worker_ready: the consumer knows its node name and queues now."""
    _current["presence"] = Presence(get_settings(), sender.hostname, _queues(sender)).start()


def on_shutdown(**_kw: Any) -> None:
    """Celery's worker_shutdown (warm or cold): the worker stops counting at once."""
    presence = _current.pop("presence", None)
    if presence is not None:
        presence.stop()


def connect() -> None:
    from celery.signals import worker_ready, worker_shutdown

    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
