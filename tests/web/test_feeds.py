"""The JSON the dashboard polls, against the real server of conftest.py: the changes feed, an
experiment's timeline, metrics after a step, and the compare curves with their seed bands."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from igm_core.compare import mean_ci
from server import curves
from tests.web import data
from tests.web.conftest import Lab


@pytest.fixture
def api(lab: Lab) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=lab.url, timeout=20) as client:
        yield client


def test_changes_feed(lab: Lab, api: httpx.Client) -> None:
    tag = f"feed-{uuid.uuid4().hex[:6]}"
    start = api.get("/experiments/changes", params={"tag": tag}).json()
    assert start["count"] == 0 and start["data"] == [] and start["cursor"]
    ids = [
        data.create(lab.sessions, data.spec(f"feed-{i}"), tags=[tag], queue=lab.queue)
        for i in range(3)
    ]
    feed = api.get("/experiments/changes", params={"tag": tag, "since": start["cursor"]}).json()
    assert feed["count"] == 3 and {e["id"] for e in feed["data"]} == set(ids)
    assert feed["cursor"] > start["cursor"] and not feed["truncated"]
    before = {e["id"]: e["updated_at"] for e in feed["data"]}
    assert api.post(f"/experiments/{ids[0]}/cancel").json()["status"] == "cancelled"
    after = api.get("/experiments/changes", params={"tag": tag, "since": feed["cursor"]}).json()
    changed = {e["id"]: e for e in after["data"]}
    assert changed[ids[0]]["status"] == "cancelled"
    assert changed[ids[0]]["updated_at"] > before[ids[0]]
    assert after["cursor"] >= feed["cursor"]
    queued = api.get(
        "/experiments/changes", params={"tag": tag, "status": "queued", "since": start["cursor"]}
    ).json()
    assert queued["count"] == 2 and {e["id"] for e in queued["data"]} == set(ids[1:])
    assert api.delete(f"/experiments/{ids[0]}").status_code == 204
    gone = api.get("/experiments/changes", params={"tag": tag, "since": after["cursor"]}).json()
    assert gone["count"] == 2  # how a page notices a deletion
    some = api.get(
        "/experiments/changes", params={"tag": tag, "since": start["cursor"], "limit": 1}
    ).json()
    assert some["truncated"] and len(some["data"]) == 1
    bad = api.get("/experiments/changes", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == "query.since"


def _logged_run(lab: Lab) -> tuple[str, str]:
    """An experiment of two 2-epoch stages (20 steps per epoch) that has logged 3 epochs."""
    run = data.log_run(
        lab.settings,
        {
            "val/fused/acc": ([20, 40, 60], [0.5, 0.6, 0.7]),
            "train/strong/loss": data.curve(40, 2.0, 1.0, 0.0),
            "train/weak/loss": ([s for s in range(41, 61)], [1.0] * 20),
        },
    )
    eid = data.create(lab.sessions, data.spec(f"tl-{uuid.uuid4().hex[:6]}"), queue=lab.queue)
    data.finish(lab.sessions, eid, "cancelled", run_id=run)
    return eid, run


def test_timeline_stages_epochs_and_clock(lab: Lab, api: httpx.Client) -> None:
    eid, run = _logged_run(lab)
    tl = api.get(f"/experiments/{eid}/timeline").json()
    stages = [(s["modalities"], s["start_step"], s["end_step"], s["reached"]) for s in tl["stages"]]
    assert stages == [(["strong"], 0, 40, True), (["weak"], 40, 80, True)]  # 80: estimated
    assert tl["epoch_end_steps"] == [20, 40, 60, 80] and tl["epochs_logged"] == 3
    assert tl["steps_per_epoch"] == 20
    # the clock: the run's start at step 0, each epoch end, each training key's last point
    assert tl["clock"]["steps"] == [0, 20, 40, 60]
    assert tl["clock"]["seconds"][1:] == pytest.approx([0.0, 0.2, 0.4])  # 10 ms per step
    assert tl["mlflow_run_id"] == run
    assert tl["mlflow_url"].startswith("http://mlflow.example:5000/#/experiments/")
    assert tl["mlflow_url"].endswith(f"/runs/{run}")
    fresh = data.create(lab.sessions, data.spec("tl-queued"), queue=lab.queue)
    empty = api.get(f"/experiments/{fresh}/timeline").json()
    assert empty["epoch_end_steps"] == [] and empty["stages"][1]["start_step"] is None


def test_metrics_after_a_step(lab: Lab, api: httpx.Client) -> None:
    eid, _ = _logged_run(lab)
    url = f"/experiments/{eid}/metrics"
    tail = api.get(url, params={"keys": "train/strong/loss,val/fused/acc", "after_step": 30})
    series = tail.json()["metrics"]
    assert series["train/strong/loss"]["steps"] == list(range(31, 41))
    assert series["train/strong/loss"]["total"] == 10 and series["val/fused/acc"]["steps"] == [
        40,
        60,
    ]
    none = api.get(url, params={"keys": "train/strong/loss", "after_step": 40}).json()
    assert none["metrics"]["train/strong/loss"] == {"steps": [], "values": [], "total": 0}
    assert api.get(url, params={"keys": "nope"}).status_code == 404
    assert api.get(url, params={"keys": "val/fused/acc", "after_step": -5}).status_code == 422


def test_curves_group_seeds_with_t_intervals(lab: Lab, api: httpx.Client) -> None:
    tag = f"curves-{uuid.uuid4().hex[:6]}"
    finals = {0: 0.70, 1: 0.74, 2: 0.75}
    for seed, final in finals.items():
        run = data.log_run(lab.settings, {"val/fused/acc": ([10, 20], [0.5, final])})
        eid = data.create(lab.sessions, data.spec("cv-igm", seed=seed), tags=[tag], queue=lab.queue)
        data.finish(lab.sessions, eid, "succeeded", run_id=run)
    run = data.log_run(lab.settings, {"val/fused/acc": ([10, 20, 30], [0.4, 0.6, 0.65])})
    other = data.create(
        lab.sessions, data.spec("cv-mla", method={"name": "mla"}), tags=[tag], queue=lab.queue
    )
    data.finish(lab.sessions, other, "failed", run_id=run)  # failed runs are drawn too
    out = api.get("/compare/curves", params={"tag": tag}).json()
    assert out["shown"] == ["val/fused/acc"] and out["matched"] == 4
    groups = {g["label"]: g for g in out["groups"]}
    band = groups["cv-igm"]["curves"]["val/fused/acc"]
    mean, _, lo, hi = mean_ci(list(finals.values()))
    assert band["steps"] == [10, 20] and band["n"] == [3, 3]
    assert band["mean"][1] == pytest.approx(mean) and band["lo"][1] == pytest.approx(lo)
    assert band["hi"][1] == pytest.approx(hi)
    single = groups["cv-mla"]["curves"]["val/fused/acc"]
    assert single["n"] == [1, 1, 1] and single["lo"] == [None] * 3 and single["mean"][2] == 0.65
    diff = out["spec_differences"]
    assert diff["seed"] == ["0", "1", "2", "0"] and "method.name" in diff
    assert api.get("/compare/curves").status_code == 422
    many = ",".join(f"k{i}" for i in range(13))
    assert api.get("/compare/curves", params={"tag": tag, "keys": many}).status_code == 422


def test_band_bins_runs_of_different_lengths() -> None:
    steps = np.arange(1, 101)
    runs = [
        (steps, np.full(100, 1.0)),
        (steps[:50], np.full(50, 3.0)),
        (steps[:50], np.full(50, 2.0)),
    ]
    out = curves.band(runs, max_points=10)
    assert len(out["steps"]) == 10 and out["n"] == [3] * 5 + [1] * 5
    assert out["mean"][:5] == [2.0] * 5 and out["mean"][5:] == [1.0] * 5
    assert out["lo"][5:] == [None] * 5 and all(
        lo < 2.0 < hi for lo, hi in zip(out["lo"][:5], out["hi"][:5], strict=True)
    )
    two = curves.band(runs[:2], max_points=10)  # two runs: too few seeds for an interval
    assert two["n"][:5] == [2] * 5 and two["lo"] == [None] * 10 == two["hi"]


def test_band_stays_in_range_and_breaks_where_no_run_logged() -> None:
    steps = np.arange(1, 31)
    high = [(steps, np.full(30, v)) for v in (0.97, 0.99, 1.0)]
    out = curves.band(high, max_points=30, bounds=curves.bounds_of("val/fused/acc"))
    assert out["hi"] == [1.0] * 30 and out["lo"][0] == pytest.approx(0.9487209, abs=1e-6)
    assert curves.bounds_of("train/weak/loss") is None and curves.bounds_of("test/weak/acc")
    # a key of one modality, logged in its stages (steps 1-100 and 201-300) but not while the
    # other modality's stage (101-200) trains: one break point, with no value, in the gap
    staged = np.concatenate([np.arange(1, 101), np.arange(201, 301)])
    out = curves.band([(staged, np.ones(200))] * 3, max_points=300)
    assert out["mean"].count(None) == 1 and out["n"].count(0) == 1
    gap = out["mean"].index(None)
    assert out["steps"][gap - 1] <= 100 < out["steps"][gap] < 201 <= out["steps"][gap + 1]
    assert out["lo"][gap] is None and out["n"].count(3) == len(out["steps"]) - 1
    even = curves.band([(np.arange(10, 310, 10), np.ones(30))] * 3, max_points=300)
    assert None not in even["mean"]  # evenly logged: no break
    nan = curves.band([(np.array([1, 2]), np.array([math.nan, 1.0]))], max_points=5)
    assert nan["steps"] == [2] and nan["mean"] == [1.0]
