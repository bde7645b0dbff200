"""End to end: the real API app, a real Celery worker process, a real MLflow store.

Two deployments: the lab one (PostgreSQL + Redis) and the embedded one (SQLite + the filesystem
broker). POST a small synthetic spec, the worker runs it, the experiment ends succeeded, GET returns
the test metrics that MLflow holds in result.json, the metrics endpoint lists per-modality gradient
statistics; a running experiment cancelled ends cancelled within seconds; a spec whose data turns
out bad ends failed with its error.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from server.main import create_app
from tests.service.conftest import REDIS_URL, make_settings, sqlite_url, start_worker, stop_worker
from tests.specs import staged

SPEC = staged("e2e", log_every=2)
LONG = {
    **SPEC,
    "name": "e2e-long",
    "dataset": {"name": "synthetic", "params": {"n_train": 4000}},
    "schedule": {"stage_epochs": [60, 60]},
}


@pytest.fixture(params=["lab", "embedded"])
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple]:
    queue = f"t{uuid.uuid4().hex[:10]}"
    common = {
        "default_queue": queue,
        "queues": [queue],
        "heartbeat_s": 0.5,
        "data_roots": [tmp_path / "datasets"],
    }
    if request.param == "lab":
        settings = make_settings(
            tmp_path,
            database_url=request.getfixturevalue("clean_pg"),
            broker_url=REDIS_URL,
            **common,
        )
    else:
        settings = make_settings(tmp_path, database_url=sqlite_url(tmp_path), **common)
    proc = start_worker(settings, queue, tmp_path / "worker.log")
    with TestClient(create_app(settings)) as client:
        yield client, settings
    stop_worker(proc)


def wait_for(client: TestClient, eid: str, done, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        exp = client.get(f"/experiments/{eid}").json()
        if done(exp):
            return exp
        time.sleep(0.2)
    raise AssertionError(f"timed out; last state {exp['status']} {exp.get('progress')}")


def finished(exp: dict) -> bool:
    return exp["status"] in ("succeeded", "failed", "cancelled")


def test_submit_run_succeed_and_read_back(lab, tmp_path: Path) -> None:
    client, settings = lab
    res = client.post("/experiments", json=SPEC, params={"tags": ["e2e"]})
    assert res.status_code == 201, res.text
    eid = res.json()["id"]
    exp = wait_for(client, eid, finished)
    assert exp["status"] == "succeeded", exp.get("traceback_tail")
    assert exp["attempts"] == 1 and exp["progress"]["fraction"] == 1.0
    mlflow = MlflowClient(settings.resolved_mlflow_uri())
    local = mlflow.download_artifacts(exp["mlflow_run_id"], "result.json", str(tmp_path))
    result = json.loads(Path(local).read_text())
    assert exp["summary"]["test"] == result["test"]  # GET returns what MLflow holds
    keys = client.get(f"/experiments/{eid}/metrics").json()["keys"]
    for m in ("strong", "weak"):
        assert f"grad/{m}/norm" in keys and f"val/{m}/acc" in keys
    assert "gm/weak/kept_ratio" in keys
    hist = client.get(
        f"/experiments/{eid}/metrics", params={"keys": "val/fused/acc", "max_points": 2}
    ).json()
    assert len(hist["metrics"]["val/fused/acc"]["values"]) == 2
    arts = {a["path"] for a in client.get(f"/experiments/{eid}/artifacts").json()["artifacts"]}
    assert {"result.json", "spec.json", "confusion_matrices.json"} <= arts


def test_cancel_running_and_failing_data(lab, tmp_path: Path) -> None:
    client, settings = lab
    eid = client.post("/experiments", json=LONG).json()["id"]
    wait_for(client, eid, lambda e: e["status"] == "running" and (e["progress"] or {}).get("step"))
    t0 = time.time()
    assert client.post(f"/experiments/{eid}/cancel").status_code == 200
    exp = wait_for(client, eid, finished, timeout=30)
    assert exp["status"] == "cancelled" and time.time() - t0 < 10

    # data that validates (headers) but is bad inside: NaN values, found when the worker loads it
    root = settings.data_roots[0] / "bad"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        a = rng.normal(size=(40, 4)).astype(np.float32)
        if split == "train":
            a[3, 1] = np.nan
        np.savez(
            root / f"{split}.npz",
            label=rng.integers(0, 2, 40),
            audio=a,
            video=rng.normal(size=(40, 3)).astype(np.float32),
        )
    bad = {
        **SPEC,
        "name": "e2e-bad",
        "dataset": {"name": "features", "params": {"root": str(root)}},
    }
    res = client.post("/experiments", json=bad)
    assert res.status_code == 201, res.text
    exp = wait_for(client, res.json()["id"], finished)
    assert exp["status"] == "failed"
    assert "train.npz" in exp["error"] and "NaN" in exp["error"]
    assert "Traceback" in exp["traceback_tail"]
