"""The hot reads' JSON (server.fastjson, from selected columns) equals the pydantic models' JSON.

Same rows, both paths through the real app on SQLite and PostgreSQL: the fast one as served, the
model one by making fastjson.dumps decline (the route's own fallback). Times are compared as the
strings each path writes, so a format difference ("Z" against "+00:00") fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from igm_core.spec import resolve_spec
from server import crud, fastjson
from server.db import session_factory
from server.main import create_app
from server.models import Experiment
from tests.service.conftest import make_settings

SPEC = {"name": "fast", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}


@pytest.fixture
def client(tmp_path: Path, db_url: str) -> Iterator[tuple[TestClient, list[str]]]:
    settings = make_settings(tmp_path, database_url=db_url)
    # PostgreSQL's json type refuses NaN and Infinity; SQLite stores them (read back as floats)
    nan, inf = (float("nan"), float("inf")) if db_url.startswith("sqlite") else (None, None)
    with session_factory(db_url)() as s:
        spec = resolve_spec(SPEC)
        a = crud.create_experiment(
            s, spec=spec, tags=["zeta", "alpha", "m:1"], queue="cpu", max_attempts=3
        )
        b = crud.create_experiment(s, spec=spec, queue="cpu", max_attempts=3)  # a twin, no tags
        _, swept = crud.create_sweep(
            s,
            name="sw",
            base_spec=SPEC,
            grid={"seed": [1, 2]},
            specs=[resolve_spec({**SPEC, "name": "point", "seed": i}) for i in (1, 2)],
            tags=["grid"],
            queue="gpu",
            max_attempts=2,
            values=[{"seed": 1}, {"seed": 2}],
        )
        assert crud.claim(s, experiment_id=a.id, worker="w1", stale_after_s=60)
        progress = {"stage": 2, "fraction": 0.1 + 0.2, "eta_s": 1e-7, "val_acc": nan}
        crud.heartbeat(s, experiment_id=a.id, worker="w1", progress=progress)
        crud.finish(
            s,
            experiment_id=a.id,
            worker="w1",
            status="failed",
            summary={"test/acc": 0.8105, "big": 2**53 + 1, "inf": inf, "l": [1, 2.5]},
            error="boom: ünï ✓",
            traceback="x" * 5000 + "end",
        )
        crud.set_mlflow_run(s, experiment_id=a.id, run_id="r" * 32)
        crud.request_cancel(s, experiment_id=b.id)
        # microseconds of zero are written without a fraction by both paths
        s.execute(
            update(Experiment)
            .where(Experiment.id == swept[0].id)
            .values(created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
        )
        s.commit()
        ids = [a.id, b.id, *(e.id for e in swept)]
    with TestClient(create_app(settings)) as c:
        yield c, ids


def both(client: TestClient, monkeypatch: pytest.MonkeyPatch, url: str) -> tuple[dict, dict]:
    fast = client.get(url)
    with monkeypatch.context() as m:
        m.setattr(fastjson, "dumps", lambda _value: None)
        slow = client.get(url)
    assert fast.status_code == slow.status_code == 200, (fast.text, slow.text)
    assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
    return fast.json(), slow.json()


def test_list_pages_equal_the_models_json(client, monkeypatch: pytest.MonkeyPatch) -> None:
    c, ids = client
    for query in ("", "?sort=name", "?tag=grid", "?status=failed", "?limit=2&offset=1", "?q=oin"):
        fast, slow = both(c, monkeypatch, f"/experiments{query}")
        assert fast == slow, query
    fast, _ = both(c, monkeypatch, "/experiments")
    assert fast["count"] == 4 and len(fast["data"]) == 4
    first = next(d for d in fast["data"] if d["id"] == ids[0])
    assert first["tags"] == ["alpha", "m:1", "zeta"]
    assert first["progress"]["val_acc"] is None and first["progress"]["eta_s"] == 1e-7
    assert first["created_at"].endswith("Z")


def test_one_experiment_equals_the_models_json(client, monkeypatch: pytest.MonkeyPatch) -> None:
    c, ids = client
    for eid in (*ids, ids[0][:8]):
        fast, slow = both(c, monkeypatch, f"/experiments/{eid}")
        assert fast == slow, eid
    fast, _ = both(c, monkeypatch, f"/experiments/{ids[0]}")
    assert fast["twins"] == [ids[1]] and fast["traceback_tail"].endswith("end")
    assert len(fast["traceback_tail"]) == 4000 and fast["summary"]["big"] == 2**53 + 1


def test_missing_ids_and_values_orjson_cannot_write(client) -> None:
    c, ids = client
    assert c.get("/experiments/" + "0" * 32).json() == {
        "detail": f"experiment {'0' * 32} not found"
    }
    assert c.get("/experiments/abc").status_code == 404
    assert fastjson.dumps({"n": 2**64}) is None  # beyond 64 bits: the route takes the model path
    with session_factory(str(c.app.state.settings.resolved_database_url()))() as s:
        s.execute(update(Experiment).where(Experiment.id == ids[1]).values(summary={"n": 2**64}))
        s.commit()
    assert c.get(f"/experiments/{ids[1]}").json()["summary"] == {"n": 2**64}
    assert c.get("/experiments?status=cancelled").json()["data"][0]["summary"] == {"n": 2**64}
