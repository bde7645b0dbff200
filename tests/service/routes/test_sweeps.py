"""server/routes/sweeps.py against real components: grid and random sweeps, their preview, and
a sweep with one bad point writing nothing."""

from __future__ import annotations

import redis
from fastapi.testclient import TestClient

from server.settings import Settings
from tests.service.conftest import messages
from tests.service.routes.conftest import SPEC, row_count


def test_grid_sweep(client: TestClient, rds: redis.Redis, redis_queue: str) -> None:
    body = {
        "base": SPEC,
        "grid": {"method.params.tau": [0.1, 0.2], "optimizer.lr": [1e-5, 0.1, 1]},
        "tags": ["grid"],
        "priority": 9,
    }
    res = client.post("/experiments/sweep", json=body)
    assert res.status_code == 201, res.text
    out = res.json()
    assert out["count"] == 6 and out["warning"] is None
    points = {
        (e["spec"]["method"]["params"]["tau"], e["spec"]["optimizer"]["lr"]) for e in out["data"]
    }
    assert points == {(t, lr) for t in (0.1, 0.2) for lr in (1e-5, 0.1, 1.0)}
    assert [e["name"] for e in out["data"]] == [f"tiny-{i}" for i in range(6)]
    assert {e["sweep_id"] for e in out["data"]} == {out["sweep_id"]}
    assert all(e["tags"] == ["grid"] and e["priority"] == 9 for e in out["data"])
    for e in out["data"]:
        tau, lr = e["spec"]["method"]["params"]["tau"], e["spec"]["optimizer"]["lr"]
        assert e["sweep_values"] == {"method.params.tau": tau, "optimizer.lr": lr}
    page = client.get("/experiments", params={"sweep": out["sweep_id"]}).json()
    assert page["count"] == 6
    assert {tuple(e["sweep_values"].values()) for e in page["data"]} == points
    assert sorted(m[1] for m in messages(rds, redis_queue)) == sorted(e["id"] for e in out["data"])


def test_random_sweep_is_reproducible(client: TestClient) -> None:
    random = {
        "samples": 3,
        "seed": 7,
        "params": {
            "optimizer.lr": {"log_uniform": [1e-4, 1e-1]},
            "seed": {"int_uniform": [0, 1000]},
            "method.params.rho": {"uniform": [0.01, 0.1]},
            "optimizer.name": {"choice": ["sgd", "adam"]},
        },
    }
    body = {"base": SPEC, "grid": {"method.params.tau": [0.2, 0.3]}, "random": random}

    def draws(payload: dict) -> list[tuple]:
        res = client.post("/experiments/sweep", json=payload)
        assert res.status_code == 201, res.text
        return [
            (
                e["spec"]["method"]["params"]["tau"],
                e["spec"]["optimizer"]["lr"],
                e["spec"]["seed"],
                e["spec"]["optimizer"]["name"],
            )
            for e in res.json()["data"]
        ]

    first = draws(body)
    assert len(first) == 6 and [p[0] for p in first] == [0.2] * 3 + [0.3] * 3
    assert [p[1:] for p in first[:3]] == [p[1:] for p in first[3:]]  # draws x grid
    assert all(1e-4 <= p[1] <= 1e-1 and 0 <= p[2] <= 1000 for p in first)
    assert len({p[1] for p in first[:3]}) == 3
    assert draws(body) == first
    again = client.get("/experiments", params={"limit": 6}).json()["data"]  # the second sweep
    twins = [client.get(f"/experiments/{e['id']}").json()["twins"] for e in again]
    assert all(len(t) == 1 for t in twins)  # each point has its twin in the first sweep
    assert draws({**body, "random": {**random, "seed": 8}}) != first


def test_a_sweep_with_one_bad_point_writes_nothing(client: TestClient, settings: Settings) -> None:
    bad = {"base": SPEC, "grid": {"method.params.tau": [0.1, -1, 0.3]}}
    res = client.post("/experiments/sweep", json=bad)
    assert res.status_code == 422
    (err,) = res.json()["detail"]
    assert err["loc"] == "points.1.method.params.tau" and err["point"] == 1
    # a queue the server lacks is reported with the points' problems, in one answer
    res = client.post("/experiments/sweep", json={**bad, "queue": "nope"})
    assert [d["loc"] for d in res.json()["detail"]] == ["body.queue", "points.1.method.params.tau"]
    too_big = {
        "base": SPEC,
        "grid": {"seed": list(range(5))},
        "random": {"samples": 3, "params": {"optimizer.lr": {"uniform": [0.01, 0.1]}}},
    }
    res = client.post("/experiments/sweep", json=too_big)
    assert res.status_code == 422 and "limit is 12" in res.json()["detail"][0]["msg"]
    for body in (
        {"base": SPEC, "grid": {"seed": []}},
        {
            "base": SPEC,
            "grid": {"seed": [1]},
            "random": {"samples": 1, "params": {"seed": {"uniform": [0, 1]}}},
        },
        {"base": SPEC, "random": {"samples": 2, "params": {"seed": {"uniform": [2, 1]}}}},
        {"base": SPEC, "random": {"samples": 2, "params": {"seed": {"beta": [2, 1]}}}},
        {"base": SPEC, "grid": {"bad key!": [1]}},
        {"base": SPEC, "queue": "nope"},
        {"base": SPEC, "tags": ["no spaces"]},
        {"base": "not a mapping"},
        {"base": {**SPEC, "name": "x" * 128}},
    ):
        res = client.post("/experiments/sweep", json=body)
        assert res.status_code == 422, (body, res.text)
        assert all(isinstance(d["loc"], str) and d["msg"] for d in res.json()["detail"])
    res = client.post(
        "/experiments/sweep", content=b"{", headers={"content-type": "application/json"}
    )
    assert res.status_code == 422 and "malformed JSON" in res.json()["detail"][0]["msg"]
    assert row_count(settings) == 0


def test_sweep_preview_lists_validated_points_and_writes_nothing(
    client: TestClient, settings: Settings, rds: redis.Redis, redis_queue: str
) -> None:
    body = {
        "base": SPEC,
        "grid": {"method.params.tau": [0.1, 0.2]},
        "random": {"samples": 2, "seed": 3, "params": {"optimizer.lr": {"uniform": [0.01, 0.1]}}},
    }
    res = client.post("/experiments/sweep/preview", json=body)
    assert res.status_code == 200, res.text
    out = res.json()
    assert out["count"] == 4
    assert [p["name"] for p in out["points"]] == [f"tiny-{i}" for i in range(4)]
    assert [p["values"]["method.params.tau"] for p in out["points"]] == [0.1, 0.1, 0.2, 0.2]
    created = client.post("/experiments/sweep", json=body).json()["data"]
    assert [e["spec_hash"] for e in created] == [p["spec_hash"] for p in out["points"]]
    assert row_count(settings) == 4  # the four of the real sweep: the preview wrote nothing
    bad = client.post("/experiments/sweep/preview", json={**body, "grid": {"seed": [-1]}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"].startswith("points.0.")
