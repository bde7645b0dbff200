"""The dashboard on a server that wants tokens, in real headless Chromium: the first page asks
for a token once, keeps it for the browser session (sessionStorage, and a session cookie for page
loads), and every page then loads with it."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from server import auth
from server.db import session_factory
from server.main import create_app
from tests.service.conftest import make_settings, served, sqlite_url
from tests.web import data
from tests.web.conftest import Watched


def test_pages_ask_for_a_token_once(watched: Watched, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=sqlite_url(tmp_path), require_tokens=True)
    sessions = session_factory(settings.resolved_database_url())
    with sessions() as session:
        secret = auth.create_token(session, name="browser", read_only=True)
    exp = data.create(sessions, data.spec("guarded"), queue=settings.default_queue)
    watched.expected.append("401 (Unauthorized)")  # the sign-in page and its first API read
    page = watched.page
    with served(create_app(settings)) as url:
        page.goto(f"{url}/")
        expect(page.locator("#token-dialog")).to_be_visible()
        assert page.locator("#experiments").count() == 0  # nothing shown before the token
        page.fill("#token-input", secret)
        page.click("#token-form button[type=submit]")
        page.wait_for_selector("#experiments[data-ready='1']")
        assert page.locator("#rows tr[data-id]").count() == 1
        assert page.evaluate("sessionStorage.getItem('igm-lab-token')") == secret
        page.goto(f"{url}/ui/experiments/{exp}")  # a page load: the cookie carries it
        expect(page.locator("#exp-name")).to_have_text("guarded")
        assert page.locator("#token-dialog[open]").count() == 0
        watched.shot(tmp_path / "signed-in.png")
