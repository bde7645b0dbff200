"""Access control against a real app on SQLite: tokens made by `igm token`, every route checked.

The write and read routes are read from the app itself, so a route added later is covered by
default; the embedded broker (a folder under tmp_path) carries the tasks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from igm_client.client import IGMClient, IGMClientError
from launcher.tokens import main as token_main
from server import auth
from server.main import create_app
from server.settings import Settings
from tests.service.conftest import make_settings, served, sqlite_url

SPEC = {"name": "tiny", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}
DUMMY_ID = "0" * 32
JSON = {"Content-Type": "application/json"}


def token(data_dir: Path, name: str, *extra: str, capsys: pytest.CaptureFixture) -> str:
    """A token made by `igm token create`: the last line of its output, alone."""
    assert token_main(["create", "--name", name, "--data-dir", str(data_dir), *extra]) == 0
    last = capsys.readouterr().out.rstrip("\n").split("\n")[-1]
    assert re.fullmatch(r"igm_[A-Za-z0-9_-]{43}", last), last
    return last


def lab_settings(tmp_path: Path, **overrides) -> Settings:
    return make_settings(tmp_path, require_tokens=True, **overrides)


@pytest.fixture
def lab(tmp_path: Path, capsys: pytest.CaptureFixture) -> Iterator[tuple[TestClient, dict]]:
    """A lab-mode app and its tokens: writer, reader (read-only), revoked."""
    data = tmp_path / "data"
    tokens = {
        "writer": token(data, "writer", capsys=capsys),
        "reader": token(data, "reader", "--read-only", capsys=capsys),
        "gone": token(data, "gone", capsys=capsys),
    }
    assert token_main(["revoke", "gone", "--data-dir", str(data)]) == 0
    with TestClient(create_app(lab_settings(tmp_path))) as client:
        yield client, tokens


def routes(methods: set[str]) -> list[tuple[str, str]]:
    """(method, path with dummy ids) of every operation in the app's OpenAPI schema with one of
    `methods` (the dashboard's pages are tested apart)."""
    app = create_app(Settings(data_dir=Path("unused")), check_schema=False)
    out = []
    for path, operations in app.openapi()["paths"].items():
        path = re.sub(r"\{[^}]+\}", DUMMY_ID, path)
        out += [(m.upper(), path) for m in sorted(operations) if m.upper() in methods]
    return out


WRITES = routes({"POST", "PUT", "PATCH", "DELETE"})
READS = [r for r in routes({"GET"}) if r[1] not in auth.OPEN_PATHS]


def call(client: TestClient, method: str, path: str, secret: str | None = None):
    headers = dict(JSON)
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    body = b"{}" if method != "GET" else None
    return client.request(method, path, content=body, headers=headers)


def test_the_route_lists_are_not_empty() -> None:
    assert ("POST", "/experiments") in WRITES and ("POST", "/experiments/sweep") in WRITES
    assert ("DELETE", f"/experiments/{DUMMY_ID}") in WRITES
    assert ("GET", "/experiments") in READS and len(READS) >= 8


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_every_write_refuses_missing_wrong_revoked_and_read_only_tokens(lab, method, path):
    client, tokens = lab
    for secret, detail in [
        (None, auth.MISSING),
        ("igm_" + "x" * 43, auth.INVALID),
        ("not-even-a-token", auth.INVALID),
        (tokens["gone"], auth.INVALID),
    ]:
        res = call(client, method, path, secret)
        assert res.status_code == 401, (secret, res.text)
        assert res.json()["detail"] == detail
        assert res.headers["www-authenticate"] == "Bearer"
    res = call(client, method, path, tokens["reader"])
    assert res.status_code == 403 and res.json()["detail"] == auth.READ_ONLY
    # the writer passes the gate (what follows is the route's own answer)
    assert call(client, method, path, tokens["writer"]).status_code not in (401, 403)


@pytest.mark.parametrize(("method", "path"), READS)
def test_every_read_needs_a_token_unless_reads_are_public(lab, tmp_path, method, path):
    client, tokens = lab
    assert call(client, method, path).status_code == 401
    assert call(client, method, path, tokens["gone"]).status_code == 401
    assert call(client, method, path, tokens["reader"]).status_code not in (401, 403)
    public = create_app(lab_settings(tmp_path, public_reads=True))
    with TestClient(public) as open_client:
        assert call(open_client, method, path).status_code not in (401, 403)
        # a bad token is still refused: it is not silently read as no token
        assert call(open_client, method, path, "igm_wrong").status_code == 401


def test_open_paths_and_writes_with_public_reads(lab, tmp_path):
    client, _ = lab
    assert client.get("/health").status_code in (200, 503)
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert schema["security"] == [{"token": []}]
    assert client.get("/static/js/api.js").status_code == 200
    with TestClient(create_app(lab_settings(tmp_path, public_reads=True))) as public:
        assert public.post("/experiments", json=SPEC).status_code == 401


def test_submitted_by_names_the_token_or_local(lab, tmp_path):
    client, tokens = lab
    auth_header = {"Authorization": f"Bearer {tokens['writer']}"}
    created = client.post("/experiments", json=SPEC, headers=auth_header)
    assert created.status_code == 201, created.text
    assert created.json()["submitted_by"] == "writer"
    sweep = client.post(
        "/experiments/sweep",
        json={"base": SPEC, "grid": {"seed": [1, 2]}},
        headers=auth_header,
    )
    assert [e["submitted_by"] for e in sweep.json()["data"]] == ["writer", "writer"]
    listed = client.get("/experiments", headers=auth_header).json()["data"]
    assert {e["submitted_by"] for e in listed} == {"writer"}
    (tmp_path / "open").mkdir()
    plain = make_settings(tmp_path / "open", database_url=sqlite_url(tmp_path / "open"))
    with TestClient(create_app(plain)) as open_client:
        assert open_client.post("/experiments", json=SPEC).json()["submitted_by"] == "local"


def test_writes_are_rate_limited_per_token(tmp_path, capsys):
    data = tmp_path / "data"
    first, second = (token(data, n, capsys=capsys) for n in ("first", "second"))
    app = create_app(lab_settings(tmp_path, write_rate_per_minute=2))
    with TestClient(app) as client:
        path = f"/experiments/{DUMMY_ID}/cancel"
        assert [call(client, "POST", path, first).status_code for _ in range(2)] == [404, 404]
        limited = call(client, "POST", path, first)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "2 a minute" in limited.json()["detail"]
        assert call(client, "POST", path, second).status_code == 404  # per token
        assert call(client, "GET", "/experiments", first).status_code == 200  # reads are free


def test_token_cli_lists_revokes_and_refuses_duplicates(tmp_path, capsys):
    data = tmp_path / "data"
    secret = token(data, "alice", capsys=capsys)
    assert token_main(["create", "--name", "alice", "--data-dir", str(data)]) == 1
    assert "exists already" in capsys.readouterr().err
    assert token_main(["create", "--name", "bad name", "--data-dir", str(data)]) == 1
    assert token_main(["ls", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "alice" in out and "read-write" in out and secret not in out
    assert token_main(["revoke", "nobody", "--data-dir", str(data)]) == 1
    assert token_main(["revoke", "alice", "--data-dir", str(data)]) == 0
    with TestClient(create_app(lab_settings(tmp_path))) as client:
        assert call(client, "GET", "/experiments", secret).status_code == 401


def test_pages_ask_for_a_token_and_take_the_cookie(lab):
    client, tokens = lab
    page = client.get("/")
    assert page.status_code == 401 and "sign_in.js" in page.text
    assert "token-dialog" in page.text
    client.cookies.set(auth.COOKIE, tokens["reader"])
    assert client.get("/").status_code == 200
    # the cookie opens pages only, never the API
    assert client.get("/experiments").status_code == 401
    client.cookies.clear()


def test_the_client_sends_its_token(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    secret = token(data, "laptop", capsys=capsys)
    monkeypatch.setenv("IGM_TOKEN", secret)
    with served(create_app(lab_settings(tmp_path))) as url:
        with IGMClient(url) as client:
            created = client.submit(SPEC)
            assert created["submitted_by"] == "laptop"
        monkeypatch.delenv("IGM_TOKEN")
        with IGMClient(url) as anonymous, pytest.raises(IGMClientError, match="401"):
            anonymous.list()
