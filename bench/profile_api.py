"""Where the API's per-request CPU goes: cProfile of the hot reads, on SQLite and PostgreSQL.

    python bench/profile_api.py [--requests 200] [--top 25] [--db sqlite,postgresql]

Seeds 10,000 experiments (a tenth of them tagged), then profiles GET /experiments?limit=50 and
GET /experiments/{id} in-process (httpx's ASGI transport, no sockets). FastAPI runs sync routes
and dependencies in a thread pool, which cProfile (one thread) would not see; here they run inline
in the event loop thread, so the profile holds the whole request. Prints the CPU time per request
(time.process_time, client side included: a few hundred microseconds of it) and the functions
with the largest cumulative time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_service import PG_ADMIN, seed  # noqa: E402

from server import migrations  # noqa: E402
from server.db import session_factory  # noqa: E402
from server.models import Experiment, ExperimentTag  # noqa: E402
from server.settings import Settings  # noqa: E402


def _inline_threadpool() -> None:
    """Run FastAPI's sync endpoints and dependencies in the calling thread (profiling only)."""
    import fastapi.dependencies.utils as dep_utils
    import fastapi.routing as routing

    async def run_inline(func, *args, **kwargs):
        return func(*args, **kwargs)

    @contextlib.asynccontextmanager
    async def cm_inline(cm):
        with cm as value:
            yield value

    routing.run_in_threadpool = run_inline
    dep_utils.run_in_threadpool = run_inline
    dep_utils.contextmanager_in_threadpool = cm_inline


async def _drive(app, paths: list[str]) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        for path in paths:
            r = await client.get(path)
            assert r.status_code == 200, r.text


def profile(settings: Settings, label: str, args: argparse.Namespace) -> None:
    from server.main import create_app

    migrations.upgrade(settings.resolved_database_url())
    seed(settings, 10_000)
    with session_factory(settings.resolved_database_url())() as s:
        ids = list(s.scalars(Experiment.__table__.select().with_only_columns(Experiment.id)))
        s.add_all(ExperimentTag(experiment_id=i, tag=f"t{j}") for i in ids[::10] for j in (1, 2))
        s.commit()
    app = create_app(settings)
    cases = {
        "GET /experiments?limit=50": [f"/experiments?limit=50&offset={i % 100}" for i in range(10)],
        "GET /experiments/{id}": [f"/experiments/{ids[i % 200]}" for i in range(10)],
    }

    async def run() -> None:
        async with app.router.lifespan_context(app):
            for name, sample in cases.items():
                await _drive(app, sample * 2)  # warm-up
                paths = (sample * (args.requests // len(sample) + 1))[: args.requests]
                prof = cProfile.Profile()
                t0 = time.process_time()
                prof.enable()
                await _drive(app, paths)
                prof.disable()
                cpu = (time.process_time() - t0) / len(paths)
                t1 = time.process_time()
                await _drive(app, paths)  # unprofiled: the figure to quote
                plain = (time.process_time() - t1) / len(paths)
                print(
                    f"\n[{label}] {name}: {plain * 1e3:.2f} ms CPU per request "
                    f"({cpu * 1e3:.2f} ms under the profiler), {len(paths)} requests"
                )
                for order, pattern, n in (
                    ("tottime", "", args.top),  # where the time is spent itself
                    ("cumulative", "server/|sqlalchemy/orm/(session|loading)|pydantic", args.top),
                ):
                    out = io.StringIO()
                    stats = pstats.Stats(prof, stream=out).sort_stats(order)
                    stats.print_stats(*([pattern] if pattern else []), n)
                    lines = out.getvalue().splitlines()
                    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
                    print(f"  by {order} {pattern}".rstrip())
                    print(
                        "\n".join(
                            line.replace(str(ROOT) + "/", "").replace(str(Path(sys.prefix)), "venv")
                            for line in lines[start : start + n + 1]
                        )
                    )

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    _inline_threadpool()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for db in args.db.split(","):
            if db == "sqlite":
                profile(Settings(data_dir=tmp / "sqlite"), "SQLite", args)
                continue
            name = f"igm_prof_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            try:
                url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
                profile(Settings(data_dir=tmp / "pg", database_url=url), "PostgreSQL", args)
            finally:
                from server.db import get_engine

                get_engine(url).dispose()
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
