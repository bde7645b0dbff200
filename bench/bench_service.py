"""Benchmark of the experiment service, on loopback only, bounded in requests and time.

    python bench/bench_service.py [--requests 400] [--concurrency 8] [--tasks 10]

Prints:
1. POST /experiments, GET /experiments (a page of 50) and GET /experiments/{id} latency, p50/p99,
   and the API's CPU seconds per request (its processes' user + system time over the requests),
   at fixed concurrencies, with 10,000 experiments in PostgreSQL (API served by uvicorn with
   --api-workers processes; broker Redis; no worker consumes the bench queue, which is deleted
   afterwards). --baseline REF serves the API of an older commit too, in the same run and
   database, one server at a time.
2. Enqueue-to-start latency (row created -> row claimed by the worker) with an idle worker, on
   Redis and on the embedded filesystem broker.
3. GET /experiments/{id}/metrics for a 100,000-step history downsampled to 1,000 points.
4. Training wall time with full MLflow tracking against the null tracker, same spec.
Targets: p99 < 50 ms for POST and for a page of 50; metrics < 200 ms; tracking overhead < 5%.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import redis
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from igm_core.spec import resolve_spec  # noqa: E402
from launcher.embedded import worker_env  # noqa: E402
from server import crud, migrations  # noqa: E402
from server.db import session_factory  # noqa: E402
from server.filters import ExperimentFilters  # noqa: E402
from server.models import Experiment, utcnow  # noqa: E402
from server.settings import Settings  # noqa: E402
from worker.command import worker_command  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/14"
TINY = {
    "name": "bench",
    "dataset": {"name": "synthetic", "params": {"n_train": 64, "n_val": 32, "n_test": 32}},
    "method": {"name": "igm"},
    "schedule": {"stage_epochs": [1, 1]},
    "batch_size": 32,
}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(settings: Settings, port: int, workers: int = 1, root: Path = ROOT) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "server.main:create_app" if root == ROOT else "_bench_app:make",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--workers",
        str(workers),
    ]
    proc = subprocess.Popen(cmd, env=worker_env(settings), cwd=root)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code < 600:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the API did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (uvicorn's worker processes)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # fields[1]: the parent
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def baseline_tree(ref: str, tmp: Path) -> Path:
    """The project's files at git `ref`, to serve the API as it was (same venv, same database)."""
    dest = tmp / "baseline"
    dest.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    # an older tree refuses a newer schema; columns added since are nullable, so it may serve it
    (dest / "_bench_app.py").write_text(
        "from server.main import create_app\n\n\n"
        "def make():\n    return create_app(check_schema=False)\n"
    )
    return dest


def experiment_rows(n: int, name: str, **values) -> list[dict]:
    """n experiment rows of the TINY spec named `name`-i (succeeded, priority 5 on cpu unless
    `values` say otherwise)."""
    spec = resolve_spec({**TINY, "name": name})
    base = {"method": "igm", "dataset": "synthetic", "spec": spec.to_dict()}
    base |= {"spec_hash": spec.hash(), "status": "succeeded", "priority": 5, "queue": "cpu"}
    base |= {"attempts": 1, "max_attempts": 3, "cancel_requested": False} | values
    return [
        {**base, "id": uuid.uuid4().hex, "name": f"{name}-{i}", "created_at": utcnow()}
        for i in range(n)
    ]


def insert_rows(settings: Settings, rows: list[dict]) -> None:
    with session_factory(settings.resolved_database_url())() as s:
        s.execute(insert(Experiment), rows)
        s.commit()


def seed(settings: Settings, n: int) -> None:
    insert_rows(settings, experiment_rows(n, "seed"))


