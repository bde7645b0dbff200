"""Fixtures of the dashboard tests: a real server and a real browser.

The server is the app under uvicorn in a thread, on a SQLite database upgraded by Alembic, an
MLflow SQLite store in its data directory and Redis as broker (a queue of its own, emptied
afterwards); no worker consumes the queue, so tests run experiments with worker.runner, which
writes the rows as a worker does. The browser is Debian's chromium driven by Playwright through
its executable path (never a browser download); the tests skip, naming the package, only where
/usr/bin/chromium is missing. Each page a test opens collects console errors and uncaught
exceptions; a test ends with none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.db import session_factory
from server.settings import Settings
from tests.service.conftest import REDIS_URL, queue_settings, served

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL = "apt-get install -y --no-install-recommends chromium"


@dataclass
class Lab:
    url: str
    settings: Settings
    sessions: sessionmaker[Session]
    queue: str


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The API with its pages, served on a loopback port for the session (one MLflow store:
    creating one costs seconds)."""
    from server.main import create_app

    folder = tmp_path_factory.mktemp("dashboard")
    settings, queue = queue_settings(
        folder,
        broker_url=REDIS_URL,
        heartbeat_s=0.3,
        mlflow_ui_url="http://mlflow.example:5000",
    )
    with served(create_app(settings), queue) as url:
        yield Lab(url, settings, session_factory(settings.resolved_database_url()), queue)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"the browser tests need Debian's chromium at {CHROMIUM}; install: {INSTALL}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """A browser page and what went wrong in it."""

    page: Any
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)  # console errors a test provokes

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]

    def shot(self, path: Path) -> Path:
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000, "the screenshot is blank"
        return path


@contextlib.contextmanager
def watching(browser: Any, **context_options: Any) -> Iterator[Watched]:
    """A page in a new browser context (viewport 1400 x 900 unless given, color_scheme, ...)
    whose console errors and uncaught exceptions fail the test."""
    context = browser.new_context(**{"viewport": {"width": 1400, "height": 900}, **context_options})
    page = context.new_page()
    page.set_default_timeout(15_000)
    out = Watched(page)
    page.on("console", lambda m: m.type == "error" and out.errors.append(m.text))
    page.on("pageerror", lambda exc: out.errors.append(f"uncaught: {exc}"))
    page.on("dialog", lambda d: (out.dialogs.append(d.message), d.accept()))
    yield out
    context.close()
    assert out.unexpected() == [], f"console errors: {out.unexpected()}"


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    with watching(browser) as out:
        yield out
