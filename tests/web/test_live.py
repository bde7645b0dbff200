"""A running experiment watched in real headless Chromium: its progress and charts advance
without a reload, and it is cancelled from the page. The run is real: worker.runner claims the row
and trains with igm_core, logging to the service's MLflow store, in a thread of the test process
(the code a Celery worker runs, without the worker's start-up)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from playwright.sync_api import expect

import igm_core.trainer  # noqa: F401  (imported here, not inside the timed waits)
from tests.web import data
from tests.web.conftest import Lab, Watched
from worker import runner

LONG = {
    "dataset": {"name": "synthetic", "params": {"n_train": 1000, "n_val": 200, "n_test": 200}},
    "method": {"name": "alternating"},
    "schedule": {"stage_epochs": [2, 300]},  # stopped by the cancel long before its end
    "batch_size": 50,
    "log_every": 2,
}


def _number(page, selector: str, attribute: str) -> float:
    value = page.get_attribute(selector, attribute)
    return float(value) if value not in (None, "") else -1.0


def _wait_above(page, selector: str, attribute: str, floor: float, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := _number(page, selector, attribute)) > floor:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{selector} {attribute} stayed at {_number(page, selector, attribute)}")


def test_progress_and_charts_advance_live_then_cancel(
    lab: Lab, watched: Watched, tmp_path: Path
) -> None:
    # a queue of its own: a worker runs the best queued row of the message's queue, and other
    # tests leave rows queued in the lab's
    eid = data.create(
        lab.sessions, data.spec(f"live-{uuid.uuid4().hex[:6]}", **LONG), queue=f"{lab.queue}-live"
    )
    page = watched.page
    page.goto(f"{lab.url}/ui/experiments/{eid}")
    expect(page.locator("#status")).to_have_text("queued")
    page.evaluate("window.loadedOnce = true")  # gone if the page reloads
    run = threading.Thread(
        target=runner.run, args=(eid,), kwargs={"settings": lab.settings, "worker": "live@test"}
    )
    run.start()
    try:
        expect(page.locator("#status")).to_have_text("running", timeout=30_000)
        loss = ".chart-panel[data-panel='train/loss']"
        page.wait_for_selector(f"{loss}[data-drawn='1']", timeout=30_000)
        first = _wait_above(page, loss, "data-last-step", 0)
        bar = _wait_above(page, "#progress-bar", "value", 0)
        later = _wait_above(page, loss, "data-last-step", first)  # appended, not reloaded
        _wait_above(page, "#progress-bar", "value", bar)
        page.wait_for_selector(".chart-panel[data-panel='val/acc'][data-drawn='1']")
        grad = page.get_attribute(".chart-panel[data-panel='grad/norm']", "data-keys")
        assert "grad/strong/norm" in grad.split(",")
        expect(page.locator("#progress-text")).to_contain_text("stage")
        watched.shot(tmp_path / "experiment-running.png")
        assert later > first and page.evaluate("window.loadedOnce") is True
        page.click("#cancel")
        expect(page.locator("#action-result")).to_contain_text("cancel requested")
        expect(page.locator("#status")).to_have_text("cancelled", timeout=20_000)
    finally:
        run.join(60)
    assert not run.is_alive()
    assert page.evaluate("window.loadedOnce") is True
    expect(page.locator("#retry")).to_be_enabled()
    expect(page.locator("#cancel")).to_be_disabled()
