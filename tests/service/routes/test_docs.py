"""/docs and /redoc work without internet: the pages name no external URL, and every script,
style sheet and icon they load is served here, from the vendored copies with their licences."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.main import create_app
from tests.service.conftest import make_settings, sqlite_url

ASSET = re.compile(r"""<(?:script|link|img)\b[^>]*?(?:src|href)=["']([^"']+)["']""")
BACK = re.compile(r"""<nav id="igm-back"[^>]*><a href="/"[^>]*>&larr; IGM Lab</a>""")


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path)))  # pages only: no lifespan needed


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon-32x32.png"}),
        ("/docs/oauth2-redirect", set()),
    ],
)
def test_docs_pages_load_only_local_assets(client: TestClient, page: str, assets: set) -> None:
    res = client.get(page)
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    html = res.text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html, html
    loaded = ASSET.findall(html)
    assert {Path(url).name for url in loaded} == assets
    for url in loaded:
        assert url.startswith("/static/vendor/")
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 500, url
    if page != "/docs/oauth2-redirect":
        assert "/openapi.json" in html and client.get("/openapi.json").status_code == 200
    if page == "/docs":
        assert '"validatorUrl": null' in html  # the spec is never sent to an online validator
    if page != "/docs/oauth2-redirect":  # a way back to the dashboard, first in the body
        assert BACK.search(html.split("<body>", 1)[1][:600]), html[:2000]


def test_the_readmes_sweep_example_is_a_valid_request(tmp_path: Path) -> None:
    """The README's sweep body: 3 x 3 grid points, each with 4 random draws (a product)."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    (block,) = re.findall(r"```json\n(\{\"base\".*?)```", readme, re.DOTALL)
    settings = make_settings(tmp_path, database_url=sqlite_url(tmp_path))
    with TestClient(create_app(settings)) as client:
        preview = client.post("/experiments/sweep/preview", json=json.loads(block))
    assert preview.status_code == 200, preview.text
    points = preview.json()["points"]
    assert preview.json()["count"] == len(points) == 36
    assert points[-1]["name"] == "tau-lr-35" and len({p["spec_hash"] for p in points}) == 36
