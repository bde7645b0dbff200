"""The dashboard's pages without a browser: what each serves (its shell, the script it runs, its
JSON twin), the security headers, and that stored or typed text reaches the HTML escaped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.filters import ExperimentFilters
from server.routes.pages import CSP, STATIC_DIR, UPLOT
from server.settings import Settings
from tests.service.conftest import make_settings, sqlite_url
from tests.web import data

EVIL = "<img src=x onerror=alert(1)><script>alert(2)</script>"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("pages")
    return make_settings(folder, database_url=sqlite_url(folder), data_roots=[folder / "roots"])


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    from server.main import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def sessions(settings: Settings):
    from server.db import session_factory

    return session_factory(settings.resolved_database_url())


def features_root(settings: Settings) -> Path:
    """A `features` dataset whose root path holds markup (a path may hold any character)."""
    root = settings.data_roots[0] / "<script>alert(3)<" / "script>"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        np.savez(root / f"{split}.npz", label=rng.integers(0, 2, 8), a=rng.normal(size=(8, 3)))
    return root


def assert_safe_shell(html: str) -> None:
    assert INLINE_SCRIPT.search(html) is None, "an inline script"
    assert " style=" not in html and "<style" not in html, "an inline style"
    assert "<script>alert" not in html and "<img src=x" not in html


@pytest.mark.parametrize(
    ("path", "script", "twin"),
    [
        ("/", "experiments.js", "/experiments"),
        ("/ui/compare?tag=a", "compare.js", "/compare?tag=a"),
    ],
)
def test_each_page_serves_its_shell(client: TestClient, path: str, script: str, twin: str) -> None:
    res = client.get(path)
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    assert res.headers["content-security-policy"] == CSP
    assert res.headers["x-content-type-options"] == "nosniff"
    assert f'<script type="module" src="/static/js/{script}">' in res.text
    assert f'<link rel="alternate" type="application/json" href="{twin}"' in res.text
    assert_safe_shell(res.text)
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', res.text):
        assert client.get(asset).status_code == 200, asset


def test_vendored_uplot_is_pinned_with_its_licence(client: TestClient) -> None:
    folder = STATIC_DIR / UPLOT
    assert UPLOT == "vendor/uplot-1.6.32"
    assert "MIT License" in (folder / "LICENSE").read_text()
    js = client.get(f"/static/{UPLOT}/uPlot.iife.min.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert len(js.content) == (folder / "uPlot.iife.min.js").stat().st_size > 40_000


def test_the_list_page_reflects_filters_escaped(client: TestClient) -> None:
    res = client.get("/", params={"q": EVIL, "tag": '"><b>', "method": "mla", "status": "failed"})
    assert res.status_code == 200
    assert 'value="&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(2)&lt;/script&gt;"' in (
        res.text
    )
    assert 'value="&#34;&gt;&lt;b&gt;"' in res.text
    assert '<option value="mla" selected>' in res.text
    assert '<option value="failed" selected>' in res.text
    assert_safe_shell(res.text)
    for column in ("Name", "Method", "Status", "Progress", "Test acc", "Weak acc", "Duration"):
        assert f">{column}</th>" in res.text
    assert client.get("/", params={"q": "x" * 129}).status_code == 422
    assert client.get("/", params={"status": "done"}).status_code == 422  # the API's filters
    # the script reads the filters' names from the form: the server's model's fields
    assert f'data-filters="{" ".join(ExperimentFilters.model_fields)}"' in res.text


def test_the_experiment_page_escapes_spec_error_and_traceback(
    client: TestClient, settings: Settings
) -> None:
    root = features_root(settings)
    raw = data.spec(
        "features-run",
        dataset={"name": "features", "params": {"root": str(root)}},
        schedule={"stage_epochs": [1, 1]},
        modalities=["a"],
    )
    raw["schedule"] = {"epochs": 1}
    raw["method"] = {"name": "joint"}
    made = sessions(settings)
    eid = data.create(made, raw, queue="cpu", tags=["t1"])
    data.finish(made, eid, "failed", error=f"ValueError: {EVIL}", traceback=f"  File x\n{EVIL}\n")
    res = client.get(f"/ui/experiments/{eid}")
    assert res.status_code == 200 and res.headers["content-security-policy"] == CSP
    html = res.text
    assert_safe_shell(html)
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in html  # the root, in the resolved spec
    assert '<pre id="error">ValueError: &lt;img src=x onerror=alert(1)&gt;' in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;\n</pre>" in html  # the traceback's tail
    assert f'data-id="{eid}"' in html and '<span class="tag">t1</span>' in html
    assert '<script src="/static/vendor/uplot-1.6.32/uPlot.iife.min.js">' in html
    assert f'href="/experiments/{eid}"' in html  # the twin


def test_unknown_experiment_pages_are_404_pages(client: TestClient) -> None:
    for eid in ("0" * 32, "not-an-id", "<script>"):
        res = client.get(f"/ui/experiments/{eid}")
        assert res.status_code == 404 and res.headers["content-type"].startswith("text/html")
        assert "<script>" not in res.text.split("<main>")[1]
    assert client.get("/static/../server/settings.py").status_code == 404
