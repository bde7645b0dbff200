"""A small lab on loopback for the fault tests and the soak benchmark: a PostgreSQL database,
a redis-server and an `mlflow server` of its own (on spare ports, so they can be stopped and
restarted), the API served in a thread, and Celery worker processes that can be SIGKILLed.

Every helper bounds its waits (hang guards far above the expected times)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from mlflow.tracking import MlflowClient

from igm_core.spec import resolve_spec
from launcher.embedded import ROOT, worker_env
from server import crud
from server.db import session_factory
from server.main import create_app
from server.models import Experiment
from server.queue import make_celery, send_run
from server.settings import Settings
from tests.service.conftest import free_port, listening, served
from worker.command import worker_command

# one stage, every step in train/fused/loss: 30 steps per epoch, a checkpoint at each epoch's end
SPEC = {
    "name": "fault",
    "dataset": {"name": "synthetic", "params": {"n_train": 960, "n_val": 64, "n_test": 64}},
    "method": {"name": "joint"},
    "schedule": {"epochs": 8},
    "batch_size": 32,
    "log_every": 10,
}
LOSS_KEY = "train/fused/loss"
STEPS_PER_EPOCH = 30


def wait_until(what: str, check: Callable[[], Any], timeout: float, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class Process:
    """A child process in its own session, its output in a log file."""

    def __init__(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.cmd, self.log, self.env = cmd, log, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def children(self) -> list[int]:
        """Direct children's pids (a Celery worker's pool processes)."""
        if self.proc is None:
            return []
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(p) for p in path.read_text().split()]
        except OSError:
            return []


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Lab:
    def __init__(self, folder: Path, database_url: str, queue: str, **overrides: Any) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.redis_port, self.mlflow_port = free_port(), free_port()
        self.queue = queue
        defaults: dict[str, Any] = {
            "heartbeat_s": 0.5,
            "stale_after_s": 4.0,
            "reconcile_s": 1.0,
            "requeue_queued_after_s": 4.0,
            "broker_lost_after_s": 30.0,
            "mlflow_timeout_s": 2.0,
            "mlflow_start_wait_s": 180.0,
        }
        self.settings = Settings(
            data_dir=folder / "data",
            database_url=database_url,
            broker_url=f"redis://127.0.0.1:{self.redis_port}/0",
            mlflow_tracking_uri=f"http://127.0.0.1:{self.mlflow_port}",
            default_queue=queue,
            queues=[queue],
            **{**defaults, **overrides},
        )
        self.sessions = session_factory(database_url)
        self.celery = make_celery(self.settings)
        self.redis = Process(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(folder)],
            folder / "redis.log",
        )  # fmt: skip
        self.mlflow = Process(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
             "--port", str(self.mlflow_port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
             "--artifacts-destination", str(folder / "mlartifacts"), "--serve-artifacts"],
            folder / "mlflow.log",
        )  # fmt: skip
        self.workers: dict[str, Process] = {}
        self.api_url = ""
        self._api: contextlib.AbstractContextManager | None = None

    # ------------------------------------------------------------------ services

    def start_redis(self) -> None:
        self.redis.start()
        wait_until("redis", lambda: listening(self.redis_port), 30)

    def start_mlflow(self) -> None:
        self.mlflow.start()
        url = f"http://127.0.0.1:{self.mlflow_port}/health"
        wait_until("the MLflow server", lambda: _http_ok(url), 120, every=0.3)

    def start_api(self) -> None:
        self._api = served(create_app(self.settings))
        self.api_url = self._api.__enter__()

    def stop_api(self) -> None:
        if self._api is not None:
            self._api.__exit__(None, None, None)
            self._api = None

    def worker_env(self) -> dict[str, str]:
        env = worker_env(self.settings)
        s = self.settings
        env.update(
            IGM_HEARTBEAT_S=str(s.heartbeat_s), IGM_STALE_AFTER_S=str(s.stale_after_s),
            IGM_MLFLOW_START_WAIT_S=str(s.mlflow_start_wait_s), IGM_MAX_ATTEMPTS="3",
        )  # fmt: skip
        return env

    def start_worker(self, name: str) -> Process:
        proc = Process(
            worker_command([self.queue], f"{name}@faultlab"),
            self.folder / f"worker-{name}.log",
            self.worker_env(),
        ).start()
        self.workers[name] = proc
        return proc

    def close(self) -> None:
        for proc in self.workers.values():
            proc.kill(signal.SIGKILL)
        self.stop_api()
        self.celery.close()
        self.mlflow.kill(signal.SIGTERM)
        self.redis.kill(signal.SIGKILL)

    # ------------------------------------------------------------------ experiments

    def submit(self, spec: dict | None = None, max_attempts: int = 3, **changes: Any) -> str:
        """A row and its message, as POST /experiments writes them."""
        resolved = resolve_spec({**SPEC, **(spec or {}), **changes})
        with self.sessions() as s:
            exp = crud.create_experiment(
                s, spec=resolved, queue=self.queue, max_attempts=max_attempts
            )
        send_run(self.celery, experiment_id=exp.id, queue=self.queue, priority=0)
        return exp.id

    def row(self, eid: str) -> Experiment:
        with self.sessions() as s:
            return crud.get_experiment(s, eid)

    def wait_status(self, eid: str, statuses: tuple[str, ...], timeout: float) -> Experiment:
        return wait_until(
            f"{eid} to be {'/'.join(statuses)}",
            lambda: (e := self.row(eid)).status in statuses and e,
            timeout,
            every=0.2,
        )

    def wait_step(self, eid: str, step: int, timeout: float) -> Experiment:
        """Until the row runs at `step` or later and its checkpoint exists. The run's process
        is paused (SIGSTOP) while each check reads the row and resumed for 0.02 s between checks
        (a few steps), so however fast the machine, the run is caught early: the row's progress
        (written every heartbeat_s of wall time) advances by a fraction of a run, never past it."""
        claimed = wait_until(
            f"{eid} to be claimed",
            lambda: (e := self.row(eid)).status == "running" and e.worker and e,
            timeout,
            every=0.02,
        )
        pid = int(claimed.worker.rsplit(":", 1)[1])
        ckpt = self.settings.runs_dir() / eid / "checkpoint.pt"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, signal.SIGSTOP)
            try:
                exp = self.row(eid)
                if exp.status != "running":
                    raise AssertionError(f"{eid} ended {exp.status} before step {step}")
                if (exp.progress or {}).get("step", 0) >= step and ckpt.exists():
                    return exp
            finally:
                os.kill(pid, signal.SIGCONT)
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout:g} s waiting for {eid} to pass {step}")

    def worker_of(self, eid: str) -> tuple[str, int]:
        """(worker name, pool child pid) running the experiment."""
        pid = int(self.row(eid).worker.rsplit(":", 1)[1])
        for name, proc in self.workers.items():
            if pid in proc.children():
                return name, pid
        raise AssertionError(f"no worker of ours runs {eid} (pid {pid})")

    # ------------------------------------------------------------------ checks

    def check_metrics(self, eid: str) -> Experiment:
        """Every logged step of the loss reached MLflow exactly once across the attempts' runs
        (none missing, none doubled inside a run), and /metrics shows each step once."""
        exp = self.row(eid)
        spec = exp.spec
        total = exp.progress["total_steps"]
        expected = [s for s in range(1, total + 1) if (s - 1) % spec["log_every"] == 0]
        client = MlflowClient(self.settings.resolved_mlflow_uri())
        for run_id, _ in exp.runs():
            steps = [m.step for m in client.get_metric_history(run_id, LOSS_KEY)]
            assert len(steps) == len(set(steps)), f"run {run_id} logged a step twice"
        answer = httpx.get(
            f"{self.api_url}/experiments/{eid}/metrics",
            params={"keys": LOSS_KEY, "max_points": 10_000},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        series = answer.json()["metrics"][LOSS_KEY]
        assert series["steps"] == expected, (len(series["steps"]), len(expected))
        assert series["total"] == len(expected)
        assert all(v is not None and np.isfinite(v) for v in series["values"])
        return exp


@contextlib.contextmanager
def lab(folder: Path, database_url: str, queue: str, workers: int = 2, **kw: Any) -> Iterator[Lab]:
    """A started lab: redis, MLflow, API and `workers` worker processes (w1, w2, ...)."""
    the_lab = Lab(folder, database_url, queue, **kw)
    try:
        the_lab.redis.start()
        the_lab.mlflow.start()  # its ~10 s start overlaps the workers' (they import torch)
        for i in range(workers):
            the_lab.start_worker(f"w{i + 1}")
        wait_until("redis", lambda: listening(the_lab.redis_port), 30)
        url = f"http://127.0.0.1:{the_lab.mlflow_port}/health"
        wait_until("the MLflow server", lambda: _http_ok(url), 120, every=0.3)
        the_lab.start_api()
        yield the_lab
    finally:
        the_lab.close()


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A migrated PostgreSQL database of its own (for the benchmarks), dropped afterwards."""
    import uuid

    import psycopg

    from server import migrations
    from server.db import get_engine

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        migrations.upgrade(url)
        yield url
    finally:
        get_engine(url).dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dump(data: Any) -> str:
    return json.dumps(data, default=str)
