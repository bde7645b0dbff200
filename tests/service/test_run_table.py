"""The run table's API (server.keys through GET /experiments and the changes feed), on SQLite and
PostgreSQL: any spec value or result metric as a column, a sort by one, conditions on them
(numbers compared as numbers), and bad keys, operators and values refused with a 422 that names
them. Every answer is checked against the same computation done in Python on the stored rows."""

from __future__ import annotations

import operator
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from igm_core.spec import resolve_spec
from server import crud
from server.db import session_factory
from server.main import create_app
from tests.service.conftest import dotted, make_settings

N = 24
OPS = {"=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
       ">": operator.gt, ">=": operator.ge}  # fmt: skip


def _spec(i: int, rng: random.Random) -> dict[str, Any]:
    method = {"name": "igm", "params": {"tau": rng.choice([0.2, 0.4, 0.8])}}
    if i % 4 == 0:
        method = {"name": "joint"}
    return {
        "name": f"row-{i:02d}",
        "dataset": {"name": "synthetic"},
        "method": method,
        "optimizer": {"lr": rng.choice([0.1, 0.03, 0.01, 0.003, 0.001])},
        "seed": i % 5,
        "model": {"shared_head": i % 3 == 0},
    }


def _summary(i: int, rng: random.Random) -> dict[str, Any] | None:
    if i % 6 == 5:
        return None  # failed, no metrics
    acc = round(rng.uniform(0.4, 0.95), 4)
    test = {"acc": acc, "macro_f1": acc - 0.02, "modality_acc": {"strong": acc, "weak": acc / 2}}
    if i == 7:
        test["acc"] = "0.99"  # a string that looks like a number is not a number
    return {"test": test, "val": {"macro_f1": acc - 0.05}, "run": {"wall_time_s": 10 * i}}


@pytest.fixture
def lab(tmp_path: Path, db_url: str) -> Iterator[tuple[TestClient, dict[str, dict]]]:
    """N experiments with random specs and results (the same for both databases), some failed,
    one queued; and each one's stored spec and summary by id (the oracle reads these)."""
    rng = random.Random(17)
    stored = {}
    with session_factory(db_url)() as s:
        for i in range(N):
            exp = crud.create_experiment(
                s, spec=resolve_spec(_spec(i, rng)), queue="cpu", max_attempts=3
            )
            summary = _summary(i, rng)
            if i != N - 1:  # the last one stays queued
                crud.claim(s, experiment_id=exp.id, worker="w", stale_after_s=60)
                failed = summary is None
                crud.finish(
                    s,
                    experiment_id=exp.id,
                    worker="w",
                    status="failed" if failed else "succeeded",
                    summary=summary,
                    error="\n\nRuntimeError: CUDA out of memory\n  at step 12" if failed else None,
                )
            stored[exp.id] = {"spec": exp.spec, "summary": summary if i != N - 1 else None}
    with TestClient(create_app(make_settings(tmp_path, database_url=db_url))) as c:
        yield c, stored


def at(row: dict[str, dict], key: str) -> Any:
    """The value at a dotted key, walked in Python (None where there is none)."""
    in_summary = key.split(".")[0] in ("test", "val", "best", "run")
    return dotted(row["summary"] if in_summary else row["spec"], key)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def listed(c: TestClient, **params: Any) -> dict:
    res = c.get("/experiments", params={"limit": 500, **params})
    assert res.status_code == 200, res.text
    return res.json()


def test_columns_hold_the_values_at_their_keys(lab) -> None:
    c, stored = lab
    keys = ["test.acc", "optimizer.lr", "method.params.tau", "model.shared_head",
            "test.modality_acc.weak", "model.head_hidden.0", "dataset",
            "run.wall_time_s"]  # fmt: skip
    page = listed(c, columns=[",".join(keys[:3]), *keys[3:], "test.acc"])
    assert page["columns"] == keys and page["count"] == N  # in order, without the repeat
    for item in page["data"]:
        assert list(item["values"]) == keys
        assert item["values"] == {k: at(stored[item["id"]], k) for k in keys}
    bools = {item["values"]["model.shared_head"] for item in page["data"]}
    assert bools == {True, False}  # booleans stay booleans (SQLite stores them as 1 and 0)
    failed = [d for d in page["data"] if d["status"] == "failed"]
    assert failed and {d["error_excerpt"] for d in failed} == {"RuntimeError: CUDA out of memory"}
    assert all(d["error_excerpt"] is None for d in page["data"] if d["status"] != "failed")
    assert listed(c)["columns"] == [] and listed(c)["data"][0]["values"] == {}


@pytest.mark.parametrize(
    "key", ["test.acc", "optimizer.lr", "seed", "test.modality_acc.weak", "method.name"]
)
def test_sorted_by_a_key_numbers_first_missing_last(lab, key: str) -> None:
    c, stored = lab
    for descending in (False, True):
        sort = f"-{key}" if descending else key
        page = listed(c, columns=key, sort=sort)
        got = [d["values"][key] for d in page["data"]]
        numbers = [v for v in got if is_number(v)]
        texts = [v for v in got if isinstance(v, str)]
        assert numbers == sorted(numbers, reverse=descending)
        assert texts == sorted(texts, reverse=descending)
        kinds = [0 if is_number(v) else 1 if isinstance(v, str) else 2 for v in got]
        assert kinds == sorted(kinds), "numbers, then text, then experiments without a value"
        assert sorted(got, key=repr) == sorted((at(r, key) for r in stored.values()), key=repr)
        halves = listed(c, sort=sort, limit=10)["data"] + listed(c, sort=sort, offset=10)["data"]
        assert [d["id"] for d in halves] == [d["id"] for d in page["data"]]  # pages agree


