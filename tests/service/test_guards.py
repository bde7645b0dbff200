"""Request guards against a real app on SQLite: trusted hosts, body content types (no simple
cross-site writes), CORS closed unless configured, strict types in the spec, one log line (no
traceback) for a client that disconnects mid-body, under a real uvicorn server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from launcher.embedded import ROOT, worker_env
from server import auth
from server.db import session_factory
from server.main import create_app
from tests.service.conftest import free_port, make_settings, sqlite_url

SPEC = {"name": "tiny", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}
YAML_SPEC = b"name: tiny\ndataset: {name: synthetic}\nmethod: {name: igm}\n"


def app_for(tmp_path: Path, **overrides):
    return create_app(make_settings(tmp_path, database_url=sqlite_url(tmp_path), **overrides))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(app_for(tmp_path)) as c:
        yield c


def a_row(client: TestClient) -> str:
    res = client.post("/experiments", json=SPEC)
    assert res.status_code == 201, res.text
    return res.json()["id"]


def test_untrusted_hosts_get_400(client: TestClient) -> None:
    for host in ("evil.example", "evil.example:80", "127.0.0.1.evil.example", ""):
        res = client.get("/experiments", headers={"Host": host})
        assert res.status_code == 400 and res.json()["detail"] == "invalid Host header"
    assert client.get("/experiments", headers={"Host": "localhost:8000"}).status_code == 200
    assert client.get("/health", headers={"Host": "evil.example"}).status_code == 400


def test_default_hosts_and_wildcard(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url(tmp_path))
    settings = settings.model_copy(update={"trusted_hosts": ["localhost", "127.0.0.1", "::1"]})
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8000") as c:
        assert c.get("/experiments").status_code == 200
        assert c.get("/experiments", headers={"Host": "[::1]:8000"}).status_code == 200
        assert c.get("/experiments", headers={"Host": "testserver"}).status_code == 400
    with TestClient(app_for(tmp_path / "any", trusted_hosts=["*"])) as c:
        assert c.get("/experiments", headers={"Host": "anything.example"}).status_code == 200


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"],
)
def test_simple_cross_site_writes_are_refused(client: TestClient, content_type: str) -> None:
    eid = a_row(client)
    for method, path, body in [
        ("POST", f"/experiments/{eid}/cancel", b""),
        ("POST", f"/experiments/{eid}/cancel", b"a=1"),
        ("DELETE", f"/experiments/{eid}", b""),
        ("POST", "/experiments", b"name=x"),
        ("POST", "/experiments/sweep", b"x"),
    ]:
        headers = {"Content-Type": content_type}
        res = client.request(method, path, content=body, headers=headers)
        assert res.status_code == 415, (method, path, res.text)
        assert "unsupported content type" in res.json()["detail"]
    assert client.get(f"/experiments/{eid}").json()["status"] == "queued"  # nothing happened


def test_bodies_need_a_json_or_yaml_type(client: TestClient) -> None:
    eid = a_row(client)
    res = client.post("/experiments", content=b'{"name": "x"}')  # no Content-Type at all
    assert res.status_code == 415 and "needs a Content-Type" in res.json()["detail"]
    res = client.post(f"/experiments/{eid}/cancel", content=b"{}")
    assert res.status_code == 415
    # YAML only where a spec is accepted as YAML
    yaml_type = {"Content-Type": "application/yaml"}
    assert client.post("/experiments", content=YAML_SPEC, headers=yaml_type).status_code == 201
    res = client.post("/experiments/sweep", content=b"base: {}", headers=yaml_type)
    assert res.status_code == 415 and "application/json" in res.json()["detail"]
    # no body and no type: an action as the client sends it
    assert client.post(f"/experiments/{eid}/cancel").status_code == 200
    vendor = {"Content-Type": "application/vnd.igm+json; charset=utf-8"}
    assert client.post("/experiments", content=b"{}", headers=vendor).status_code == 422


def test_cors_is_closed_unless_configured(client: TestClient, tmp_path: Path) -> None:
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    res = client.options("/experiments", headers=preflight)
    assert "access-control-allow-origin" not in res.headers
    res = client.get("/experiments", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in res.headers
    origin = "https://dash.lab.example"
    with TestClient(app_for(tmp_path / "cors", cors_origins=[origin])) as c:
        res = c.options("/experiments", headers={**preflight, "Origin": origin})
        assert res.status_code == 200
        assert res.headers["access-control-allow-origin"] == origin
        res = c.options("/experiments", headers=preflight)
        assert "access-control-allow-origin" not in res.headers


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"batch_size": True}, "batch_size"),
        ({"batch_size": "64"}, "batch_size"),
        ({"batch_size": 64.5}, "batch_size"),
        ({"seed": False}, "seed"),
        ({"log_every": "10"}, "log_every"),
        ({"optimizer": {"lr": True}}, "optimizer.lr"),
        ({"optimizer": {"lr": "0.1"}}, "optimizer.lr"),
        ({"model": {"shared_head": 1}}, "model.shared_head"),
        ({"model": {"head_hidden": [True]}}, "model.head_hidden.0"),
        ({"schedule": {"stage_epochs": [1, True]}}, "schedule.stage_epochs.1"),
        ({"method": {"name": "igm", "params": {"tau": True}}}, "method.params.tau"),
        ({"dataset": {"name": "synthetic", "params": {"n_train": True}}}, "dataset.params.n_train"),
    ],
)
def test_spec_types_are_strict(client: TestClient, change: dict, loc: str) -> None:
    res = client.post("/experiments", json={**SPEC, **change})
    assert res.status_code == 422, res.text
    assert loc in [d["loc"] for d in res.json()["detail"]], res.json()


def test_ints_still_pass_as_floats(client: TestClient) -> None:
    res = client.post("/experiments", json={**SPEC, "optimizer": {"lr": 1}, "batch_size": 32})
    assert res.status_code == 201, res.text
    assert res.json()["spec"]["optimizer"]["lr"] == 1.0


def _uvicorn(settings, log: Path) -> tuple[subprocess.Popen, int]:
    """The API in a uvicorn process of its own, its output in `log`; (process, port)."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "server.main:create_app"]
    env = {**worker_env(settings), "IGM_REQUIRE_TOKENS": "true"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60  # hang guard: the server starts in seconds
    while b"Application startup complete" not in log.read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return proc, port


def _half_a_body(port: int, path: str, secret: str, *, chunked: bool = False) -> None:
    """A token holder's upload that stops half-way: headers, part of the body, then close."""
    framing = "Transfer-Encoding: chunked" if chunked else "Content-Length: 1000"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {secret}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    )
    body = b'{"name": "half", "dataset": {"name": "synthetic"}, "method": '
    if chunked:  # a chunk that announces more than it carries
        body = b"%x\r\n" % 500 + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head.encode() + body)
        time.sleep(0.3)  # the server reads what came before the client goes


def test_a_client_that_disconnects_mid_body_is_one_log_line(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url(tmp_path))
    with session_factory(settings.resolved_database_url())() as session:
        secret = auth.create_token(session, name="prober")
    log = tmp_path / "api.log"
    proc, port = _uvicorn(settings, log)
    try:
        cases = [("/experiments", False), ("/experiments/sweep", False), ("/experiments", True)]
        for path, chunked in cases:
            _half_a_body(port, path, secret, chunked=chunked)
        deadline = time.monotonic() + 30  # hang guard
        while log.read_text().count("disconnected mid-body") < len(cases):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(30)
    text = log.read_text()
    ours = [line for line in text.splitlines() if not line.startswith("INFO:")]
    assert len(ours) == len(cases), text  # one line each, nothing else: no traceback
    assert "Traceback" not in text and "Exception" not in text, text
    assert ours[0].endswith("POST /experiments, 61 bytes received of 1000 announced"), ours
    assert ours[1].endswith("POST /experiments/sweep, 61 bytes received of 1000 announced")
    assert ours[2].endswith("POST /experiments, 61 bytes received of a chunked body"), ours
