"""Cost caps from the workers' memory, on both databases: a worker registers at start with its
memory (worker.presence, the start path a Celery worker runs, measuring this machine), and a
spec that fits no live worker of its queue is refused with the estimate, the largest worker's
memory and its name; a worker that stopped or went silent no longer counts, and with none the
settings' caps apply (their messages say so). One test runs real worker processes."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import update

from igm_core import cost
from igm_core.spec import resolve_spec
from server import workers
from server.capacity import gb
from server.db import session_factory
from server.main import create_app
from server.models import Worker, utcnow
from server.settings import Settings
from tests.service.conftest import REDIS_URL, make_settings, sqlite_url, start_worker, stop_worker
from worker import presence

NAMES = [f"m{i}" for i in range(8)]
SAMPLE_BYTES = 8 * 4096 * 4  # eight float32 modalities of 4,096 values


def data_spec(data_bytes: float, **extra) -> dict:
    """A synthetic spec whose data takes about `data_bytes` in memory (a small model)."""
    n_train = max(10, math.ceil(data_bytes / SAMPLE_BYTES) - 20)
    params = {
        "modalities": NAMES,
        "dims": [4096] * 8,
        "signal": [1.0] * 8,
        "difficulty": [0.0] * 8,
        "n_train": n_train,
        "n_val": 10,
        "n_test": 10,
    }
    return {
        "name": "sized",
        "dataset": {"name": "synthetic", "params": params},
        "method": {"name": "joint"},
        "schedule": {"epochs": 1},
        "batch_size": 4096,
        "model": {"encoders": {m: {"name": "mlp", "params": {"hidden": [8]}} for m in NAMES}},
        **extra,
    }


def estimate(spec: dict) -> cost.Estimate:
    return cost.estimate_spec(resolve_spec(spec))


@pytest.fixture
def queue() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(tmp_path: Path, db_url: str, queue: str) -> Settings:
    # the settings' caps far above this machine, so that the workers' memory decides
    return make_settings(
        tmp_path, database_url=db_url, default_queue=queue, queues=[queue, "other"],
        max_data_bytes=10**15, max_parameters=10**11,
    )  # fmt: skip


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def started(settings: Settings, name: str, queues: list[str]) -> presence.Presence:
    """A worker's start path, as Celery's worker_ready runs it: measure, then register."""
    worker = presence.Presence(settings, name, queues)
    assert worker.report()
    return worker


def refusal(res) -> list[dict]:
    assert res.status_code == 422, res.text
    return res.json()["detail"]


def test_a_spec_that_fits_no_worker_is_refused_with_the_numbers(client, settings, queue) -> None:
    worker = started(settings, f"{queue}@here", [queue])
    memory = presence.host_memory()
    assert worker.capacity is not None and worker.capacity.memory_bytes == memory
    big = data_spec(1.1 * memory)
    need = estimate(big)
    (err,) = refusal(client.post("/experiments", json=big))
    assert err["loc"] == "dataset.params"
    assert err["msg"] == (
        f"the run would take about {gb(need.data_bytes + need.param_bytes)} of memory (its data "
        f"and the model's parameters); the largest worker on queue '{queue}' by memory, "
        f"{queue}@here, has {gb(memory)} of memory, of which a run may use 80%: "
        f"{gb(0.8 * memory)} (IGM_WORKER_MEMORY_SHARE)"
    )
    res = client.post("/experiments/sweep/preview", json={"base": big, "grid": {"seed": [1, 2]}})
    assert [e["loc"] for e in refusal(res)] == [
        "points.0.dataset.params",
        "points.1.dataset.params",
    ]
    assert client.get("/experiments").json()["count"] == 0
    # under the share it passes; another queue without workers is not this worker's business
    assert client.post("/experiments", json=data_spec(0.6 * memory)).status_code == 201
    res = client.post("/experiments", json=big, params={"queue": "other"})
    assert res.status_code == 201, res.text


def test_stopped_and_silent_workers_stop_counting(client, settings, queue) -> None:
    memory = presence.host_memory()
    big = data_spec(1.1 * memory)
    worker = started(settings, f"{queue}@here", [queue])
    assert client.post("/experiments", json=big).status_code == 422
    worker.stop()  # a clean shutdown: it stops counting at once
    assert client.post("/experiments", json=big).status_code == 201
    worker = started(settings, f"{queue}@here", [queue])  # a restart registers again
    assert client.post("/experiments", json=big).status_code == 422
    silent = utcnow() - timedelta(seconds=settings.worker_seen_within_s + 1)
    with session_factory(settings.resolved_database_url())() as s:
        s.execute(update(Worker).values(seen_at=silent))  # killed: no report since
        s.commit()
    assert client.post("/experiments", json=big).status_code == 201
    assert worker.report()  # its next beat: counted again
    assert client.post("/experiments", json=big).status_code == 422


def test_without_workers_the_settings_caps_apply_and_say_so(tmp_path, db_url, queue) -> None:
    settings = make_settings(
        tmp_path, database_url=db_url, default_queue=queue, queues=[queue], max_data_bytes=10**7
    )
    with TestClient(create_app(settings)) as client:
        (err,) = refusal(client.post("/experiments", json=data_spec(2e7)))
        assert err["loc"] == "dataset.params"
        assert err["msg"].endswith(
            f"this server's cap is 10.0 MB (IGM_MAX_DATA_BYTES); no worker on queue '{queue}' "
            "has reported its memory in the last 300 s, so only this server's caps apply"
        )
        started(settings, f"{queue}@here", [queue])
        (err,) = refusal(client.post("/experiments", json=data_spec(2e7)))
        assert err["msg"].endswith("this server's cap is 10.0 MB (IGM_MAX_DATA_BYTES)")


def gpu_worker(settings: Settings, name: str, queue: str, gpu_gb: float) -> None:
    """A GPU worker's report (this machine has no GPU to measure): 64 GB of memory."""
    with session_factory(settings.resolved_database_url())() as s:
        workers.register(
            s, name=name, host="gpu-host", queues=[queue], memory_bytes=64 * 10**9,
            gpu_memory_bytes=int(gpu_gb * 10**9), gpu_name="NVIDIA H100",
        )  # fmt: skip


