"""Every registered method through the whole service: its smallest spec submitted over the REST
API, run by a real Celery worker process, its metrics read back over the API and its experiment
page opened in chromium.

The methods come from the registry (igm_core.catalog.METHODS), so a method added there is tested
here without a line changed. One embedded deployment serves the module (the app under uvicorn,
SQLite, the filesystem broker, an MLflow store, one worker process): every spec is submitted at
once when the deployment starts, and each method's case waits for its own experiment, so the
worker runs them back to back. The specs are tests/specs.py's, cut to one epoch (or one stage
per modality) on its tiny synthetic data.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from igm_core import catalog
from launcher.embedded import ROOT, worker_env
from server.settings import Settings
from tests.service.conftest import queue_settings, served
from tests.specs import schedule_kind, spec_for
from tests.web.conftest import Watched
from worker.command import worker_command

pytestmark = pytest.mark.slow  # twelve real runs back to back: the slow lane (-m slow)

METHODS = catalog.METHODS.names()
SHORT = {"stages": {"stage_epochs": [1, 1]}, "epochs": {"epochs": 1}}
# where a default multiplies the run's epochs: ReconBoost rectifies for 4 epochs after each round
FEWER = {"reconboost": {"correct_epochs": 1}}
# a hang guard for all of them, several times what they take back to back on a loaded machine
HANG_GUARD_S = 300 + 90 * len(METHODS)


def smallest_spec(name: str) -> dict:
    """tests/specs.py's spec of method `name`, one epoch or one stage per modality."""
    spec = spec_for(name, schedule=SHORT[schedule_kind(name)], log_every=2)
    if name in FEWER:
        spec["method"] = {"name": name, "params": FEWER[name]}
    return {**spec, "name": f"e2e-{name}"}


@dataclass
class Deployment:
    url: str
    settings: Settings
    tag: str  # every experiment's
    ids: dict[str, str]  # method -> experiment id
    worker: subprocess.Popen
    deadline: float


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    from server.main import create_app

    folder = tmp_path_factory.mktemp("methods-e2e")
    settings, queue = queue_settings(folder, heartbeat_s=0.5)
    tag = f"methods-{uuid.uuid4().hex[:6]}"
    with served(create_app(settings)) as url:
        ids = {}
        for name in METHODS:
            res = httpx.post(
                f"{url}/experiments", json=smallest_spec(name), params={"tags": [tag]}, timeout=60
            )
            assert res.status_code == 201, (name, res.text)
            ids[name] = res.json()["id"]
        worker = subprocess.Popen(
            worker_command([queue], f"{queue}@methods"),
            env=worker_env(settings),
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "worker.log", "w"),  # noqa: SIM115 - closed with the process
        )
        try:
            yield Deployment(url, settings, tag, ids, worker, time.monotonic() + HANG_GUARD_S)
        finally:
            os.killpg(worker.pid, signal.SIGQUIT)
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)


def finished(d: Deployment, eid: str) -> dict:
    """The experiment once it has ended (a hang guard, never a speed check)."""
    while True:
        exp = httpx.get(f"{d.url}/experiments/{eid}", timeout=30).json()
        if exp["status"] in ("succeeded", "failed", "cancelled"):
            return exp
        assert d.worker.poll() is None, "the worker process died"
        assert time.monotonic() < d.deadline, f"hang guard: {exp['status']} {exp.get('progress')}"
        time.sleep(0.3)


def test_the_registry_is_covered() -> None:
    """The parametrization is the registry, baselines included."""
    baselines = {"gblending", "agm", "pmr", "mmpareto", "reconboost", "relearning"}
    assert {"joint", "unimodal", "alternating", "mla", "igm", "ogm_ge", *baselines} <= set(METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_method_runs_through_the_service(
    method: str, deployment: Deployment, watched: Watched
) -> None:
    eid = deployment.ids[method]
    exp = finished(deployment, eid)
    assert exp["status"] == "succeeded", (method, exp.get("error"), exp.get("traceback_tail"))
    assert exp["method"] == method and exp["progress"]["fraction"] == 1.0
    test = exp["summary"]["test"]
    assert 0.0 <= test["acc"] <= 1.0 and test["modality_acc"]
    # BalanceBenchmark's cost for every method; the Shapley measure where two modalities are fused
    balance = exp["summary"]["balance"]
    assert balance["cost"]["train_flops"] > 0
    used = list(test["modality_acc"])
    if len(used) > 1:
        assert set(balance["imbalance"]["shapley_acc"]) == set(used)
    else:
        assert balance["imbalance"] is None
    # the metrics the worker logged to MLflow, read back through the API
    keys = httpx.get(f"{deployment.url}/experiments/{eid}/metrics", timeout=30).json()["keys"]
    val = [k for k in keys if k.startswith("val/")]
    assert val, keys
    hist = httpx.get(
        f"{deployment.url}/experiments/{eid}/metrics",
        params={"keys": val[0], "max_points": 10},
        timeout=30,
    ).json()
    assert hist["metrics"][val[0]]["values"]
    # the dashboard's page of the experiment
    page = watched.page
    page.goto(f"{deployment.url}/ui/experiments/{eid}")
    assert page.locator("#status").inner_text() == "succeeded"
    fused = page.locator("#headline [data-headline='fused'] .headline-value")
    fused.filter(has_text="%").wait_for()
    assert fused.inner_text() == f"{100 * test['acc']:.1f}%"
    assert page.locator("#f-method").inner_text() == method
    page.locator("#test-metrics tr").first.wait_for()


def test_compare_shows_the_balance_measures(deployment: Deployment, watched: Watched) -> None:
    """GET /compare and the compare page carry each group's Shapley values and training FLOPs,
    as the runs measured them."""
    exps = {m: finished(deployment, eid) for m, eid in deployment.ids.items()}
    assert all(e["status"] == "succeeded" for e in exps.values())
    report = httpx.get(
        f"{deployment.url}/compare", params={"tag": deployment.tag}, timeout=60
    ).json()
    by_method = {g["method"]: g for g in report["groups"]}
    assert set(by_method) == set(METHODS)
    for method, group in by_method.items():
        balance, measured = group["balance"], exps[method]["summary"]["balance"]
        assert balance["train_flops"] == measured["cost"]["train_flops"]  # one seed: its value
        if measured["imbalance"] is None:  # one modality evaluated
            assert balance["shapley_gap"] is None and balance["shapley_acc"] == {}
            continue
        assert balance["shapley_gap"]["mean"] == pytest.approx(measured["imbalance"]["shapley_gap"])
        for m, v in measured["imbalance"]["shapley_acc"].items():
            assert balance["shapley_acc"][m]["mean"] == pytest.approx(v)
    page = watched.page
    page.goto(f"{deployment.url}/ui/compare?tag={deployment.tag}")
    page.locator("#final-panel").wait_for()
    heads = page.locator("#final thead th").all_inner_texts()
    assert {"Shapley gap", "strong Shapley", "weak Shapley", "train FLOPs"} <= set(heads)
    joint = by_method["joint"]
    row = page.locator(f"#final tr[data-group='{joint['label']}']")
    gap = 100 * joint["balance"]["shapley_gap"]["mean"]
    assert row.locator("td[data-balance='shapley_gap']").inner_text() == f"{gap:.1f}"
    assert "FLOP" in row.locator("td[data-balance='train_flops']").inner_text()