async def load(
    base: str, requests: int, concurrency: int, ids: list[str], pid: int
) -> tuple[dict[str, list], dict[str, float]]:
    """Latencies per kind of request, and the server's CPU seconds per request of each kind."""
    lat: dict[str, list[float]] = {
        "POST /experiments": [],
        "GET /experiments?limit=50": [],
        "GET /experiments/{id}": [],
    }
    cpu: dict[str, float] = {}
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def one(kind: str, i: int) -> None:
            async with sem:
                t0 = time.perf_counter()
                if kind.startswith("POST"):
                    r = await client.post("/experiments", json={**TINY, "seed": i})
                elif "limit" in kind:
                    r = await client.get("/experiments", params={"limit": 50, "offset": i % 100})
                else:
                    r = await client.get(f"/experiments/{ids[i % len(ids)]}")
                lat[kind].append(time.perf_counter() - t0)
                assert r.status_code < 300, r.text

        for kind in lat:  # warm-up, then the measured requests
            await asyncio.gather(*(one(kind, i) for i in range(20)))
            lat[kind].clear()
            c0 = cpu_seconds(pid)
            await asyncio.gather(*(one(kind, i) for i in range(requests)))
            cpu[kind] = (cpu_seconds(pid) - c0) / requests
    return lat, cpu


