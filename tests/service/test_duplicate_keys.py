"""A key given twice in a request body is refused with a 422 that names it, on both databases:
JSON and YAML specs (POST /experiments), sweep bodies (base, grid, random), `set` overrides;
nothing is written. The parser would otherwise keep the last value without a word."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from tests.service.conftest import make_settings

SPEC = '{"name": "tiny", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}'
YAML = "name: tiny\ndataset: {name: synthetic}\nmethod:\n  name: igm\n"
JSON_TYPE = {"Content-Type": "application/json"}
ONCE = "each key may appear only once in a mapping"


@pytest.fixture
def client(tmp_path: Path, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path, database_url=db_url))) as c:
        yield c


def refused(res, loc: str, key: str) -> str:
    assert res.status_code == 422, res.text
    (err,) = res.json()["detail"]
    assert err["loc"] == loc and err["msg"].startswith(f"duplicate key {key!r}"), err
    assert ONCE in err["msg"]
    return err["msg"]


def test_json_specs(client: TestClient) -> None:
    twice = SPEC + ', "optimizer": {"lr": 0.1, "name": "sgd", "lr": 0.01}}'
    refused(
        client.post("/experiments", content=twice, headers=JSON_TYPE), "body.optimizer.lr", "lr"
    )
    top = SPEC + ', "seed": 1, "seed": 2}'
    refused(client.post("/experiments", content=top, headers=JSON_TYPE), "body.seed", "seed")
    vendor = {"Content-Type": "application/vnd.igm+json"}
    refused(client.post("/experiments", content=top, headers=vendor), "body.seed", "seed")
    assert client.get("/experiments").json()["count"] == 0
    res = client.post("/experiments", content=SPEC + ', "seed": 1}', headers=JSON_TYPE)
    assert res.status_code == 201, res.text


def test_yaml_specs(client: TestClient) -> None:
    yaml_type = {"Content-Type": "application/yaml"}
    res = client.post("/experiments", content=YAML + "  name: joint\n", headers=yaml_type)
    assert "(line 5)" in refused(res, "body.method.name", "name")
    res = client.post("/experiments", content=YAML + "seed: 1\nseed: 2\n", headers=yaml_type)
    assert "(line 6)" in refused(res, "body.seed", "seed")
    assert client.get("/experiments").json()["count"] == 0
    assert client.post("/experiments", content=YAML, headers=yaml_type).status_code == 201


def test_set_overrides(client: TestClient) -> None:
    res = client.post(
        "/experiments",
        content=SPEC + "}",
        headers=JSON_TYPE,
        params={"set": "optimizer={lr: 1, lr: 2}"},
    )
    assert res.status_code == 422, res.text
    (err,) = res.json()["detail"]
    assert err["loc"] == "optimizer" and "duplicate key 'lr'" in err["msg"]


@pytest.mark.parametrize("path", ["/experiments/sweep", "/experiments/sweep/preview"])
def test_sweep_bodies(client: TestClient, path: str) -> None:
    base = '{"base": ' + SPEC + "}"
    cases = [
        (base + ', "grid": {"seed": [1, 2], "seed": [3]}}', "body.grid.seed", "seed"),
        (
            base + ', "random": {"samples": 2, "params": {"optimizer.lr": {"uniform": [0, 1]},'
            ' "optimizer.lr": {"choice": [1]}}}}',
            "body.random.params.optimizer.lr",
            "optimizer.lr",
        ),
        (
            base + ', "random": {"samples": 2, "samples": 3, "params": {"seed": {"choice": [1]}}}}',
            "body.random.samples",
            "samples",
        ),
        ('{"base": ' + SPEC + ', "seed": 1, "seed": 2}, "grid": {}}', "body.base.seed", "seed"),
        (base + ', "tags": ["a"], "tags": ["b"]}', "body.tags", "tags"),
    ]
    for body, loc, key in cases:
        refused(client.post(path, content=body, headers=JSON_TYPE), loc, key)
    assert client.get("/experiments").json()["count"] == 0
    res = client.post(path, content=base + ', "grid": {"seed": [1, 2]}}', headers=JSON_TYPE)
    assert res.status_code in (200, 201), res.text
