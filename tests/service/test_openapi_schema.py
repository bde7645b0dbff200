"""The API's contract: the OpenAPI schema the app serves equals the recorded one
(tests/service/openapi.json). A change to the REST API is deliberate: rewrite the file with
`python -m pytest tests/service/test_openapi_schema.py --update-openapi` and review its diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.main import create_app
from tests.service.conftest import make_settings

RECORDED = Path(__file__).with_name("openapi.json")


def _schema(tmp_path: Path) -> dict:
    app = create_app(make_settings(tmp_path), check_schema=False)
    return json.loads(json.dumps(app.openapi()))


def test_openapi_schema_is_the_recorded_one(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    schema = _schema(tmp_path)
    if request.config.getoption("--update-openapi"):
        RECORDED.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    recorded = json.loads(RECORDED.read_text())
    changed = sorted(
        set(recorded["paths"]) ^ set(schema["paths"])
        | {p for p in recorded["paths"] if recorded["paths"][p] != schema["paths"].get(p)}
    )
    assert not changed, f"the REST API changed at: {', '.join(changed)}"
    assert schema == recorded, "the OpenAPI components changed (see the diff)"
