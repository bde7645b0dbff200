"""server/routes/compare.py: the report of `igm compare` from stored specs and summaries."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.settings import Settings
from tests.service.routes.conftest import SPEC, finish, post


def test_compare_groups_seeds_and_pairs_methods(client: TestClient, settings: Settings) -> None:
    """GET /compare: the report of `igm compare` from stored specs and summaries."""
    accs = {"igm": [0.80, 0.82, 0.84], "joint": [0.70, 0.73, 0.74]}
    ids = {}
    for method, values in accs.items():
        for seed, acc in enumerate(values):
            exp = post(client, {**SPEC, "name": f"cmp-{method}", "method": {"name": method},
                                "seed": seed}, tags=["cmp"])  # fmt: skip
            test = {"acc": acc, "macro_f1": acc, "map": acc, "modality_acc": {"strong": acc}}
            finish(settings, exp["id"], "succeeded", summary={"test": test, "run": {}})
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
