"""Simulated workers for bench/bench_fleet.py: the real worker paths without training.

Each simulated worker is a thread that reports itself as a real worker does (worker.presence:
server.workers.register, then a beat every fifth of worker_seen_within_s), takes run messages
from the real Redis queue with kombu (acknowledged after the outcome, as Celery's acks_late
does), claims with server.crud.claim_next, heartbeats with its progress through worker.bridge
(crud.heartbeat) a few times, and finishes with crud.finish. A process runs many such threads
over one connection pool; bench_fleet.py starts several processes.
"""

from __future__ import annotations

import queue as stdlib_queue
import threading
import time
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from server import crud
from server.models import SUCCEEDED
from server.queue import make_celery
from server.settings import Settings
from worker.bridge import Bridge
from worker.presence import Presence


class Stats:
    """Per-process timings (seconds) and counts, merged by the bench."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {"claim": [], "beat": [], "finish": []}
        self.counts = {"runs": 0, "empty": 0}

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.times[kind].append(seconds)

    def count(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] += 1


def _timed(stats: Stats, kind: str, fn: Any, **kw: Any) -> Any:
    t0 = time.perf_counter()
    out = fn(**kw)
    stats.add(kind, time.perf_counter() - t0)
    return out


def run_one(settings: Settings, sessions: Any, name: str, eid: str, stats: Stats, opts) -> None:
    """One message: claim the best row of its queue, report progress, finish."""
    with sessions() as s:
        exp = _timed(
            stats,
            "claim",
            crud.claim_next,
            session=s,
            experiment_id=eid,
            worker=name,
            stale_after_s=settings.stale_after_s,
        )
    if exp is None:  # a duplicate message: its row ran already
        stats.count("empty")
        return
    with Bridge(sessions, exp.id, name, settings.heartbeat_s) as bridge:
        for k in range(opts["beats"]):
            time.sleep(opts["beat_s"])
            bridge.progress = {"stage": 0, "epoch": k, "fraction": (k + 1) / opts["beats"]}
            _timed(stats, "beat", bridge.beat)
    with sessions() as s:
        _timed(
            stats,
            "finish",
            crud.finish,
            session=s,
            experiment_id=exp.id,
            worker=name,
            status=SUCCEEDED,
            summary={"test": {"acc": 0.5}},
        )
    stats.count("runs")


def worker_thread(settings: Settings, sessions: Any, name: str, stop: Any, stats: Stats, opts):
    presence = Presence(settings, name, [settings.default_queue]).start()
    app = make_celery(settings)
    try:
        with app.connection_for_read() as conn:
            inbox = conn.SimpleQueue(settings.default_queue)
            while not stop.is_set():
                try:
                    message = inbox.get(block=True, timeout=1.0)
                except stdlib_queue.Empty:
                    continue
                run_one(settings, sessions, name, str(message.payload[0][0]), stats, opts)
                message.ack()
            inbox.close()
    finally:
        presence.stop()


def process_main(settings: Settings, first: int, n: int, stop: Any, out: Any, opts) -> None:
    """A worker process: n simulated workers over one pool; puts its Stats' figures on `out`."""
    url = settings.resolved_database_url()
    engine = create_engine(url, pool_size=opts["pool"], max_overflow=0, pool_timeout=120)
    sessions = sessionmaker(engine, expire_on_commit=False)
    stats = Stats()
    threads = [
        threading.Thread(
            target=worker_thread,
            args=(settings, sessions, f"sim{first + i}@bench", stop, stats, opts),
            daemon=True,
        )
        for i in range(n)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    out.put({"times": stats.times, "counts": stats.counts})
