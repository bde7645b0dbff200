"""The experiments' JSON (server.fastjson, from selected columns: the API's one read path)
equals the JSON of the public models it declares.

The app serves the rows on SQLite and PostgreSQL; the test builds each model from the ORM object
of the same experiment, field by field, and compares. Times are compared as
the strings each writes, so a format difference ("Z" against "+00:00") fails the test.
"""

from __future__ import annotations

import json
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
from server.schemas import (
    TRACEBACK_TAIL,
    ExperimentPublic,
    ExperimentRowPublic,
    error_excerpt,
)
from tests.service.conftest import dotted, make_settings

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


def walk(exp: Experiment, key: str) -> object:
    """The value at a dotted key of the experiment's spec (or summary, for test.*), in Python."""
    return dotted(exp.summary if key.startswith("test.") else exp.spec, key)


def model(exp: Experiment, detail: bool, session, columns: list[str] = ()) -> dict:
    """The public model of an ORM experiment, built field by field, as its JSON: a list item
    with the values of `columns`, or the experiment in full."""
    cls = ExperimentPublic if detail else ExperimentRowPublic
    fields = {name: getattr(exp, name) for name in cls.model_fields if hasattr(exp, name)}
    fields["tags"] = sorted(exp.tag_names)
    fields["error_excerpt"] = error_excerpt(exp.error)
    if not detail:
        fields["values"] = {key: walk(exp, key) for key in columns}
    if detail:
        fields["twins"] = crud.twins(session, spec_hash=exp.spec_hash, exclude_id=exp.id)
        fields["traceback_tail"] = exp.traceback[-TRACEBACK_TAIL:] if exp.traceback else None
    return json.loads(cls.model_validate(fields).model_dump_json())


def models(client: TestClient, body: dict, detail: bool = False) -> list[dict]:
    """The public models' JSON of the experiments in an answer (its "data", or itself)."""
    url = str(client.app.state.settings.resolved_database_url())
    columns = body.get("columns", [])
    with session_factory(url)() as s:
        items = body.get("data", [body])
        return [model(s.get(Experiment, item["id"]), detail, s, columns) for item in items]


def served(client: TestClient, url: str) -> dict:
    res = client.get(url)
    assert res.status_code == 200 and res.headers["content-type"] == "application/json", res.text
    return res.json()


def test_list_pages_equal_the_models_json(client) -> None:
    c, ids = client
    for query in ("", "?sort=name", "?tag=grid", "?status=failed", "?limit=2&offset=1", "?q=oin"):
        page = served(c, f"/experiments{query}")
        assert page["data"] == models(c, page), query
    keys = "seed,optimizer.lr,model.head_hidden.1,model.head_hidden.7,dataset,compile,test.acc"
    page = served(c, f"/experiments?columns={keys},model.shared_head&sort=-seed")
    assert page["columns"] == [*keys.split(","), "model.shared_head"]
    assert page["data"] == models(c, page)
    assert {d["values"]["model.shared_head"] for d in page["data"]} == {False}
    assert page["data"][0]["values"]["seed"] == 2
    page = served(c, "/experiments")
    assert page["count"] == 4 and len(page["data"]) == 4
    first = next(d for d in page["data"] if d["id"] == ids[0])
    assert first["tags"] == ["alpha", "m:1", "zeta"]
    assert first["progress"]["val_acc"] is None and first["progress"]["eta_s"] == 1e-7
    assert first["created_at"].endswith("Z") and first["error_excerpt"] == "boom: ünï ✓"
    feed = served(c, "/experiments/changes?since=2000-01-01T00:00:00")
    assert feed["count"] == 4 and feed["data"] == models(c, feed)
    feed = served(c, "/experiments/changes?since=2000-01-01T00:00:00&columns=seed,dataset.name")
    assert feed["data"] == models(c, {**feed, "columns": ["seed", "dataset.name"]})
    assert {d["values"]["dataset.name"] for d in feed["data"]} == {"synthetic"}


def test_one_experiment_equals_the_models_json(client) -> None:
    c, ids = client
    for eid in (*ids, ids[0][:8]):
        exp = served(c, f"/experiments/{eid}")
        assert [exp] == models(c, exp, detail=True), eid
    exp = served(c, f"/experiments/{ids[0]}")
    assert exp["twins"] == [ids[1]] and exp["traceback_tail"].endswith("end")
    assert len(exp["traceback_tail"]) == 4000 and exp["summary"]["big"] == 2**53 + 1
    swept = c.post("/experiments/sweep", json={"base": SPEC, "grid": {"seed": [5, 6]}}).json()
    assert swept["data"] == models(c, swept, detail=True) and len(swept["data"]) == 2
    page = c.get(f"/ui/experiments/{ids[0][:8]}").text  # the page reads the same row
    assert f"<code>{ids[0]}</code>" in page and '<span class="tag">m:1</span>' in page


def test_integers_beyond_64_bits_are_written_exactly(client) -> None:
    c, ids = client
    assert c.get("/experiments/" + "0" * 32).json() == {
        "detail": f"experiment {'0' * 32} not found"
    }
    assert c.get("/experiments/abc").status_code == 404
    huge = {"n": 2**64, "low": -(2**63) - 1, "in": [1, 2**70, {"k": 3**50}], "edge": 2**64 - 1}
    assert fastjson.dumps(huge) == (
        b'{"n":18446744073709551616,"low":-9223372036854775809,'
        b'"in":[1,1180591620717411303424,{"k":717897987691852588770249}],'
        b'"edge":18446744073709551615}'
    )
    with session_factory(str(c.app.state.settings.resolved_database_url()))() as s:
        s.execute(update(Experiment).where(Experiment.id == ids[1]).values(summary=huge))
        s.commit()
    assert c.get(f"/experiments/{ids[1]}").json()["summary"] == huge
    assert c.get("/experiments?status=cancelled").json()["data"][0]["summary"] == huge
    feed = c.get("/experiments/changes?status=cancelled&since=2000-01-01T00:00:00").json()
    assert feed["data"][0]["summary"] == huge
    assert c.post(f"/experiments/{ids[1]}/retry").json()["summary"] == huge
