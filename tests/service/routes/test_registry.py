"""server/routes/registry.py: the catalog's methods, datasets and encoders, and the OpenAPI
schema that lists every route."""

from __future__ import annotations

from fastapi.testclient import TestClient

from igm_core import catalog


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
