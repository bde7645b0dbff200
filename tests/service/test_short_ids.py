"""Short ids in the API: a unique prefix of an experiment or sweep id works wherever an id is
taken; an ambiguous one is a 409 that says how many match, an unknown one a 404. And the compare
report of a sweep: its points grouped over seeds and labelled by their swept values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from server import crud
from server.db import get_engine, session_factory
from server.main import create_app
from server.settings import Settings
from tests.service.conftest import make_settings, sqlite_url

SPEC = {"name": "short", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}
A = "abcdef1" + "0" * 25
B = "abcdef2" + "0" * 25
C = "abcdee" + "f" * 26  # sorts just before every id starting "abcdef"


def app_client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings))  # the embedded broker: a folder under tmp_path


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, database_url=db_url)


def renamed(client: TestClient, settings: Settings, new_id: str) -> str:
    """An experiment whose id is `new_id` (ids are random: chosen ones make prefixes collide)."""
    old = client.post("/experiments", json=SPEC).json()["id"]
    with get_engine(settings.resolved_database_url()).begin() as conn:
        conn.execute(text("UPDATE experiments SET id = :new WHERE id = :old"),
                     {"new": new_id, "old": old})  # fmt: skip
    return new_id


def test_unique_ambiguous_and_unknown_prefixes(settings: Settings) -> None:
    with app_client(settings) as client:
        for exp_id in (A, B, C):
            renamed(client, settings, exp_id)
        assert client.get(f"/experiments/{A[:7]}").json()["id"] == A  # unique: resolves
        assert client.get("/experiments/ABCDEE").json()["id"] == C  # any case; the range's edge
        ambiguous = client.get("/experiments/abcdef")
        assert ambiguous.status_code == 409
        assert ambiguous.json()["detail"] == (
            "2 experiments have ids starting with 'abcdef': give more of the id"
        )
        assert client.get("/experiments/123456").json()["detail"] == "experiment 123456 not found"
        short = client.get("/experiments/abcde")
        assert short.status_code == 404
        assert short.json()["detail"] == (
            "experiment abcde not found: give at least 6 hex digits of its id"
        )
        assert client.get("/experiments/abcdef-not-hex").status_code == 404
        # every route that takes an id takes a prefix
        assert client.post(f"/experiments/{B[:7]}/cancel").json()["status"] == "cancelled"
        assert client.get(f"/experiments/{B[:7]}/metrics").json() == {"keys": []}
        assert client.post("/experiments/abcdef/retry").status_code == 409
        assert client.delete(f"/experiments/{B[:7]}").status_code == 204
        assert client.get("/experiments/abcdef").json()["id"] == A  # unique now


def _finish_all(settings: Settings, accs: dict[str, float]) -> None:
    with session_factory(settings.resolved_database_url())() as session:
        for exp_id, acc in accs.items():
            assert crud.claim(session, experiment_id=exp_id, worker="w", stale_after_s=60)
            test = {"acc": acc, "macro_f1": acc, "map": acc, "modality_acc": {"weak": acc}}
            crud.finish(session, experiment_id=exp_id, worker="w", status="succeeded",
                        summary={"test": test, "run": {"wall_time_s": 1.0}})  # fmt: skip


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = make_settings(tmp_path, database_url=sqlite_url(tmp_path))
    with app_client(settings) as client:
        yield client, settings


def test_compare_by_sweep_prefix_groups_seeds_and_labels_the_swept_values(
    sqlite_client: tuple[TestClient, Settings],
) -> None:
    client, settings = sqlite_client
    grid = {"seed": [0, 1, 2], "method.params.tau": [0.2, 0.8]}
    body = {"base": SPEC, "name": "sw", "grid": grid}
    sweep = client.post("/experiments/sweep", json=body).json()
    points = {e["id"]: e["sweep_values"] for e in sweep["data"]}
    acc = {
        i: 0.7 + 0.1 * (v["method.params.tau"] == 0.8) + 0.01 * v["seed"] for i, v in points.items()
    }
    _finish_all(settings, acc)
    listed = client.get("/experiments", params={"sweep": sweep["sweep_id"][:8]}).json()
    assert listed["count"] == 6 and {e["id"]: e["sweep_values"] for e in listed["data"]} == points

    report = client.get("/compare", params={"sweep": sweep["sweep_id"][:6]}).json()
    groups = {g["label"]: g for g in report["groups"]}
    assert set(groups) == {"sw (tau=0.2)", "sw (tau=0.8)"}
    assert [groups[label]["n"] for label in sorted(groups)] == [3, 3]
    assert groups["sw (tau=0.8)"]["metrics"]["acc"]["mean"] == pytest.approx(0.81)
    pair = next(p for p in report["pairs"] if p["metric"] == "acc")  # no joint: the first group
    assert (pair["a"], pair["b"]) == ("sw (tau=0.2)", "sw (tau=0.8)")
    assert pair["n"] == 3 and pair["diff_pp"] == pytest.approx(10.0)

    some = [i[:8] for i in list(points)[:2]]
    chosen = client.get("/compare", params={"ids": [*some, "fedcba98"]}).json()
    assert sum(g["n"] for g in chosen["groups"]) == 2 and chosen["not_compared"] == ["fedcba98"]
    nothing = client.get("/compare", params={"ids": "fedcba98"}).json()
    assert nothing["groups"] == [] and nothing["matched"] == 0  # not everything
    assert client.get("/experiments", params={"sweep": "fedcba98"}).json()["count"] == 0
