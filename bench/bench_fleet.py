"""How far one API and one PostgreSQL carry a lab: many simulated workers against the real service.

    python bench/bench_fleet.py [--workers 50,200] [--experiments 2000] [--rows 10000]
                                [--processes 4] [--beats 3] [--beat-s 0.3]

For each number of workers, in a fresh PostgreSQL database: --rows finished experiments as history,
then --experiments queued ones, each with its message in the real Redis broker. The reconciler's
start-up pass is timed (and says how many ids it sent again), the API (uvicorn, its own process)
starts, and the simulated workers (bench/fleet_sim.py: threads in --processes processes, each
claiming with crud.claim_next, heartbeating with progress through worker.bridge, reporting
itself through worker.presence, finishing with crud.finish) work through the queue while a load
generator keeps 4 requests in flight (a page of 50 and one experiment, in turn) and a thread runs
the reconciler's periodic pass every 2 s. Prints the API's p50/p99 during the run, PostgreSQL
transactions and rows per second (pg_stat_database), Redis commands per second (INFO: the whole
server, other clients included), the reconciler's pass time, the workers' claim, beat and finish
times, and, across the levels, what grows with the number of workers.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import redis
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_service import (  # noqa: E402
    PG_ADMIN,
    REDIS,
    experiment_rows,
    free_port,
    insert_rows,
    pct,
    seed,
    serve,
)
from fleet_sim import process_main  # noqa: E402

from server import migrations, reconcile  # noqa: E402
from server.db import get_engine, session_factory  # noqa: E402
from server.models import FINISHED, Experiment  # noqa: E402
from server.queue import make_celery, send_run, waiting  # noqa: E402
from server.settings import Settings  # noqa: E402

PG_COUNTERS = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_updated")


def queue_experiments(settings: Settings, n: int) -> None:
    """n queued rows (priorities 0-9), each with its message on the Redis queue."""
    rows = experiment_rows(n, "fleet", status="queued", queue=settings.default_queue, attempts=0)
    for i, row in enumerate(rows):
        row["priority"] = random.Random(i).randrange(10)
    insert_rows(settings, rows)
    celery = make_celery(settings)
    for row in rows:
        send_run(celery, experiment_id=row["id"], queue=row["queue"], priority=row["priority"])


def pg_counters(db: str) -> dict[str, int]:
    with psycopg.connect(PG_ADMIN) as conn:
        cols = ", ".join(PG_COUNTERS)
        q = f"SELECT {cols} FROM pg_stat_database WHERE datname = %s"
        row = conn.execute(q, [db]).fetchone()
    return dict(zip(PG_COUNTERS, row, strict=True))


def redis_counters() -> dict[str, int]:
    stats = redis.Redis.from_url(REDIS).info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}


def backends(db: str) -> int:
    with psycopg.connect(PG_ADMIN) as conn:
        q = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
        return conn.execute(q, [db]).fetchone()[0]


async def api_load(base: str, ids: list[str], done: threading.Event, level: int) -> dict:
    lat: dict[str, list[float]] = {"GET /experiments?limit=50": [], "GET /experiments/{id}": []}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def loop(k: int) -> None:
            i = k
            while not done.is_set():
                if i % 2:
                    kind, path = (
                        "GET /experiments?limit=50",
                        f"/experiments?limit=50&offset={i % 9}",
                    )
                else:
                    kind, path = "GET /experiments/{id}", f"/experiments/{ids[i % len(ids)]}"
                t0 = time.perf_counter()
                r = await client.get(path)
                lat[kind].append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
                i += level

        await asyncio.gather(*(loop(k) for k in range(level)))
    return lat


def reconciler(settings: Settings, done: threading.Event, passes: list[float]) -> None:
    """The API's periodic pass (lost rows, unclaimed rows), timed, every 2 s."""
    sessions = session_factory(settings.resolved_database_url())
    celery = make_celery(settings)
    while not done.wait(2.0):
        t0 = time.perf_counter()
        reconcile.requeue(settings, sessions, celery, queued=False)
        reconcile.requeue_unclaimed(settings, sessions, celery)
        reconcile.lost_messages(settings, sessions, celery)
        passes.append(time.perf_counter() - t0)


