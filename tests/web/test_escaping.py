"""Every free-text field, holding markup, is shown as text on every page (real Chromium).

The rows are written straight into the database (as a migration, a hand edit or a bug could
leave them), so the pages are tested without the API's own input checks: experiment name, tags,
submitter, error, traceback, a string in the spec, the sweep's name and its swept values. Each
page must show the markup literally and add no element from it; the page's console stays clean
(an inline script blocked by the CSP would log an error).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from playwright.sync_api import expect

from server.models import Experiment, ExperimentTag, Sweep
from tests.web import data
from tests.web.conftest import Lab, Watched

EVIL = "<img src=x id=pwned onerror=alert(1)><script>alert(2)</script><b id=bold>b</b>"


def _evil_rows(lab: Lab) -> tuple[list[str], str]:
    tag = f"esc-{uuid.uuid4().hex[:6]}"
    ids = []
    for seed in range(2):
        eid = data.create(
            lab.sessions, data.spec("escaped", seed=seed), tags=[tag], queue=lab.queue
        )
        run = data.log_run(lab.settings, {"val/fused/acc": data.curve(20, 0.3, 0.8, 0.01)})
        data.finish(lab.sessions, eid, "succeeded", run_id=run, summary=data.summary(0.8, 0.8, 0.6))
        ids.append(eid)
    sweep_id = uuid.uuid4().hex
    with lab.sessions() as s:
        s.add(Sweep(id=sweep_id, name=EVIL, base_spec={}, grid={"x": [EVIL]}, random=None, size=2))
        for eid in ids:
            exp = s.get(Experiment, eid)
            exp.name = f"{EVIL}"  # both in one group on the compare page
            exp.submitted_by = EVIL[:64]
            exp.error = f"ValueError: {EVIL}"
            exp.traceback = f"Traceback:\n  {EVIL}\n"
            exp.sweep_id = sweep_id
            exp.sweep_values = {"x": EVIL}
            exp.spec = {
                **exp.spec,
                "name": EVIL,
                "dataset": {"name": "synthetic", "params": {"root": EVIL}},
            }
            exp.tags = [ExperimentTag(tag=tag), ExperimentTag(tag=EVIL[:64])]
        s.commit()
    return ids, sweep_id


def _no_markup_from_data(watched: Watched) -> None:
    page = watched.page
    assert page.locator("#pwned, #bold").count() == 0, "markup from the data became elements"
    inline = page.locator("script:not([src])")
    assert inline.count() == 0, "an inline script element appeared"
    assert watched.dialogs == []


def test_free_text_is_escaped_on_every_page(lab: Lab, watched: Watched, tmp_path: Path) -> None:
    ids, sweep_id = _evil_rows(lab)
    page = watched.page

    page.goto(f"{lab.url}/?sweep={sweep_id}")
    page.wait_for_selector("#experiments[data-ready='1']")
    rows = page.locator("#rows tr[data-id]")
    expect(rows).to_have_count(2)
    expect(rows.first.locator("td.name")).to_contain_text(EVIL)
    expect(rows.first.locator("td.tags")).to_contain_text(EVIL[:64])
    expect(page.locator("#rows")).to_contain_text(f'x="{EVIL}"')
    _no_markup_from_data(watched)
    watched.shot(tmp_path / "list.png")

    page.goto(f"{lab.url}/ui/experiments/{ids[0]}")
    page.wait_for_selector("#charts[data-ready='1']")
    expect(page.locator("#exp-name")).to_have_text(EVIL)
    assert EVIL in page.title()
    expect(page.locator("#f-tags")).to_contain_text(EVIL[:64])
    expect(page.locator("#f-submitted-by")).to_have_text(EVIL[:64])
    expect(page.locator("#sweep-values")).to_have_text(f'{{"x": "{EVIL}"}}')
    expect(page.locator("#error")).to_have_text(f"ValueError: {EVIL}")
    expect(page.locator("#spec")).to_contain_text(EVIL)
    page.click("#traceback-details summary")
    expect(page.locator("#traceback")).to_contain_text(EVIL)
    _no_markup_from_data(watched)
    watched.shot(tmp_path / "experiment.png")

    page.goto(f"{lab.url}/ui/compare?ids={','.join(ids)}")
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#final")).to_contain_text(EVIL)
    expect(page.locator("#curves .chart-panel[data-drawn='1']")).to_have_count(1)
    expect(page.locator("#curves")).to_contain_text(EVIL)  # the chart legend's group label
    _no_markup_from_data(watched)
    watched.shot(tmp_path / "compare.png")
