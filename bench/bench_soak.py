"""Soak: N small experiments through two Celery workers on Redis, one worker SIGKILLed and
restarted midway; prints succeeded / failed / extra attempts / duplicate points / lost metric
steps and the wall time.

Loopback only and bounded: a PostgreSQL database of its own (127.0.0.1:5432, trust), and the
redis-server, `mlflow server` (--workers 1, SQLite) and API that tests/service/faultlab.py starts
on spare ports; every wait has a limit. Each experiment: the synthetic dataset, 200 samples, one
epoch of joint training (7 steps, each logged). Lost steps: logged steps missing from the
experiment's history stitched across its attempts' MLflow runs; duplicate points: a step logged
twice inside one run.

    python bench/bench_soak.py [--n 500] [--log bench/results/soak.log]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server import attempts  # noqa: E402
from server.metric_store import open_store  # noqa: E402
from tests.service.faultlab import LOSS_KEY, lab, scratch_database, wait_until  # noqa: E402

SMALL = {
    "dataset": {"name": "synthetic", "params": {"n_train": 200, "n_val": 64, "n_test": 64}},
    "schedule": {"epochs": 1},
    "log_every": 1,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500, help="experiments (default 500)")
    parser.add_argument("--timeout", type=float, default=3600, help="limit on the whole run, s")
    parser.add_argument("--log", type=Path, help="also append the report to this file")
    args = parser.parse_args()
    with (
        scratch_database("igm_soak") as url,
        tempfile.TemporaryDirectory(prefix="igm-soak-") as tmp,
    ):
        report = soak(Path(tmp), url, args.n, args.timeout)
    print(report)
    if args.log:
        with open(args.log, "a") as out:
            out.write(report + "\n")
    return 0


def soak(folder: Path, url: str, n: int, limit: float) -> str:
    with lab(folder, url, f"soak{uuid.uuid4().hex[:8]}") as the_lab:
        t0 = time.monotonic()
        ids = [the_lab.submit(SMALL, name=f"soak-{i}", seed=i) for i in range(n)]
        done = lambda: sum(  # noqa: E731
            the_lab.row(e).status in ("succeeded", "failed", "cancelled") for e in ids
        )
        wait_until("half of them finished", lambda: done() >= n // 2, limit, every=0.5)

        def w1_running() -> bool:  # kill it while it runs an experiment it has claimed
            running = [e for e in map(the_lab.row, ids) if e.status == "running" and e.worker]
            pids = {int(e.worker.rsplit(":", 1)[1]) for e in running}
            return bool(pids & set(the_lab.workers["w1"].children()))

        wait_until("w1 running an experiment", w1_running, limit, every=0.05)
        killed_at = time.monotonic() - t0
        the_lab.workers["w1"].kill(signal.SIGKILL)  # parent and pool child
        time.sleep(2.0)
        the_lab.start_worker("w1")
        wait_until("all of them finished", lambda: done() == n, limit, every=0.5)
        wall = time.monotonic() - t0
        rows = [the_lab.row(e) for e in ids]
        store = open_store(the_lab.settings.resolved_mlflow_uri(), timeout_s=30)
        lost = duplicates = 0
        from mlflow.tracking import MlflowClient

        client = MlflowClient(the_lab.settings.resolved_mlflow_uri())
        for exp in rows:
            if exp.status != "succeeded":
                continue
            total = exp.progress["total_steps"]
            expected = set(range(1, total + 1))
            history = attempts.metric_history(store, exp.runs(), LOSS_KEY)
            got = set(history[0].tolist()) if history is not None else set()
            lost += len(expected - got)
            for run_id, _ in exp.runs():
                steps = [m.step for m in client.get_metric_history(run_id, LOSS_KEY)]
                duplicates += len(steps) - len(set(steps))
        store.close()
    succeeded = sum(e.status == "succeeded" for e in rows)
    failed = sum(e.status == "failed" for e in rows)
    extra = sum(e.attempts for e in rows) - n
    load = os.getloadavg()[0]
    return (
        f"soak n={n}: succeeded {succeeded} / failed {failed} / extra attempts {extra} / "
        f"duplicate points {duplicates} / lost metric steps {lost}; wall {wall:.1f} s "
        f"(worker w1 SIGKILLed mid-experiment at {killed_at:.1f} s and restarted); "
        f"{os.cpu_count()}-core CPU, load {load:.1f}"
    )


if __name__ == "__main__":
    sys.exit(main())