def finished(settings: Settings) -> int:
    with session_factory(settings.resolved_database_url())() as s:
        q = select(func.count()).where(
            Experiment.status.in_(FINISHED), Experiment.name.like("fleet-%")
        )
        return s.scalar(q) or 0


def start_workers(settings: Settings, args, n: int, stop, out) -> list:
    ctx = multiprocessing.get_context("spawn")
    opts = {"beats": args.beats, "beat_s": args.beat_s, "pool": args.pool}
    per = [n // args.processes + (i < n % args.processes) for i in range(args.processes)]
    procs, first = [], 0
    for k in per:
        p = ctx.Process(target=process_main, args=(settings, first, k, stop, out, opts))
        p.start()
        procs.append(p)
        first += k
    return procs


def level_settings(tmp: Path, db: str, queue: str, args: argparse.Namespace) -> Settings:
    """A level's settings: its database and Redis queue; beats and passes short, as in a lab
    whose runs are long only in proportion (a presence report every 6 s, a pass every 2 s)."""
    return Settings(
        data_dir=tmp / db,
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}",
        broker_url=REDIS,
        default_queue=queue,
        queues=[queue],
        heartbeat_s=args.beat_s * 2,
        worker_seen_within_s=30,
        reconcile_s=2,
        requeue_queued_after_s=10,
    )


def prepare(settings: Settings, args: argparse.Namespace) -> tuple[list[str], float, int]:
    """The database and the queue: history rows, queued rows with their messages; then the
    reconciler's start-up pass, timed. Returns ids to read, the pass's time and what it sent."""
    migrations.upgrade(settings.resolved_database_url())
    seed(settings, args.rows)
    queue_experiments(settings, args.experiments)
    sessions = session_factory(settings.resolved_database_url())
    with sessions() as s:
        ids = list(s.scalars(select(Experiment.id).limit(200)))
    t0 = time.perf_counter()
    sent = reconcile.requeue(settings, sessions, make_celery(settings), queued=True)
    return ids, time.perf_counter() - t0, sent


def watch(settings: Settings, args, db: str, done: threading.Event, peak: list[int]) -> None:
    """Until every experiment finished (or --timeout): the most connections to the database."""
    deadline = time.time() + args.timeout
    try:
        while time.time() < deadline and finished(settings) < args.experiments:
            try:  # refused when the workers took every connection PostgreSQL allows
                peak[0] = max(peak[0], backends(db))
            except psycopg.OperationalError:
                peak[0] = -1
            time.sleep(0.5)
    finally:
        done.set()


def run_level(tmp: Path, args: argparse.Namespace, n_workers: int) -> dict:
    db = f"igm_fleet_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    queue = f"fleet{uuid.uuid4().hex[:8]}"
    settings = level_settings(tmp, db, queue, args)
    ctx = multiprocessing.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    api = procs = None
    try:
        ids, start_pass, sent = prepare(settings, args)
        port = free_port()
        api = serve(settings, port)
        time.sleep(1.0)  # the API's own start-up pass
        held = waiting(make_celery(settings), queue)
        pg0, rd0, t_start = pg_counters(db), redis_counters(), time.perf_counter()
        procs = start_workers(settings, args, n_workers, stop, out)
        done, passes, peak = threading.Event(), [], [0]
        threads = [
            threading.Thread(target=watch, args=(settings, args, db, done, peak), daemon=True),
            threading.Thread(target=reconciler, args=(settings, done, passes), daemon=True),
        ]
        for t in threads:
            t.start()
        lat = asyncio.run(api_load(f"http://127.0.0.1:{port}", ids, done, args.concurrency))
        wall = time.perf_counter() - t_start
        pg1, rd1 = pg_counters(db), redis_counters()
        stop.set()
        results = [out.get(timeout=120) for _ in procs]
        return {
            "workers": n_workers,
            "wall": wall,
            "lat": lat,
            "passes": passes,
            "start_pass": start_pass,
            "start_sent": sent,
            "held": held,
            "peak": peak[0],
            "pg": {k: pg1[k] - pg0[k] for k in PG_COUNTERS},
            "redis": {k: v - rd0.get(k, 0) for k, v in rd1.items() if v - rd0.get(k, 0)},
            "done": finished(settings),
            "sim": merge(results),
        }
    finally:
        stop.set()
        for p in procs or []:
            p.join(30)
        if api is not None:
            api.send_signal(signal.SIGINT)
            api.wait(15)
        redis.Redis.from_url(REDIS).delete(*[queue] + [f"{queue}\x06\x16{i}" for i in range(10)])
        get_engine(settings.resolved_database_url()).dispose()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def merge(results: list[dict]) -> dict:
    times: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for r in results:
        for k, xs in r["times"].items():
            times.setdefault(k, []).extend(xs)
        for k, v in r["counts"].items():
            counts[k] = counts.get(k, 0) + v
    return {"times": times, "counts": counts}


