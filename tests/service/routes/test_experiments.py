"""server/routes/experiments.py against real components: submit (JSON and YAML, every problem
at once, nothing written on a refusal), read, list (filters, sorts, pages), cancel, retry,
delete, and the updated_at every write moves."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis
from fastapi.testclient import TestClient

from server import crud
from server.db import session_factory
from server.main import create_app
from server.settings import Settings
from tests.factories import features_root
from tests.service.conftest import make_settings, messages
from tests.service.routes.conftest import JOINT, SPEC, finish, post, row_count

SEP = "\x06\x16"  # kombu's separator before a priority step


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


def test_submit_applies_set_overrides(client: TestClient) -> None:
    exp = post(client, SPEC, set=["method.params.tau=0.25", "model.head_hidden=[32, 16]"])
    assert exp["spec"]["method"]["params"]["tau"] == 0.25
    assert exp["spec"]["model"]["head_hidden"] == [32, 16]
    res = client.post("/experiments", json=SPEC, params={"set": ["method.params.tau=-1"]})
    assert res.status_code == 422 and res.json()["detail"][0]["loc"] == "method.params.tau"
    res = client.post("/experiments", json=SPEC, params={"set": ["novalue"]})
    assert res.status_code == 422 and "expected key=value" in res.json()["detail"][0]["msg"]


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


def test_features_roots_must_lie_under_the_data_roots(
    sqlite_client: TestClient, tmp_path: Path
) -> None:
    inside = features_root(tmp_path / "datasets" / "ok")
    outside = features_root(tmp_path / "elsewhere")
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

    finish(settings, eid, "failed", error="boom", traceback="T" * 5000 + "end")
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
    finish(settings, eid, "succeeded", summary={"test": {"acc": 0.9}})
    item = client.get("/experiments", params={"status": "succeeded"}).json()["data"][0]
    assert item["summary"] == {"test": {"acc": 0.9}} and item["finished_at"] is not None
    assert client.post(f"/experiments/{eid}/cancel").status_code == 409
    assert client.delete(f"/experiments/{eid}").status_code == 204