@pytest.mark.parametrize(
    "conditions",
    [
        ["optimizer.lr<0.01"],
        ["test.acc>=0.8"],
        ["test.acc>0.5", "optimizer.lr<=0.03"],
        ["method.params.tau=0.4"],
        ["seed!=1", "test.modality_acc.weak<0.4"],
        ["test.acc<1e3"],  # the string "0.99" is no number: never matched
        ["val.macro_f1>-1"],
        ["run.wall_time_s>=100"],
    ],
)
def test_numeric_conditions_on_json_values(lab, conditions: list[str]) -> None:
    c, stored = lab

    def matches(row: dict) -> bool:
        for cond in conditions:
            key, op, value = re.fullmatch(r"([\w.]+)(<=|>=|!=|<|>|=)(.+)", cond).groups()
            v = at(row, key)
            if not (is_number(v) and OPS[op](v, float(value))):
                return False
        return True

    expected = {i for i, row in stored.items() if matches(row)}
    assert expected and expected != set(stored), "the case must split the rows"
    page = listed(c, match=conditions)
    assert {d["id"] for d in page["data"]} == expected and page["count"] == len(expected)
    feed = c.get("/experiments/changes", params={"match": conditions}).json()
    assert feed["count"] == len(expected)  # the feed counts what the list counts
    for offset, limit in ((0, 1), (1, 2), (len(expected), 5), (1000, 5)):  # pages count all
        page = listed(c, match=conditions, sort="-test.acc", offset=offset, limit=limit)
        assert page["count"] == len(expected), (offset, limit)
        assert len(page["data"]) == max(0, min(limit, len(expected) - offset))


def test_text_conditions(lab) -> None:
    c, stored = lab
    cases = {
        "method.name=joint": lambda r: at(r, "method.name") == "joint",
        "method.name!=joint": lambda r: at(r, "method.name") != "joint",
        "model.shared_head=true": lambda r: at(r, "model.shared_head") is True,
        'test.acc="0.99"': lambda r: at(r, "test.acc") == "0.99",  # quoted: text
        'seed="1"': lambda r: False,  # the seed is a number, not the text "1"
        "dataset.name=synthetic": lambda r: True,
    }
    for cond, wanted in cases.items():
        expected = {i for i, r in stored.items() if wanted(r)}
        assert {d["id"] for d in listed(c, match=cond)["data"]} == expected, cond


@pytest.mark.parametrize(
    ("params", "loc", "msg"),
    [
        ({"match": "optimizer.lr~0.1"}, "query.match.0", "unknown operator '~' in 'optimizer.lr~0"),
        ({"match": ["seed>1", "lr<0.1"]}, "query.match.1", "bad key 'lr': a key starts with a "),
        ({"match": "test.acc<high"}, "query.match.0", "'<' compares numbers: 'high' in 'test.acc"),
        ({"match": "test.acc'--<1"}, "query.match.0", 'bad key "test.acc\'--": write parts of'),
        ({"match": "test.acc"}, "query.match.0", "bad condition 'test.acc': write KEY OP VALUE"),
        ({"columns": "test.acc,$.x"}, "query.columns", "bad key '$.x': write parts of letters"),
        ({"columns": "a.b.c.d.e.f.g.h.i"}, "query.columns", "bad key 'a.b.c.d.e.f.g.h.i': write"),
        ({"columns": "test." + "x" * 300}, "query.columns", "bad key 'test.xxxxxxxxx"),
        ({"columns": ",".join(f"test.k{i}" for i in range(21))}, "query.columns", "at most 20 "),
        ({"columns": "spec.seed"}, "query.columns", "bad key 'spec.seed': a key starts with a "),
    ],
)
def test_bad_keys_and_operators_are_refused_by_name(lab, params: dict, loc: str, msg: str) -> None:
    c, _ = lab
    for route in ("/experiments", "/experiments/changes", "/ui/table"):
        res = c.get(route, params=params)
        assert res.status_code == 422, (route, res.text)
        (detail,) = res.json()["detail"]
        assert detail["loc"] == loc and detail["msg"].startswith(msg), (route, detail)


def test_bad_sort_keys_are_refused_by_name(lab) -> None:
    c, _ = lab
    for route in ("/experiments", "/ui/table"):
        res = c.get(route, params={"sort": "-tset.acc"})
        assert res.status_code == 422
        (detail,) = res.json()["detail"]
        assert detail["loc"] == "query.sort"
        assert detail["msg"].startswith("unknown sort '-tset.acc'; choose one of: created_at, ")
        assert "bad key 'tset.acc'" in detail["msg"]
    assert c.get("/", params={"match": "x<1"}).status_code == 422  # the list page's filters too


def test_the_table_page_renders_its_query(lab) -> None:
    c, _ = lab
    res = c.get(
        "/ui/table",
        params={"columns": "test.acc,optimizer.lr", "match": ["test.acc>0.5"], "sort": "-test.acc"},
    )
    assert res.status_code == 200
    html = res.text
    assert 'data-columns="test.acc optimizer.lr"' in html and 'data-sort="-test.acc"' in html
    assert 'name="match" value="test.acc&gt;0.5"' in html
    assert 'data-filters="status method dataset tag q sweep match"' in html
    twin = "/experiments?match=test.acc%3E0.5&amp;columns=test.acc%2Coptimizer.lr"
    assert twin + "&amp;sort=-test.acc" in html
    assert 'data-columns="test.acc test.macro_f1 optimizer.lr seed"' in c.get("/ui/table").text
    assert 'data-columns=""' in c.get("/ui/table?columns=").text  # columns= : none chosen
