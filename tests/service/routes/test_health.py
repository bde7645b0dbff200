"""server/routes/health.py: every part ok on real components."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_health_ok_on_real_components(client: TestClient) -> None:
    res = client.get("/health")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["status"] == "ok"
    assert all(body[part]["ok"] for part in ("database", "broker", "mlflow"))
