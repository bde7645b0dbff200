"""The HTTP API against real components: SQLite and PostgreSQL, Redis as the broker.

Each test that takes `client` runs on both databases. Messages are read back from Redis itself
(database 15, a queue name unique to the test): kombu keeps one list per priority step, named
`<queue>` for step 0 (API priority 9) and `<queue>\\x06\\x16<step>` otherwise.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient

from igm_core import catalog
from server import crud
from server.db import session_factory
from server.filters import ExperimentFilters
from server.main import create_app
from server.migrations import SchemaError
from server.settings import Settings
from tests.service.conftest import REDIS_URL, make_settings

SPEC = {"name": "tiny", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}
JOINT = {"name": "tiny-joint", "dataset": {"name": "synthetic"}, "method": {"name": "joint"}}
SEP = "\x06\x16"
ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def rds(redis_queue: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(REDIS_URL)
    yield conn
    bindings = [f"_kombu.binding.{redis_queue}", f"_kombu.binding_permanent.{redis_queue}"]
    conn.delete(*conn.scan_iter(match=f"{redis_queue}*"), *bindings)
    conn.close()


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_queue: str, rds: redis.Redis) -> Settings:
    return make_settings(
        tmp_path,
        database_url=db_url,
        broker_url=REDIS_URL,
        default_queue=redis_queue,
        queues=[redis_queue, "gpu"],
        max_sweep_size=12,
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def messages(rds: redis.Redis, queue: str) -> list[tuple[str, str]]:
    """(Redis key, experiment id) of every task waiting in `queue`, any priority."""
    out = []
    for key in sorted(rds.scan_iter(match=f"{queue}*")):
        for raw in rds.lrange(key, 0, -1):
            envelope = json.loads(raw)
            args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            assert envelope["headers"]["task"] == "igm.run_experiment"
            out.append((key.decode(), args[0]))
    return out


def row_count(settings: Settings) -> int:
    with session_factory(settings.resolved_database_url())() as session:
        return crud.list_experiment_rows(session, filters=ExperimentFilters(), limit=1)[1]


def post(client: TestClient, spec: dict, **params) -> dict:
    res = client.post("/experiments", json=spec, params=params)
    assert res.status_code == 201, res.text
    return res.json()


# ----------------------------------------------------------------------------- submit


def test_submit_stores_the_resolved_spec_and_enqueues_on_redis(
    client: TestClient, settings: Settings, rds: redis.Redis, redis_queue: str
) -> None:
    res = client.post("/experiments", json=SPEC, params={"tags": ["smoke", "a:b"], "priority": 7})
    assert res.status_code == 201, res.text
    exp = res.json()
    assert exp["status"] == "queued" and exp["warning"] is None and exp["twins"] == []
    assert (exp["queue"], exp["priority"], exp["tags"]) == (redis_queue, 7, ["a:b", "smoke"])
    spec = exp["spec"]
    assert spec["modalities"] == ["strong", "weak"]
    assert spec["schedule"]["stage_epochs"] == [2] * 6 and spec["optimizer"]["lr"] == 0.01
    assert spec["method"]["params"]["tau"] == 0.4
    assert spec["model"]["encoders"]["weak"]["name"] == "mlp"
    assert exp["created_at"].endswith("Z") or exp["created_at"].endswith("+00:00")
    with session_factory(settings.resolved_database_url())() as session:
        row = crud.get_experiment(session, exp["id"])
        assert row is not None and row.status == "queued" and row.spec == spec
    assert messages(rds, redis_queue) == [(f"{redis_queue}{SEP}2", exp["id"])]

    top = post(client, JOINT, priority=9)  # step 0: the list named after the queue
    assert rds.llen(redis_queue) == 1
    assert (redis_queue, top["id"]) in messages(rds, redis_queue)
    got = client.get(f"/experiments/{exp['id']}").json()
    assert got["spec"] == spec and got["traceback_tail"] is None and got["max_attempts"] == 3


def test_yaml_bodies_and_twins(client: TestClient) -> None:
    yaml_spec = "name: tiny\ndataset: {name: synthetic}\nmethod: {name: igm}\n"
    first = client.post(
        "/experiments", content=yaml_spec, headers={"content-type": "application/x-yaml"}
    )
    assert first.status_code == 201, first.text
    first = first.json()
    second = post(client, SPEC)  # the same resolved spec as JSON
    assert second["spec_hash"] == first["spec_hash"] and second["twins"] == [first["id"]]
    assert client.get(f"/experiments/{first['id']}").json()["twins"] == [second["id"]]
    other = post(client, {**SPEC, "seed": 1})
    assert other["twins"] == []
    for media in ("application/yaml", "text/yaml", "application/json; charset=utf-8"):
        body = yaml_spec if "yaml" in media else json.dumps(SPEC)
        assert client.post("/experiments", content=body, headers={"content-type": media}).is_success


BAD_INPUTS = [
    # (request kwargs, status, loc, words in msg)
    (
        {"content": b'{"name": "x",', "headers": {"content-type": "application/json"}},
        422,
        "body",
        "malformed JSON",
    ),
    (
        {"content": "name: [open", "headers": {"content-type": "application/yaml"}},
        422,
        "body",
        "malformed YAML",
    ),
    (
        {"content": "a: &x [1]\nb: *x\n", "headers": {"content-type": "text/yaml"}},
        422,
        "body",
        "aliases",
    ),
    ({"json": [1, 2]}, 422, "body", "mapping"),
    ({"content": b"", "headers": {"content-type": "application/json"}}, 422, "body", "empty"),
    (
        {"content": b'{"name": "x", "seed": NaN}', "headers": {"content-type": "application/json"}},
        422,
        "body",
        "NaN",
    ),
    ({"content": b"name: x", "headers": {"content-type": "text/plain"}}, 415, None, "content type"),
    ({"json": {**SPEC, "batch_size": "abc"}}, 422, "batch_size", "integer"),
    ({"json": {**SPEC, "method": {"name": "nope"}}}, 422, "method.name", "unknown method"),
    ({"json": {**SPEC, "dataset": {"name": "nope"}}}, 422, "dataset.name", "unknown dataset"),
    ({"json": {**JOINT, "schedule": {"epochs": -1}}}, 422, "schedule.epochs", "greater than"),
    ({"json": {**SPEC, "batch_size": 10**9}}, 422, "batch_size", "less than"),
    ({"json": {**SPEC, "bogus": 1}}, 422, "bogus", "unknown key"),
    (
        {"json": {**SPEC, "method": {"name": "igm", "params": {"tau": "x"}}}},
        422,
        "method.params.tau",
        "number",
    ),
    ({"json": SPEC, "params": {"tags": "bad tag!"}}, 422, "query.tags.0", "invalid tag"),
    ({"json": SPEC, "params": {"tags": [f"t{i}" for i in range(21)]}}, 422, "query.tags", "20"),
    ({"json": SPEC, "params": {"queue": "nope"}}, 422, "query.queue", "unknown queue"),
    ({"json": SPEC, "params": {"priority": 10}}, 422, "query.priority", "lie in 0..9"),
    (
        {"json": {**SPEC, "dataset": {"name": "features", "params": {"root": "/etc"}}}},
        422,
        "dataset.params.root",
        "IGM_DATA_ROOTS",
    ),
]


def test_every_problem_of_a_submission_is_reported_at_once(
    client: TestClient, settings: Settings
) -> None:
    bad = {
        "name": "my run!",
        "dataset": {"name": "synthetic"},
        "method": {"name": "igm", "params": {"tau": "x"}},
        "modalities": ["strong", "audio"],
        "batch_size": 0,
    }
    query = {"priority": 12, "tags": ["ok", "bad tag!", "also bad?"], "queue": "nope"}
    res = client.post("/experiments", json=bad, params=query)
    assert res.status_code == 422, res.text
    detail = res.json()["detail"]
    assert [d["loc"] for d in detail] == [
        "query.tags.1",
        "query.tags.2",
        "query.priority",
        "query.queue",
        "name",
        "batch_size",
        "method.params.tau",
        "modalities.1",
    ]
    said = {d["loc"]: d["msg"] for d in detail}
    assert said["name"].startswith("must be letters, digits, spaces and _ . - only")
    assert said["query.priority"] == "priority must lie in 0..9 (higher runs first), got 12"
    # an override that cannot apply is reported with the query's problems
    res = client.post("/experiments", json=bad, params={"priority": -1, "set": ["no-equals"]})
    assert [d["loc"] for d in res.json()["detail"]] == ["query.priority", "--set"]
    assert row_count(settings) == 0


def test_bad_input_is_refused_clearly_and_writes_nothing(
    client: TestClient, settings: Settings, rds: redis.Redis, redis_queue: str
) -> None:
    for kwargs, status, loc, words in BAD_INPUTS:
        res = client.post("/experiments", **kwargs)
        assert res.status_code == status, (kwargs, res.text)
        detail = res.json()["detail"]
        if loc is None:
            assert words in detail, detail
        else:
            assert any(d["loc"] == loc and words in d["msg"] for d in detail), (kwargs, detail)
    big = {**SPEC, "pad": "x" * settings.max_body_bytes}
    assert client.post("/experiments", json=big).status_code == 413
    chunks = iter([b"{" + b" " * 600_000, b" " * 600_000 + b"}"])  # no Content-Length
    res = client.post("/experiments", content=chunks, headers={"content-type": "application/json"})
    assert res.status_code == 413 and "too large" in res.json()["detail"]
    assert row_count(settings) == 0 and messages(rds, redis_queue) == []


def test_unknown_ids_are_404(client: TestClient) -> None:
    for eid in ("0" * 32, "not-an-id", "f" * 100):
        for method, suffix in [
            ("GET", ""),
            ("POST", "/cancel"),
            ("POST", "/retry"),
            ("DELETE", ""),
            ("GET", "/metrics"),
            ("GET", "/artifacts"),
            ("GET", "/artifacts/a.txt"),
        ]:
            res = client.request(method, f"/experiments/{eid}{suffix}")
            assert res.status_code == 404, (method, suffix, res.text)
            assert res.json() == {"detail": f"experiment {eid[:100]} not found"}
    assert client.get("/nowhere").json() == {"detail": "Not Found"}


# ----------------------------------------------------------------------------- list


def test_list_filters_sorts_and_pages(client: TestClient) -> None:
    made = {}
    for name, spec, tags, prio in [
        ("a_b", SPEC, ["x"], 1),
        ("axb", SPEC, ["x", "y"], 2),
        ("a-b 100%", JOINT, [], 3),
        ("zeta", {**JOINT, "dataset": {"name": "digits"}}, ["y"], 4),
    ]:
        made[name] = post(
            client, {**spec, "name": name.replace("%", "")}, tags=tags, priority=prio
        )["id"]
    client.post(f"/experiments/{made['axb']}/cancel")

    def names(**params) -> list[str]:
        page = client.get("/experiments", params=params)
        assert page.status_code == 200, page.text
        return [e["name"] for e in page.json()["data"]]

    assert names(sort="name") == ["a-b 100", "a_b", "axb", "zeta"]
    assert names(sort="-priority") == ["zeta", "a-b 100", "axb", "a_b"]
    assert names(q="a_b") == ["a_b"] and names(q="%") == [] and names(q="B 1") == ["a-b 100"]
    assert names(method="joint", sort="name") == ["a-b 100", "zeta"]
    assert names(dataset="digits") == ["zeta"] and names(tag="y", sort="name") == ["axb", "zeta"]
    assert names(status="cancelled") == ["axb"]
    page = client.get("/experiments", params={"sort": "name", "limit": 2, "offset": 1}).json()
    assert page["count"] == 4 and [e["name"] for e in page["data"]] == ["a_b", "axb"]
    item = page["data"][0]
    assert "spec" not in item and "traceback_tail" not in item
    assert {"id", "status", "tags", "progress", "summary", "sweep_id", "attempts"} <= set(item)
    for bad in (
        {"sort": "size"},
        {"sort": "--name"},
        {"status": "done"},
        {"limit": 501},
        {"limit": 0},
        {"offset": -1},
        {"q": "a\x00b"},
    ):
        res = client.get("/experiments", params=bad)
        assert res.status_code == 422, (bad, res.text)
        assert res.json()["detail"][0]["loc"].startswith("query.")


# ----------------------------------------------------------------------------- actions


def _finish(settings: Settings, eid: str, status: str, **outcome) -> None:
    """Take the experiment through the worker's transitions (claim, heartbeat, finish)."""
    with session_factory(settings.resolved_database_url())() as session:
        assert crud.claim(session, experiment_id=eid, worker="w1", stale_after_s=60)
        progress = {"stage": 1, "epoch": 2, "step": 30, "fraction": 1.0, "eta": 0.0}
        crud.heartbeat(session, experiment_id=eid, worker="w1", progress=progress)
        assert crud.finish(session, experiment_id=eid, worker="w1", status=status, **outcome)


