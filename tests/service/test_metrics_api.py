"""Metrics and artifacts of an experiment, read from a real MLflow SQLite store.

One store per module: a run with a 100,000-step `loss` history (logged with log_batch in chunks
of 1,000, as the tracker does), a few shorter keys, and artifact files. Experiment rows point at
that run the way the worker does it (crud.set_mlflow_run).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import mlflow.tracking as mlflow_tracking
import pytest
from fastapi.testclient import TestClient

from server import crud
from server.db import session_factory
from server.main import create_app
from server.settings import Settings
from tests.service.conftest import make_settings

N = 100_000
SPIKE, DIP = 54_321, 12_345
SPEC = {"name": "metrics", "dataset": {"name": "synthetic"}, "method": {"name": "joint"}}


def loss_at(step: int) -> float:
    if step == SPIKE:
        return 100.0
    if step == DIP:
        return -100.0
    return 2.0 * math.exp(-step / 20_000) + 0.05 * math.sin(step)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(tracking URI, run id) of a run with a long history and some artifacts."""
    from mlflow.entities import Metric

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow_tracking.MlflowClient(uri)
    exp_id = client.create_experiment("igm-lab", artifact_location=(root / "art").as_uri())
    run_id = client.create_run(exp_id).info.run_id
    for start in range(0, N, 1000):
        batch = [
            Metric("loss", loss_at(s), 1_700_000_000_000 + s, s) for s in range(start, start + 1000)
        ]
        client.log_batch(run_id, metrics=batch)
    short = [Metric("val/fused/acc", 0.1 * e, 0, e) for e in range(10)]
    short += [Metric("grad/weak/norm", float(v), 0, i) for i, v in enumerate([1.0, math.nan, 3.0])]
    client.log_batch(run_id, metrics=short)
    files = root / "files"
    (files / "plots").mkdir(parents=True)
    (files / "result.json").write_text(json.dumps({"test": {"acc": 0.9}}))
    (files / "plots" / "curve.txt").write_text("1 2 3\n")
    client.log_artifact(run_id, str(files / "result.json"))
    client.log_artifact(run_id, str(files / "plots" / "curve.txt"), "plots")
    return uri, run_id


@pytest.fixture
def settings(tmp_path: Path, db_url: str, store: tuple[str, str]) -> Settings:
    return make_settings(tmp_path, database_url=db_url, mlflow_tracking_uri=store[0])


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _experiment(settings: Settings, run_id: str | None) -> str:
    from igm_core.spec import resolve_spec

    with session_factory(settings.resolved_database_url())() as session:
        exp = crud.create_experiment(
            session, spec=resolve_spec(SPEC), queue="cpu", max_attempts=3, priority=5
        )
        if run_id is not None:
            crud.set_mlflow_run(session, experiment_id=exp.id, run_id=run_id)
        return exp.id


@pytest.fixture
def eid(settings: Settings, store: tuple[str, str]) -> str:
    return _experiment(settings, store[1])


def test_metric_keys(client: TestClient, eid: str, settings: Settings) -> None:
    res = client.get(f"/experiments/{eid}/metrics")
    assert res.status_code == 200
    assert res.json() == {"keys": ["grad/weak/norm", "loss", "val/fused/acc"]}
    no_run = _experiment(settings, None)
    assert client.get(f"/experiments/{no_run}/metrics").json() == {"keys": []}
    res = client.get(f"/experiments/{no_run}/metrics", params={"keys": "loss"})
    assert res.status_code == 404 and "'loss'" in res.json()["detail"]
    health = client.get("/health").json()["mlflow"]
    assert health["ok"] and "opens" in health["detail"]


def test_a_100k_history_is_downsampled_on_the_server(client: TestClient, eid: str) -> None:
    url, params = f"/experiments/{eid}/metrics", {"keys": "loss", "max_points": 1000}
    res = client.get(url, params=params)
    assert res.status_code == 200, res.text
    series = res.json()["metrics"]["loss"]
    steps, values = series["steps"], series["values"]
    assert series["total"] == N and 900 <= len(steps) <= 1000 and len(values) == len(steps)
    assert steps[0] == 0 and steps[-1] == N - 1 and steps == sorted(set(steps))
    assert SPIKE in steps and DIP in steps and max(values) == 100.0 and min(values) == -100.0
    assert all(v == pytest.approx(loss_at(s)) for s, v in zip(steps, values, strict=True))
    # how long it takes is bench/bench_dashboard.py's figure, not a test's


def test_several_keys_and_their_limits(client: TestClient, eid: str) -> None:
    url = f"/experiments/{eid}/metrics"
    both = client.get(url, params={"keys": "val/fused/acc,grad/weak/norm"}).json()["metrics"]
    assert both["val/fused/acc"] == {
        "steps": list(range(10)),
        "values": [pytest.approx(0.1 * e) for e in range(10)],
        "total": 10,
    }
    assert both["grad/weak/norm"]["values"] == [1.0, None, 3.0]  # NaN has no JSON spelling
    repeated = client.get(
        url, params=[("keys", "loss"), ("keys", "val/fused/acc"), ("max_points", 2)]
    )
    assert repeated.status_code == 200
    loss = repeated.json()["metrics"]["loss"]
    assert loss["steps"] == [0, N - 1] and loss["total"] == N
    missing = client.get(url, params={"keys": ["loss", "no/such/key"]})
    assert missing.status_code == 404 and "'no/such/key'" in missing.json()["detail"]
    for bad in ({"max_points": 0}, {"max_points": 10_001}, {"keys": ",".join(map(str, range(51)))}):
        res = client.get(url, params={"keys": "loss", **bad})
        assert res.status_code == 422, (bad, res.text)


def test_artifacts_list_and_download(client: TestClient, eid: str, settings: Settings) -> None:
    res = client.get(f"/experiments/{eid}/artifacts")
    assert res.status_code == 200, res.text
    listed = {a["path"]: a for a in res.json()["artifacts"]}
    assert set(listed) == {"plots", "plots/curve.txt", "result.json"}
    assert listed["plots"]["is_dir"] and not listed["result.json"]["is_dir"]
    assert listed["plots/curve.txt"]["size"] == 6
    assert listed["result.json"]["url"] == f"/experiments/{eid}/artifacts/result.json"
    got = client.get(listed["result.json"]["url"])
    assert got.status_code == 200 and got.json() == {"test": {"acc": 0.9}}
    assert got.headers["content-disposition"].startswith("attachment")
    assert client.get(listed["plots/curve.txt"]["url"]).text == "1 2 3\n"
    assert client.get(f"/experiments/{eid}/artifacts/plots").status_code == 400
    assert client.get(f"/experiments/{eid}/artifacts/nope.txt").status_code == 404
    no_run = _experiment(settings, None)
    assert client.get(f"/experiments/{no_run}/artifacts").json() == {"artifacts": []}


@pytest.mark.parametrize(
    "path",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        "plots/%2E%2E/%2E%2E/x",
        "plots/%2E/curve.txt",
        "a%5C..%5Cb",
        "plots//curve.txt",
    ],
)
def test_artifact_path_traversal_is_refused(client: TestClient, eid: str, path: str) -> None:
    res = client.get(f"/experiments/{eid}/artifacts/{path}")
    assert res.status_code == 400, res.text
    assert "invalid artifact path" in res.json()["detail"]
