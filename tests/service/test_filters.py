"""The experiment filters through the routes (server.filters): GET /experiments, the changes
feed and the page at `/` take the same filters, refuse the same bad ones with the same messages,
and resolve a sweep prefix the same way, so a page's feed counts what its list counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from tests.service.conftest import make_settings

SPEC = {"name": "flt", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}
ROUTES = ("/experiments", "/experiments/changes")


@pytest.fixture
def client(tmp_path: Path, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path, database_url=db_url))) as c:
        yield c


def test_list_and_feed_count_the_same_experiments(client: TestClient) -> None:
    grid = {"seed": [0, 1]}
    sweep = client.post("/experiments/sweep", json={"base": SPEC, "grid": grid}).json()
    client.post("/experiments", json={**SPEC, "name": "other"}, params={"tags": "t"})
    sweep_id = sweep["sweep_id"]
    for filters, count in (
        ({"sweep": sweep_id[:6]}, 2),
        ({"sweep": sweep_id}, 2),
        ({"sweep": "fedcba98"}, 0),
        ({"tag": "t", "status": "queued"}, 1),
        ({"q": "other", "method": "igm", "dataset": "synthetic"}, 1),
        ({"status": "failed"}, 0),
    ):
        for route in ROUTES:
            assert client.get(route, params=filters).json()["count"] == count, (route, filters)
    since = client.get("/experiments/changes").json()["cursor"]
    first = sweep["data"][0]["id"]
    client.post(f"/experiments/{first}/cancel")
    feed = client.get("/experiments/changes", params={"since": since, "sweep": sweep_id[:8]})
    changed = {e["id"]: e["status"] for e in feed.json()["data"]}  # a few seconds of overlap
    assert changed[first] == "cancelled" and set(changed) <= {e["id"] for e in sweep["data"]}


@pytest.mark.parametrize(
    ("params", "loc", "msg"),
    [
        ({"status": "done"}, "query.status", "unknown status 'done'; choose one of: queued, "),
        ({"method": "m" * 65}, "query.method", "String should have at most 64 characters"),
        ({"q": "a\x00b"}, "query.q", "must not contain NUL characters"),
        ({"sweep": "\x00"}, "query.sweep", "must not contain NUL characters"),
    ],
)
def test_the_same_bad_filter_gets_the_same_answer(
    client: TestClient, params: dict, loc: str, msg: str
) -> None:
    for route in (*ROUTES, "/"):
        res = client.get(route, params=params)
        assert res.status_code == 422, (route, res.text)
        (detail,) = res.json()["detail"]
        assert detail["loc"] == loc and detail["msg"].startswith(msg), (route, detail)