def test_cancel_retry_delete(
    client: TestClient, settings: Settings, rds: redis.Redis, redis_queue: str
) -> None:
    eid = post(client, SPEC)["id"]
    res = client.post(f"/experiments/{eid}/cancel")
    assert res.status_code == 200 and res.json()["status"] == "cancelled"
    again = client.post(f"/experiments/{eid}/cancel")
    assert again.status_code == 409 and "only queued or running" in again.json()["detail"]
    res = client.post(f"/experiments/{eid}/retry")
    assert res.status_code == 200 and res.json()["status"] == "queued"
    assert [m[1] for m in messages(rds, redis_queue)] == [eid, eid]
    assert client.post(f"/experiments/{eid}/retry").status_code == 409
    res = client.delete(f"/experiments/{eid}")
    assert res.status_code == 409 and "cancel it before deleting" in res.json()["detail"]

    _finish(settings, eid, "failed", error="boom", traceback="T" * 5000 + "end")
    exp = client.get(f"/experiments/{eid}").json()
    assert exp["status"] == "failed" and exp["error"] == "boom" and exp["worker"] == "w1"
    assert len(exp["traceback_tail"]) == 4000 and exp["traceback_tail"].endswith("end")
    assert exp["progress"]["fraction"] == 1.0 and exp["attempts"] == 1

    run_dir = settings.runs_dir() / eid
    (run_dir / "sub").mkdir(parents=True)
    (run_dir / "sub" / "checkpoint.pt").write_bytes(b"x")
    outside = settings.data_dir / "keep"
    outside.mkdir()
    (run_dir / "link").symlink_to(outside)
    assert client.delete(f"/experiments/{eid}").status_code == 204
    assert client.get(f"/experiments/{eid}").status_code == 404
    assert not run_dir.exists() and outside.is_dir()
    assert client.delete(f"/experiments/{eid}").status_code == 404