def test_gpu_workers_hold_the_model_and_cuda_needs_one(client, settings, queue) -> None:
    started(settings, f"{queue}@cpu", [queue])
    wide = {"name": "mlp", "params": {"hidden": [8192] * 2, "out_dim": 8192}}
    model = {**data_spec(1e6), "model": {"encoders": dict.fromkeys(NAMES, wide)}}
    (err,) = refusal(client.post("/experiments", json={**model, "device": "cuda"}))
    assert err["loc"] == "device" and err["msg"] == (
        f"the spec asks for device 'cuda'; no worker on queue '{queue}' has a GPU "
        f"(workers: {queue}@cpu)"
    )
    gpu_worker(settings, f"{queue}@gpu-small", queue, 8)
    gpu_worker(settings, f"{queue}@gpu", queue, 16)
    need = estimate(model).param_bytes  # about 21 GB: more than 80% of 16 GB
    (err,) = refusal(client.post("/experiments", json={**model, "device": "cuda"}))
    assert err["loc"] == "model" and err["msg"] == (
        f"the model would take about {gb(need)} of GPU memory with its gradients and optimizer "
        f"state; the largest worker on queue '{queue}' by GPU memory, {queue}@gpu, has 16.0 GB "
        "of GPU memory (NVIDIA H100), of which a run may use 80%: 12.8 GB "
        "(IGM_WORKER_MEMORY_SHARE)"
    )
    # device "auto" may run on this machine's memory if it is large enough, else refused
    fits_here = need <= 0.8 * presence.host_memory()
    res = client.post("/experiments", json=model)
    assert res.status_code == (201 if fits_here else 422), res.text
    assert client.post("/experiments", json={**data_spec(1e6), "device": "cuda"}).status_code == 201


def test_the_gpu_probe_reads_what_the_trainer_sees(monkeypatch, tmp_path) -> None:
    """The child process's answer is torch's own, here (CPU: none) or on a GPU machine."""
    import torch

    monkeypatch.setattr(presence, "GPU_DEVICE_FILES", (tmp_path,))  # probe even without a driver
    found = presence.gpu_memory()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        assert found == (props.total_memory, props.name)
    else:
        assert found == (None, None)
        out = subprocess.run(
            [sys.executable, "-c", presence.GPU_PROBE], capture_output=True, text=True, timeout=120
        )
        assert (out.returncode, out.stdout) == (0, "null\n"), out.stderr  # an answer, no error
    monkeypatch.setattr(presence, "GPU_DEVICE_FILES", (tmp_path / "none",))
    assert presence.gpu_memory() == (None, None)  # no driver: not probed


@pytest.fixture(params=["lab", "embedded"])
def lab_settings(request: pytest.FixtureRequest, tmp_path: Path, queue: str) -> Iterator[Settings]:
    common = {"default_queue": queue, "queues": [queue], "max_data_bytes": 10**15}
    if request.param == "embedded":
        yield make_settings(tmp_path, database_url=sqlite_url(tmp_path), **common)
        return
    db = request.getfixturevalue("clean_pg")
    yield make_settings(tmp_path, database_url=db, broker_url=REDIS_URL, **common)
    broker = redis.Redis.from_url(REDIS_URL)  # the message of the experiment left queued
    bindings = [f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
    broker.delete(*broker.scan_iter(match=f"{queue}*"), *bindings)
    broker.close()


def wait_until(check, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout  # hang guard: a worker starts in seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@pytest.mark.slow
def test_a_real_worker_registers_and_unregisters(lab_settings: Settings, tmp_path, queue) -> None:
    """A Celery worker process reports itself when ready and marks itself stopped on SIGTERM;
    meanwhile the API refuses what would not fit it."""
    sessions = session_factory(lab_settings.resolved_database_url())

    def rows() -> list[Worker]:
        with sessions() as s:
            return list(s.query(Worker).all())

    proc = start_worker(lab_settings, queue, tmp_path / "worker.log")
    try:
        wait_until(lambda: rows(), "the worker's report")
        (row,) = rows()
        assert (row.name, row.queues, row.stopped_at) == (f"{queue}@test", [queue], None)
        assert row.memory_bytes == presence.host_memory() and row.gpu_memory_bytes is None
        big = data_spec(1.1 * row.memory_bytes)
        with TestClient(create_app(lab_settings)) as client:
            (err,) = refusal(client.post("/experiments", json=big))
            assert f"{queue}@test, has {gb(row.memory_bytes)} of memory" in err["msg"]
            os.killpg(proc.pid, signal.SIGTERM)  # a warm shutdown, as `docker stop` sends
            proc.wait(60)
            assert rows()[0].stopped_at is not None
            assert client.post("/experiments", json=big).status_code == 201
    finally:
        if proc.poll() is None:
            stop_worker(proc, signal.SIGKILL, 30)
