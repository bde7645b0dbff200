"""One selection and one grouping (server.selection) behind GET /compare and GET /compare/curves:
the same experiments chosen the same ways (ids or unique prefixes, a tag, a sweep id or prefix)
form the same groups under the same labels and colour positions in both, on SQLite and
PostgreSQL; GET /compare pairs every group with a baseline per metric and modality, with
intervals inside the metric's range. The runs' metrics are real MLflow runs in the app's store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server import crud
from server.main import create_app
from server.settings import Settings
from tests.service.conftest import make_settings
from tests.web import data

BASE = {"name": "sel", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}
METHODS = ("igm", "joint")
SEEDS = (0, 1, 2)
LABELS = {f"mx (method={m})" for m in METHODS}


@pytest.fixture
def lab(tmp_path: Path, db_url: str) -> Iterator[tuple[TestClient, Settings, dict]]:
    """A sweep of 2 methods x 3 seeds, each point succeeded with a logged run; a seventh
    experiment outside the sweep, tagged like its points."""
    settings = make_settings(tmp_path, database_url=db_url)
    with TestClient(create_app(settings)) as client:
        grid = {"method.name": list(METHODS), "seed": [0, 1, 2]}
        body = {"base": BASE, "name": "mx", "grid": grid, "tags": ["mx"]}
        sweep = client.post("/experiments/sweep", json=body).json()
        sessions = client.app.state.sessions
        for exp in sweep["data"]:
            seed, method = exp["sweep_values"]["seed"], exp["sweep_values"]["method.name"]
            acc = 0.6 + 0.1 * (method == "igm") + 0.01 * seed
            run = data.log_run(settings, {"val/fused/acc": ([10, 20], [0.5, acc])})
            summary = data.summary(acc, 0.9, acc - 0.2)
            data.finish(sessions, exp["id"], "succeeded", run_id=run, summary=summary)
        other = client.post("/experiments", json={**BASE, "name": "alone"}, params={"tags": "mx"})
        yield client, settings, {"sweep": sweep, "other": other.json()["id"]}


def labels(client: TestClient, route: str, **params) -> dict[str, int]:
    """Group label -> how many experiments the group holds, as `route` answers for `params`."""
    res = client.get(route, params=params)
    assert res.status_code == 200, res.text
    return {g["label"]: g["n"] if "n" in g else len(g["ids"]) for g in res.json()["groups"]}


def colours(client: TestClient, route: str, **params) -> dict[str, int]:
    """Group label -> its colour position, as `route` answers for `params`."""
    return {g["label"]: g["color_index"] for g in client.get(route, params=params).json()["groups"]}


def test_both_routes_group_a_sweep_the_same_way(lab) -> None:
    client, _, made = lab
    sweep_id = made["sweep"]["sweep_id"]
    for chosen in ({"sweep": sweep_id}, {"sweep": sweep_id[:8]}, {"tag": "mx"}):
        table = labels(client, "/compare", **chosen)
        drawn = labels(client, "/compare/curves", **chosen)
        assert table == drawn == dict.fromkeys(LABELS, 3), chosen
        assert colours(client, "/compare", **chosen) == colours(client, "/compare/curves", **chosen)
    curves = client.get("/compare/curves", params={"sweep": sweep_id[:8]}).json()
    assert curves["matched"] == 6 and {r["group"] for r in curves["runs"]} == LABELS
    seeds = {g["label"]: g["seeds"] for g in curves["groups"]}
    assert seeds == {label: [0, 1, 2] for label in LABELS}
    band = next(g for g in curves["groups"] if g["label"] == "mx (method=igm)")
    assert band["curves"]["val/fused/acc"]["mean"][-1] == pytest.approx(0.71)


def test_prefixes_choose_the_same_runs_in_both_routes(lab) -> None:
    client, _, made = lab
    points = made["sweep"]["data"]
    prefixes = [p["id"][:8] for p in points[:4]]  # the first four: igm x 3 and joint seed 0
    expected = {"mx (method=igm)": 3, "mx (method=joint)": 1}
    table = client.get("/compare", params={"ids": ",".join(prefixes)}).json()
    assert (
        labels(client, "/compare", ids=prefixes)
        == expected
        == labels(client, "/compare/curves", ids=",".join(prefixes))
    )
    assert sorted(table["experiments"]) == sorted(p["id"] for p in points[:4])
    unknown = [*prefixes[:1], "fedcba98"]
    assert client.get("/compare", params={"ids": unknown}).json()["not_compared"] == ["fedcba98"]
    assert client.get("/compare/curves", params={"ids": unknown}).json()["matched"] == 1
    for route in ("/compare", "/compare/curves"):
        nothing = client.get(route, params={"ids": "fedcba98"}).json()
        assert nothing["groups"] == [] and nothing["matched"] == 0  # not everything
        both = client.get(route, params={"ids": prefixes[0], "tag": "nope"}).json()
        assert both["matched"] == 0  # every part of a selection must match


def test_selections_are_checked_alike(lab) -> None:
    client, _, made = lab
    for route in ("/compare", "/compare/curves"):
        for params, loc, words in (
            ({}, "query", "give experiment ids, a tag or a sweep to compare"),
            ({"ids": ",".join(f"{i:08x}" for i in range(501))}, "query.ids", "at most 500 ids"),
            ({"tag": "a\x00b"}, "query.tag", "must not contain NUL characters"),
            ({"ids": ["abcdef12", "ab\x00"]}, "query.ids.1", "must not contain NUL characters"),
            ({"sweep": "s" * 65}, "query.sweep", "at most 64 characters"),
        ):
            res = client.get(route, params=params)
            assert res.status_code == 422, (route, params, res.text)
            detail = res.json()["detail"]
            assert any(d["loc"] == loc and words in d["msg"] for d in detail), (route, detail)
    alone = client.get("/compare/curves", params={"ids": made["other"][:8]}).json()
    assert alone["matched"] == 0  # queued, no run: nothing to draw


def test_every_group_is_paired_with_the_baseline(lab) -> None:
    client, _, made = lab
    sweep_id = made["sweep"]["sweep_id"]
    report = client.get("/compare", params={"sweep": sweep_id}).json()
    assert report["baseline"] == "mx (method=joint)" and report["baseline_rule"] == "joint training"
    metrics = ["acc", "macro_f1", "map", "modality_acc.strong", "modality_acc.weak"]
    assert report["pair_metrics"] == metrics and report["unpaired"] == []
    pairs = {p["metric"]: p for p in report["pairs"]}
    assert list(pairs) == metrics
    assert {(p["b"], p["a"], p["n"]) for p in pairs.values()} == {
        ("mx (method=igm)", "mx (method=joint)", 3)
    }
    # igm is 0.1 above joint on every seed (fused and weak), equal on the strong modality
    for metric, diff in (("acc", 10.0), ("modality_acc.weak", 10.0), ("modality_acc.strong", 0)):
        pair = pairs[metric]
        assert pair["diff_pp"] == pytest.approx(diff, abs=1e-9), metric
        assert pair["lo_pp"] == pytest.approx(diff, abs=1e-9) == pair["hi_pp"]
    assert (
        pairs["acc"]["significant"] is True and pairs["modality_acc.strong"]["significant"] is False
    )
    lead = next(x for x in report["leads"] if x["metric"] == "acc")
    assert (lead["group"], lead["runner_up"], lead["star"]) == (*LABELS_BY_METHOD, True)
    for given in ("mx (method=igm)", "igm"):  # a label, or a method one group alone has
        chosen = client.get("/compare", params={"sweep": sweep_id, "baseline": given}).json()
        assert chosen["baseline"] == "mx (method=igm)" and chosen["baseline_rule"] == "chosen"
        acc = next(p for p in chosen["pairs"] if p["metric"] == "acc")
        assert acc["b"] == "mx (method=joint)" and acc["diff_pp"] == pytest.approx(-10.0)
    for given, words in (
        ("nope", "baseline 'nope' names no group; the groups: mx (method=igm), mx (method=joint)"),
        ("a\x00b", "must not contain NUL characters"),
        ("x" * 301, "at most 300 characters"),
    ):
        res = client.get("/compare", params={"sweep": sweep_id, "baseline": given})
        assert res.status_code == 422, res.text
        assert any(d["loc"] in ("query.baseline", ["query", "baseline"]) and words in d["msg"]
                   for d in res.json()["detail"]), res.json()  # fmt: skip


LABELS_BY_METHOD = ("mx (method=igm)", "mx (method=joint)")


def _finished(client: TestClient, spec: dict, tag: str, acc: float, weak: float) -> str:
    exp = client.post("/experiments", json=spec, params={"tags": tag}).json()
    summary = data.summary(acc, 0.95, weak)
    data.finish(client.app.state.sessions, exp["id"], "succeeded", summary=summary)
    return exp["id"]


def test_intervals_stay_in_range_and_unpaired_groups_say_why(lab) -> None:
    client, _, _ = lab
    joint = {**BASE, "name": "bd-joint", "method": {"name": "joint"}}
    for seed, acc in enumerate((0.70, 0.71, 0.72)):
        _finished(client, {**joint, "seed": seed}, "bd", acc, 0.3)
    for seed, acc in enumerate((0.97, 0.99, 1.0)):
        _finished(client, {**BASE, "name": "bd-near", "seed": seed}, "bd", acc, 0.6)
    for seed in (0, 1):
        _finished(client, {**BASE, "name": "bd-two", "seed": seed}, "bd", 0.8, 0.5 + seed / 10)
    other = {"name": "synthetic", "params": {"n_train": 300}}
    for seed in (0, 1, 2):
        _finished(
            client, {**BASE, "name": "bd-data", "dataset": other, "seed": seed}, "bd", 0.8, 0.5
        )
    for seed in (5, 6, 7):
        _finished(client, {**BASE, "name": "bd-seeds", "seed": seed}, "bd", 0.8, 0.5)
    report = client.get("/compare", params={"tag": "bd"}).json()
    groups = {g["label"]: g for g in report["groups"]}
    near = groups["bd-near"]["metrics"]["acc"]
    assert near["hi"] == 1.0 and near["lo"] == pytest.approx(0.9487209, abs=1e-6)  # clipped
    assert all(
        0.0 <= s["lo"] <= s["hi"] <= 1.0
        for g in groups.values()
        if g["interval_note"] is None
        for s in [*g["metrics"].values(), *g["modality_acc"].values()]
    )
    two = groups["bd-two"]
    assert two["interval_note"] == "too few seeds for an interval"
    assert two["metrics"]["acc"]["lo"] is None and two["modality_acc"]["weak"]["hi"] is None
    paired = [p for p in report["pairs"] if p["b"] == "bd-two"]
    assert {p["metric"] for p in paired} == set(report["pair_metrics"]) and all(
        p["lo_pp"] is None and p["note"].startswith("too few seeds for an interval") for p in paired
    )
    assert all(-100 <= p["lo_pp"] <= p["hi_pp"] <= 100 for p in report["pairs"] if p["lo_pp"])
    assert report["unpaired"] == [
        {"group": "bd-data", "reason": "the dataset's parameters differ from those of bd-joint"},
        {"group": "bd-seeds", "reason": "no seed in common (seeds 5, 6, 7; bd-joint: 0, 1, 2)"},
    ]
    lead = next(x for x in report["leads"] if x["metric"] == "acc")
    assert lead["group"] == "bd-near" and lead["star"] is False  # no seed pairs with bd-seeds


def test_a_running_experiment_gets_its_label_and_colour_in_both_views(lab) -> None:
    client, settings, _ = lab
    sessions = client.app.state.sessions
    for seed in SEEDS:
        exp = client.post("/experiments", json={**BASE, "name": "dup", "seed": seed},
                          params={"tags": "dup"}).json()  # fmt: skip
        run = data.log_run(settings, {"val/fused/acc": ([10, 20], [0.5, 0.7])})
        data.finish(
            sessions, exp["id"], "succeeded", run_id=run, summary=data.summary(0.7, 0.9, 0.5)
        )
    mla = {**BASE, "name": "dup", "method": {"name": "mla"}}
    running = client.post("/experiments", json=mla, params={"tags": "dup"}).json()["id"]
    with sessions() as s:
        assert crud.claim(s, experiment_id=running, worker=data.WORKER, stale_after_s=60)
        run = data.log_run(settings, {"val/fused/acc": ([10], [0.4])})
        crud.set_mlflow_run(s, experiment_id=running, run_id=run)
    table, drawn = (colours(client, r, tag="dup") for r in ("/compare", "/compare/curves"))
    assert table == {"dup (method=igm)": 0}  # the running mla experiment is not finished
    assert drawn == {"dup (method=igm)": 0, "dup (method=mla)": 1}