def test_every_write_moves_updated_at(client: TestClient, settings: Settings) -> None:
    exp = post(client, JOINT)
    stamps = [exp["updated_at"]]
    assert stamps[0] is not None and exp["sweep_values"] is None
    sessions = session_factory(settings.resolved_database_url())

    def now_stamp() -> str:
        time.sleep(0.01)
        return client.get(f"/experiments/{exp['id']}").json()["updated_at"]

    with sessions() as s:
        crud.claim(s, experiment_id=exp["id"], worker="w", stale_after_s=60)
    stamps.append(now_stamp())
    with sessions() as s:
        crud.heartbeat(s, experiment_id=exp["id"], worker="w", progress={"step": 1})
    stamps.append(now_stamp())
    client.post(f"/experiments/{exp['id']}/cancel")
    stamps.append(now_stamp())
    with sessions() as s:
        crud.finish(s, experiment_id=exp["id"], worker="w", status="cancelled")
    stamps.append(now_stamp())
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), stamps


def test_finished_rows_show_their_summary(client: TestClient, settings: Settings) -> None:
    eid = post(client, JOINT)["id"]
    _finish(settings, eid, "succeeded", summary={"test": {"acc": 0.9}})
    item = client.get("/experiments", params={"status": "succeeded"}).json()["data"][0]
    assert item["summary"] == {"test": {"acc": 0.9}} and item["finished_at"] is not None
    assert client.post(f"/experiments/{eid}/cancel").status_code == 409
    assert client.delete(f"/experiments/{eid}").status_code == 204