def bench_api(tmp: Path, args: argparse.Namespace) -> None:
    name = f"igm_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    queue = f"bench{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=tmp / "api",
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
        broker_url=REDIS,
        default_queue=queue,
        queues=[queue],
    )
    trees = [("this tree", ROOT)]
    if args.baseline:
        trees.insert(0, (f"baseline {args.baseline}", baseline_tree(args.baseline, tmp)))
    procs: list[subprocess.Popen] = []
    try:
        migrations.upgrade(settings.resolved_database_url())
        seed(settings, 10_000)
        with session_factory(settings.resolved_database_url())() as s:
            rows, _ = crud.list_experiment_rows(s, filters=ExperimentFilters(), limit=200)
            ids = [row.id for row in rows]
        for workers in (int(w) for w in str(args.api_workers).split(",")):
            for level in (int(c) for c in args.concurrency.split(",")):
                for label, root in trees:  # one server at a time, the others stopped
                    port = free_port()
                    proc = serve(settings, port, workers, root)
                    procs.append(proc)
                    lat, cpu = asyncio.run(
                        load(f"http://127.0.0.1:{port}", args.requests, level, ids, proc.pid)
                    )
                    proc.send_signal(signal.SIGINT)
                    proc.wait(15)
                    print(
                        f"\n[API {label}] PostgreSQL with 10,000+ experiments, Redis broker, "
                        f"uvicorn ({workers} process(es)), concurrency {level}, "
                        f"{args.requests} requests each"
                    )
                    for kind, xs in lat.items():
                        print(
                            f"  {kind:28s} p50 {pct(xs, 50) * 1e3:7.2f} ms   "
                            f"p99 {pct(xs, 99) * 1e3:7.2f} ms   "
                            f"server CPU {cpu[kind] * 1e3:5.2f} ms/request",
                            flush=True,
                        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(15)
        redis.Redis.from_url(REDIS).delete(queue)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_enqueue(tmp: Path, broker: str, tasks: int) -> list[float]:
    queue = f"bench{uuid.uuid4().hex[:8]}"
    settings = Settings(
        data_dir=tmp / broker,
        broker_url=REDIS if broker == "redis" else None,
        default_queue=queue,
        queues=[queue],
        heartbeat_s=0.5,
    )
    migrations.upgrade(settings.resolved_database_url())
    worker = subprocess.Popen(
        worker_command([queue], f"{queue}@bench", "ERROR"),
        env=worker_env(settings),
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    port = free_port()
    api = serve(settings, port)
    delays = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for i in range(tasks + 1):
                time.sleep(1.0)  # the worker is idle (its next child is up) before each task
                eid = client.post("/experiments", json={**TINY, "seed": i}).json()["id"]
                deadline = time.time() + 120
                while time.time() < deadline:
                    exp = client.get(f"/experiments/{eid}").json()
                    if exp["status"] in ("succeeded", "failed", "cancelled"):
                        break
                    time.sleep(0.05)
                with session_factory(settings.resolved_database_url())() as s:
                    row = crud.get_experiment(s, eid)
                    if i > 0:  # the first task also pays for the worker's start
                        delays.append((row.started_at - row.created_at).total_seconds())
    finally:
        api.send_signal(signal.SIGINT)
        api.wait(15)
        os.killpg(worker.pid, signal.SIGQUIT)
        worker.wait(15)
        if broker == "redis":
            redis.Redis.from_url(REDIS).delete(queue)
    return delays


def bench_metrics(tmp: Path) -> list[float]:
    from fastapi.testclient import TestClient
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from server.main import create_app

    settings = Settings(data_dir=tmp / "metrics", broker_url=REDIS)
    migrations.upgrade(settings.resolved_database_url())
    mlflow = MlflowClient(settings.resolved_mlflow_uri())
    exp_id = mlflow.create_experiment("bench", artifact_location=settings.mlflow_artifact_root())
    run_id = mlflow.create_run(exp_id).info.run_id
    now = int(time.time() * 1000)
    for start in range(0, 100_000, 1000):
        mlflow.log_batch(
            run_id,
            metrics=[
                Metric("train/weak/loss", 1.0 / (1 + s % 977), now, s)
                for s in range(start, start + 1000)
            ],
        )
    with session_factory(settings.resolved_database_url())() as s:
        eid = crud.create_experiment(s, spec=resolve_spec(TINY), queue="cpu", max_attempts=3).id
        crud.set_mlflow_run(s, experiment_id=eid, run_id=run_id)
    times = []
    with TestClient(create_app(settings)) as client:
        for i in range(21):
            t0 = time.perf_counter()
            r = client.get(
                f"/experiments/{eid}/metrics",
                params={"keys": "train/weak/loss", "max_points": 1000},
            )
            if i:
                times.append(time.perf_counter() - t0)
            assert len(r.json()["metrics"]["train/weak/loss"]["values"]) <= 1000
    return times


def bench_tracking(tmp: Path, rounds: int) -> tuple[list[float], list[float]]:
    from igm_core.tracking import MlflowTracker, NullTracker
    from igm_core.trainer import train

    spec = {
        "name": "track",
        "dataset": {"name": "synthetic", "params": {"n_train": 10_000}},
        "method": {"name": "igm"},
        "schedule": {"stage_epochs": [3] * 6},
    }
    uri = f"sqlite:///{tmp / 'track.db'}"
    MlflowTracker(
        uri, "bench", artifact_location=(tmp / "art").as_uri()
    ).finish()  # create the store
    null, full = [], []
    for i in range(rounds):
        for kind in ("null", "mlflow"):
            tracker = (
                NullTracker()
                if kind == "null"
                else MlflowTracker(uri, "bench", artifact_location=(tmp / "art").as_uri())
            )
            t0 = time.perf_counter()
            train(spec, out_dir=tmp / f"track-{kind}-{i}", tracker=tracker)
            (null if kind == "null" else full).append(time.perf_counter() - t0)
    return null, full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", default="4,8", help="comma-separated levels")
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--api-workers", default="1", help="uvicorn processes: comma-separated levels"
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also serve the API from git REF (same venv and database), before this tree",
    )
    parser.add_argument("--only", choices=["api", "enqueue", "metrics", "tracking"])
    args = parser.parse_args()
    print(f"IGM Lab service benchmark on {os.cpu_count()} CPUs (loopback only)")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.only in (None, "api"):
            bench_api(tmp, args)
        if args.only == "api":
            return
        print(f"\n[enqueue-to-start] idle worker, {args.tasks} tasks each (row created -> claimed)")
        for broker in ("redis", "filesystem"):
            xs = bench_enqueue(tmp, broker, args.tasks)
            print(
                f"  {broker:10s} median {statistics.median(xs) * 1e3:7.1f} ms   "
                f"max {max(xs) * 1e3:7.1f} ms"
            )
        xs = bench_metrics(tmp)
        print(
            f"\n[metrics] 100,000-step history -> 1,000 points: median "
            f"{statistics.median(xs) * 1e3:.1f} ms, p99 {pct(xs, 99) * 1e3:.1f} ms (20 requests)"
        )
        null, full = bench_tracking(tmp, args.rounds)
        mn, mf = statistics.median(null), statistics.median(full)
        print(
            f"\n[tracking] synthetic IGM, 2,868 steps, log_every 10: null tracker {mn:.2f} s, "
            f"MLflow (SQLite) {mf:.2f} s: overhead {(mf / mn - 1) * 100:+.1f}% "
            f"(median of {args.rounds})"
        )


if __name__ == "__main__":
    main()
