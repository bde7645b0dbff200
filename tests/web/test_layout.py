"""The pages in real headless Chromium (see conftest.py) as a phone and in dark mode: at 390 px
the list and an experiment's page need no horizontal scrolling; with prefers-color-scheme: dark
the pages and their charts are drawn light on dark; /docs and /redoc lead back to the dashboard.
Each test saves screenshots under tmp_path."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.web import data
from tests.web.conftest import Lab, watching
from tests.web.test_charts import LOSS, alternating_run

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}


def overflow(page: Any) -> int:
    """How many CSS pixels the page is wider than its window (0: no horizontal scrolling)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def some_rows(lab: Lab, tag: str) -> None:
    """A list page's worth of variety: long names, tags, a finished row with results, a sweep."""
    for i in range(4):
        name = f"a-rather-long-experiment-name-without-spaces-{i}-{uuid.uuid4().hex}"
        eid = data.create(
            lab.sessions, data.spec(name[:120]), tags=[tag, "baseline"], queue=lab.queue
        )
        if i % 2:
            data.finish(lab.sessions, eid, "succeeded", summary=data.summary(0.81, 0.9, 0.52))


def test_phone_width_needs_no_horizontal_scrolling(lab: Lab, browser: Any, tmp_path: Path) -> None:
    tag = f"phone-{uuid.uuid4().hex[:6]}"
    some_rows(lab, tag)
    eid, _ = alternating_run(lab, finished=True)
    with watching(browser, **PHONE) as w:
        page = w.page
        page.goto(f"{lab.url}/?tag={tag}")
        page.wait_for_selector("#experiments[data-ready='1']")
        expect(page.locator("#rows tr[data-id]")).to_have_count(4)
        assert overflow(page) == 0
        # a row is a card: its cells say what they are
        assert "test acc" in page.locator(
            "#rows tr[data-id] td[data-label='test acc']"
        ).first.evaluate("td => getComputedStyle(td, '::before').content")
        w.shot(tmp_path / "experiments-390.png")
        page.click("#new-experiment")
        expect(page.locator("#submit-panel")).to_be_visible()
        assert overflow(page) == 0
        w.shot(tmp_path / "experiments-submit-390.png")

        page.goto(f"{lab.url}/ui/experiments/{eid}")
        page.wait_for_selector("#charts[data-ready='1']")
        page.wait_for_selector(f"{LOSS}[data-drawn='1']")
        assert overflow(page) == 0
        width = page.locator(LOSS).evaluate("n => n.getBoundingClientRect().right")
        assert width <= 390
        w.shot(tmp_path / "experiment-390.png")


def test_dark_mode_follows_the_system(lab: Lab, browser: Any, tmp_path: Path) -> None:
    eid, _ = alternating_run(lab, finished=True)
    with watching(browser, color_scheme="dark") as w:
        page = w.page
        page.goto(f"{lab.url}/ui/experiments/{eid}")
        page.wait_for_selector(f"{LOSS}[data-drawn='1']")
        colours = page.evaluate(
            """() => ({
              body: getComputedStyle(document.body).backgroundColor,
              text: getComputedStyle(document.body).color,
              panel: getComputedStyle(document.querySelector('.chart-panel')).backgroundColor,
            })"""
        )
        assert colours == {
            "body": "rgb(12, 17, 29)",
            "text": "rgb(228, 231, 236)",
            "panel": "rgb(22, 27, 38)",
        }
        # the charts' axes and the fused line are drawn in the light text colour
        axis = page.evaluate(
            f"() => {{ const u = document.querySelector({LOSS!r}).uplot; "
            "return [u.axes[0].stroke(u, 0), u.axes[1].stroke(u, 1)]; }"
        )
        assert axis == ["#e4e7ec", "#e4e7ec"]
        w.shot(tmp_path / "experiment-dark.png")
        page.goto(f"{lab.url}/")
        page.wait_for_selector("#experiments[data-ready='1']")
        head = page.locator("#experiments thead th").first
        assert head.evaluate("th => getComputedStyle(th).backgroundColor") == "rgb(31, 36, 47)"
        w.shot(tmp_path / "experiments-dark.png")
    with watching(browser, color_scheme="light") as w:  # and light stays light
        w.page.goto(f"{lab.url}/")
        bg = w.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert bg == "rgb(246, 247, 249)"


def test_the_api_reference_leads_back_to_the_dashboard(
    lab: Lab, browser: Any, tmp_path: Path
) -> None:
    with watching(browser) as w:
        page = w.page
        page.goto(f"{lab.url}/docs")
        page.wait_for_selector(".swagger-ui .info")  # the vendored Swagger UI drew the API
        w.shot(tmp_path / "docs.png")
        # (ReDoc itself is not opened here: its bundle asks cdn.redoc.ly for a logo)
        assert page.get_attribute("#igm-back >> text=ReDoc", "href") == "/redoc"
        page.click("#igm-back >> text=IGM Lab")
        page.wait_for_url(f"{lab.url}/")
        page.wait_for_selector("#experiments[data-ready='1']")