def test_compare_groups_seeds_and_pairs_methods(client: TestClient, settings: Settings) -> None:
    """GET /compare: the report of `igm compare` from stored specs and summaries."""
    accs = {"igm": [0.80, 0.82, 0.84], "joint": [0.70, 0.73, 0.74]}
    ids = {}
    for method, values in accs.items():
        for seed, acc in enumerate(values):
            exp = post(client, {**SPEC, "name": f"cmp-{method}", "method": {"name": method},
                                "seed": seed}, tags=["cmp"])  # fmt: skip
            test = {"acc": acc, "macro_f1": acc, "map": acc, "modality_acc": {"strong": acc}}
            _finish(settings, exp["id"], "succeeded", summary={"test": test, "run": {}})
            ids.setdefault(method, []).append(exp["id"])
    report = client.get("/compare", params={"tag": "cmp"}).json()
    assert report["matched"] == 6 and report["not_compared"] == []
    groups = {g["method"]: g for g in report["groups"]}
    assert groups["igm"]["n"] == 3 and groups["igm"]["metrics"]["acc"]["mean"] == pytest.approx(
        0.82
    )
    pair = next(p for p in report["pairs"] if p["metric"] == "acc")
    assert (pair["a"], pair["b"]) == ("cmp-joint", "cmp-igm")  # B - baseline (joint)
    diff = [b - a for a, b in zip(accs["joint"], accs["igm"], strict=True)]
    assert pair["diff_pp"] == pytest.approx(100 * sum(diff) / 3) and pair["n"] == 3
    queued = post(client, SPEC)["id"]
    chosen = client.get("/compare", params={"ids": ",".join([*ids["igm"][:2], queued])}).json()
    assert len(chosen["groups"]) == 1 and chosen["groups"][0]["n"] == 2
    assert chosen["not_compared"] == [queued]  # not finished: left out, and said so
    assert client.get("/compare").status_code == 422
    assert client.get("/compare", params={"tag": "cmp", "metric": "f2"}).status_code == 422


