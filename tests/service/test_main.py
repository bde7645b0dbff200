"""server/main.py: the app refuses a database without the schema, and never imports torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from server.migrations import SchemaError
from tests.service.conftest import make_settings

ROOT = Path(__file__).resolve().parents[2]


def test_start_up_refuses_a_database_without_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    app = create_app(make_settings(tmp_path, database_url=url))
    with pytest.raises(SchemaError, match="igm db upgrade"), TestClient(app):
        pass
    with TestClient(create_app(make_settings(tmp_path, database_url=url), check_schema=False)) as c:
        assert c.get("/methods").status_code == 200
        health = c.get("/health")
        assert health.status_code == 503 and "igm db upgrade" in health.json()["database"]["detail"]


def test_the_web_app_never_imports_torch() -> None:
    code = (
        "import sys, server.main; server.main.create_app; "
        "from server.routes import experiments, health, registry; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