def ms(xs: list[float], q: float) -> str:
    return f"{pct(xs, q) * 1e3:7.1f}" if xs else "    n/a"


def report(r: dict, args: argparse.Namespace) -> None:
    w, wall, sim = r["workers"], r["wall"], r["sim"]
    print(
        f"\n[{w} workers] {r['done']}/{args.experiments} experiments finished in {wall:.1f} s "
        f"({r['done'] / wall:.1f}/s); {args.rows} finished rows besides"
    )
    print(
        f"  start-up pass: {r['start_pass'] * 1e3:.0f} ms, sent {r['start_sent']} id(s) again; "
        f"after the API's own start-up pass the queue held {r['held']} message(s)"
    )
    for kind, xs in r["lat"].items():
        print(f"  API {kind:26s} p50 {ms(xs, 50)} ms  p99 {ms(xs, 99)} ms  ({len(xs)} requests)")
    pg = r["pg"]
    print(
        f"  PostgreSQL: {pg['xact_commit'] / wall:7.0f} commits/s, "
        f"{pg['xact_rollback'] / wall:5.0f} rollbacks/s, {pg['tup_returned'] / wall:9.0f} rows "
        f"scanned/s, {pg['tup_fetched'] / wall:7.0f} fetched/s, {pg['tup_updated'] / wall:6.0f} "
        f"updated/s; {r['peak'] if r['peak'] >= 0 else 'all'} connections at most"
    )
    total = sum(r["redis"].values())
    top = sorted(r["redis"].items(), key=lambda kv: -kv[1])[:6]
    print(
        f"  Redis: {total / wall:7.0f} commands/s (whole server): "
        + ", ".join(f"{k} {v / wall:.0f}/s" for k, v in top)
    )
    ps = r["passes"]
    print(
        f"  reconciler pass: median {statistics.median(ps) * 1e3:.1f} ms, "
        f"max {max(ps) * 1e3:.1f} ms ({len(ps)} passes)"
        if ps
        else "  reconciler: no pass"
    )
    for kind, xs in sim["times"].items():
        print(f"  worker {kind:7s} p50 {ms(xs, 50)} ms  p99 {ms(xs, 99)} ms  ({len(xs)})")
    runs = max(1, sim["counts"]["runs"])
    print(
        f"  per finished experiment: {pg['xact_commit'] / runs:.1f} commits, "
        f"{pg['tup_returned'] / runs:.0f} rows scanned, {total / runs:.1f} Redis commands; "
        f"messages that claimed nothing: {sim['counts']['empty']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="50,200", help="comma-separated levels")
    parser.add_argument("--experiments", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=10_000, help="finished rows besides")
    parser.add_argument("--processes", type=int, default=4, help="worker processes")
    parser.add_argument("--pool", type=int, default=8, help="connections per worker process")
    parser.add_argument("--beats", type=int, default=3, help="progress reports per run")
    parser.add_argument("--beat-s", type=float, default=0.3, help="seconds between them")
    parser.add_argument("--concurrency", type=int, default=4, help="API requests in flight")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    print(
        f"IGM Lab fleet benchmark on {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f} "
        f"(1 min) at start"
    )
    with tempfile.TemporaryDirectory() as d:
        for n in (int(w) for w in args.workers.split(",")):
            report(run_level(Path(d), args, n), args)
            print(f"  load {os.getloadavg()[0]:.1f} (1 min) after", flush=True)


if __name__ == "__main__":
    main()