# ----------------------------------------------------------------------------- sweeps


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


def test_submit_applies_set_overrides(client: TestClient) -> None:
    exp = post(client, SPEC, set=["method.params.tau=0.25", "model.head_hidden=[32, 16]"])
    assert exp["spec"]["method"]["params"]["tau"] == 0.25
    assert exp["spec"]["model"]["head_hidden"] == [32, 16]
    res = client.post("/experiments", json=SPEC, params={"set": ["method.params.tau=-1"]})
    assert res.status_code == 422 and res.json()["detail"][0]["loc"] == "method.params.tau"
    res = client.post("/experiments", json=SPEC, params={"set": ["novalue"]})
    assert res.status_code == 422 and "expected key=value" in res.json()["detail"][0]["msg"]


# ----------------------------------------------------------------------------- the service


def test_broker_down_keeps_the_row_queued(tmp_path: Path, db_url: str) -> None:
    settings = make_settings(tmp_path, database_url=db_url, broker_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(settings)) as c:
        res = c.post("/experiments", json=SPEC)
        assert res.status_code == 201, res.text
        exp = res.json()
        assert exp["status"] == "queued" and "not enqueued" in exp["warning"]
        assert c.get(f"/experiments/{exp['id']}").json()["status"] == "queued"
        health = c.get("/health")
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "degraded" and body["database"]["ok"]
        assert not body["broker"]["ok"] and "127.0.0.1:1" in body["broker"]["detail"]


