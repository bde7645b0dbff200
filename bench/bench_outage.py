"""Benchmark of the API while its MLflow store hangs (a black hole: accepts connections, never
answers), on loopback only, bounded in requests.

    python bench/bench_outage.py [--requests 40] [--timeout 5] [--rounds 3]

Prints, per round: the time of each of `--requests` concurrent metric requests (503 within the
MLflow timeout) and of GET /experiments polled meanwhile (p50, p99, max), which never waits for
MLflow. tests/service/test_mlflow_outage.py asserts the same properties with hang guards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.service.conftest import served  # noqa: E402
from tests.service.test_mlflow_outage import BlackHole, hanging_store_app, outage  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, choices=range(1, 201))
    parser.add_argument("--timeout", type=float, default=5.0, help="IGM_MLFLOW_TIMEOUT_S")
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 21))
    args = parser.parse_args()
    hole = BlackHole()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app, eid = hanging_store_app(Path(tmp), hole.port, args.timeout)
            with served(app) as url:
                for n in range(1, args.rounds + 1):
                    answers, listed = outage(url, eid, args.requests)
                    took = [t for _, t, _ in answers]
                    codes = sorted({code for code, _, _ in answers})
                    print(
                        f"round {n}: {len(answers)} metric requests -> {codes}, "
                        f"median {statistics.median(took):.2f} s, max {max(took):.2f} s "
                        f"(timeout {args.timeout:g} s); {len(listed)} lists meanwhile: "
                        f"p50 {1000 * pct(listed, 0.5):.1f} ms, p99 {1000 * pct(listed, 0.99):.1f} "
                        f"ms, max {1000 * max(listed):.1f} ms"
                    )
    finally:
        hole.close()
    print(f"load average (1 min): {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
