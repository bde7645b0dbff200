"""One selection and one grouping (server.selection) behind GET /compare and GET /compare/curves:
the same experiments chosen the same ways (ids or unique prefixes, a tag, a sweep id or prefix)
form the same groups under the same labels in both, on SQLite and PostgreSQL. The runs' metrics
are real MLflow runs in the app's store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from server.settings import Settings
from tests.service.conftest import make_settings
from tests.web import data

BASE = {"name": "sel", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}
METHODS = ("igm", "joint")
LABELS = {f"mx (method.name={m})" for m in METHODS}


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


def test_both_routes_group_a_sweep_the_same_way(lab) -> None:
    client, _, made = lab
    sweep_id = made["sweep"]["sweep_id"]
    for chosen in ({"sweep": sweep_id}, {"sweep": sweep_id[:8]}, {"tag": "mx"}):
        table = labels(client, "/compare", **chosen)
        drawn = labels(client, "/compare/curves", **chosen)
        assert table == drawn == dict.fromkeys(LABELS, 3), chosen
    curves = client.get("/compare/curves", params={"sweep": sweep_id[:8]}).json()
    assert curves["matched"] == 6 and {r["group"] for r in curves["runs"]} == LABELS
    seeds = {g["label"]: g["seeds"] for g in curves["groups"]}
    assert seeds == {label: [0, 1, 2] for label in LABELS}
    band = next(g for g in curves["groups"] if g["label"] == "mx (method.name=igm)")
    assert band["curves"]["val/fused/acc"]["mean"][-1] == pytest.approx(0.71)


def test_prefixes_choose_the_same_runs_in_both_routes(lab) -> None:
    client, _, made = lab
    points = made["sweep"]["data"]
    prefixes = [p["id"][:8] for p in points[:4]]  # the first four: igm x 3 and joint seed 0
    expected = {"mx (method.name=igm)": 3, "mx (method.name=joint)": 1}
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