def test_health_ok_on_real_components(client: TestClient) -> None:
    res = client.get("/health")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["status"] == "ok"
    assert all(body[part]["ok"] for part in ("database", "broker", "mlflow"))


def test_start_up_refuses_a_database_without_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    app = create_app(make_settings(tmp_path, database_url=url))
    with pytest.raises(SchemaError, match="igm db upgrade"), TestClient(app):
        pass
    with TestClient(create_app(make_settings(tmp_path, database_url=url), check_schema=False)) as c:
        assert c.get("/methods").status_code == 200
        health = c.get("/health")
        assert health.status_code == 503 and "igm db upgrade" in health.json()["database"]["detail"]


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[TestClient]:
    from tests.service.conftest import sqlite_url

    roots = [tmp_path / "datasets", tmp_path / "more"]
    settings = make_settings(tmp_path, database_url=sqlite_url(tmp_path), data_roots=roots)
    with TestClient(create_app(settings)) as c:
        yield c


def _features(root: Path) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for split in ("train", "val", "test"):
        np.savez(
            root / f"{split}.npz",
            label=rng.integers(0, 2, 20),
            audio=rng.normal(size=(20, 4)).astype(np.float32),
        )
    return root


def test_features_roots_must_lie_under_the_data_roots(
    sqlite_client: TestClient, tmp_path: Path
) -> None:
    inside = _features(tmp_path / "datasets" / "ok")
    outside = _features(tmp_path / "elsewhere")
    (tmp_path / "datasets" / "escape").symlink_to(outside)

    def submit(root: str):
        spec = {**JOINT, "dataset": {"name": "features", "params": {"root": root}}}
        return sqlite_client.post("/experiments", json=spec)

    res = submit(str(inside))
    assert res.status_code == 201, res.text
    assert res.json()["spec"]["dataset"]["params"]["root"] == str(inside.resolve())
    for root in (
        str(outside),
        str(tmp_path / "datasets" / "escape"),
        str(tmp_path / "datasets" / ".." / "elsewhere"),
        "/etc",
        "relative/path",
    ):
        res = submit(root)
        assert res.status_code == 422, (root, res.text)
        (err,) = res.json()["detail"]
        assert err["loc"] == "dataset.params.root" and "outside the allowed" in err["msg"]


def test_registry_routes_openapi_and_docs(sqlite_client: TestClient) -> None:
    methods = {m["name"]: m for m in sqlite_client.get("/methods").json()}
    assert set(methods) == set(catalog.METHODS.names())
    assert (
        methods["igm"]["kind"] == "alternating" and "tau" in methods["igm"]["params"]["properties"]
    )
    datasets = {d["name"]: d for d in sqlite_client.get("/datasets").json()}
    assert set(datasets) == set(catalog.DATASETS.names()) and datasets["digits"]["description"]
    encoders = {e["name"] for e in sqlite_client.get("/encoders").json()}
    assert encoders == set(catalog.ENCODERS.names())
    paths = sqlite_client.get("/openapi.json").json()["paths"]
    assert {
        "/experiments",
        "/experiments/sweep",
        "/experiments/{experiment_id}",
        "/experiments/{experiment_id}/cancel",
        "/experiments/{experiment_id}/retry",
        "/experiments/{experiment_id}/metrics",
        "/experiments/{experiment_id}/artifacts",
        "/experiments/{experiment_id}/artifacts/{path}",
        "/methods",
        "/datasets",
        "/encoders",
        "/health",
    } <= set(paths)
    assert "application/yaml" in paths["/experiments"]["post"]["requestBody"]["content"]
    assert sqlite_client.get("/docs").status_code == 200


def test_the_web_app_never_imports_torch() -> None:
    code = (
        "import sys, server.main; server.main.create_app; "
        "from server.routes import experiments, health, registry; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
