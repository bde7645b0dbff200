"""A worker stopped with SIGTERM (as `docker stop` or a restart does) mid-experiment: how long
until its experiment is queued again, until another, idle worker has claimed it (the resume),
and until the stopped worker has exited; before graceful stops, the row sat `running` until
Docker's kill and the reconciler's stale period (`IGM_STALE_AFTER_S`, 2 minutes by default).

Loopback only and bounded: a PostgreSQL database of its own (127.0.0.1:5432, trust), and the
redis-server, `mlflow server` (--workers 1, SQLite) and API that tests/service/faultlab.py starts
on spare ports; two workers; every wait has a limit. Each round: a 360-step synthetic experiment
(joint training), SIGTERM to the main process of the worker running it once it passed step 45,
the stopped worker started again once the experiment succeeded.

    python bench/bench_worker_stop.py [--rounds 5] [--log bench/results/cpu_bench_worker_stop.log]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.service.faultlab import Lab, lab, scratch_database  # noqa: E402

LONG = {"epochs": 12}
GUARD_S = 300.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="stops measured (default 5)")
    parser.add_argument("--log", type=Path, help="also append the report to this file")
    args = parser.parse_args()
    with (
        scratch_database("igm_stop") as url,
        tempfile.TemporaryDirectory(prefix="igm-stop-") as tmp,
    ):
        report = measure(Path(tmp), url, args.rounds)
    print(report)
    if args.log:
        with open(args.log, "a") as out:
            out.write(report + "\n")
    return 0


def one_stop(the_lab: Lab, i: int) -> tuple[float, float, float]:
    """(SIGTERM -> queued, SIGTERM -> claimed by the other worker, SIGTERM -> exit) seconds."""
    eid = the_lab.submit(name=f"stop-{i}", schedule=LONG)
    the_lab.wait_step(eid, 45, GUARD_S)
    name, _ = the_lab.worker_of(eid)
    proc = the_lab.workers[name]
    t0 = time.monotonic()
    os.kill(proc.proc.pid, signal.SIGTERM)
    queued = claimed = None
    while claimed is None and time.monotonic() - t0 < GUARD_S:
        exp = the_lab.row(eid)  # a claim quicker than this poll counts as queued then, too
        if queued is None and (exp.status == "queued" or exp.attempts >= 2):
            queued = time.monotonic() - t0
        if exp.attempts >= 2:
            claimed = time.monotonic() - t0
        time.sleep(0.01)
    proc.proc.wait(GUARD_S)
    exited = time.monotonic() - t0
    exp = the_lab.wait_status(eid, ("succeeded", "failed"), GUARD_S)
    assert exp.status == "succeeded" and exp.attempts == 2, (exp.status, exp.attempts, exp.error)
    the_lab.start_worker(name)
    assert queued is not None and claimed is not None, "no hand-back within the guard"
    return queued, claimed, exited


def measure(folder: Path, url: str, rounds: int) -> str:
    with lab(folder, url, f"stop{uuid.uuid4().hex[:8]}", requeue_queued_after_s=3600.0) as the_lab:
        figures = [one_stop(the_lab, i) for i in range(rounds)]
    lines = [
        f"round {i + 1}: queued again {q:.2f} s, claimed by the other worker {c:.2f} s, "
        f"stopped worker exited {e:.2f} s after SIGTERM"
        for i, (q, c, e) in enumerate(figures)
    ]
    med = [statistics.median(f[k] for f in figures) for k in range(3)]
    load = os.getloadavg()
    lines.append(
        f"worker stop, {rounds} rounds, medians: queued again {med[0]:.2f} s, resumed on the "
        f"other worker {med[1]:.2f} s, worker exited {med[2]:.2f} s after SIGTERM; "
        f"{os.cpu_count()}-core CPU, load {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
