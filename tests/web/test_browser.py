"""The dashboard in real headless Chromium (see conftest.py): the list loads, filters, sorts and
pages; the submit form; escaping of stored text; compare draws seed bands; a finished run's
results. Every page opened ends without console errors, and each test saves a screenshot of the
page it checked (under pytest's tmp_path)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
from playwright.sync_api import expect

from tests.web import data
from tests.web.conftest import Lab, Watched


def test_list_loads_filters_sorts_and_pages(lab: Lab, watched: Watched, tmp_path: Path) -> None:
    tag = f"list-{uuid.uuid4().hex[:6]}"
    for i in range(55):
        method = "mla" if i % 5 == 0 else "igm"
        data.create(
            lab.sessions,
            data.spec(f"row-{i:02d}", method={"name": method}),
            tags=[tag],
            queue=lab.queue,
        )
    page = watched.page
    page.goto(f"{lab.url}/?tag={tag}")
    page.wait_for_selector("#experiments[data-ready='1']")
    rows = page.locator("#rows tr[data-id]")
    assert rows.count() == 50
    assert page.inner_text("#page-info") == "1–50 of 55"
    assert rows.first.locator("td.name").inner_text() == "row-54"  # newest first
    page.click("#next-page")
    expect(page.locator("#page-info")).to_have_text("51–55 of 55")
    assert rows.count() == 5
    page.select_option("#filters select[name=method]", "mla")
    expect(page.locator("#page-info")).to_have_text("1–11 of 11")
    assert set(rows.locator("td:nth-child(3)").all_inner_texts()) == {"mla"}
    assert "method=mla" in page.url and "offset" not in page.url
    page.click("th[data-sort-key=name]")
    page.wait_for_selector("th.sorted-desc[data-sort-key=name]")
    page.click("th[data-sort-key=name]")
    page.wait_for_selector("th.sorted-asc[data-sort-key=name]")
    assert rows.first.locator("td.name").inner_text() == "row-00"
    page.fill("#filters input[name=q]", "row-05")
    expect(page.locator("#page-info")).to_have_text("1–1 of 1")
    watched.shot(tmp_path / "experiments.png")


def test_submit_form_field_error_then_created(lab: Lab, watched: Watched, tmp_path: Path) -> None:
    page = watched.page
    watched.expected.append("422 (Unprocessable Entity)")  # the two refused submissions
    name = f"form-{uuid.uuid4().hex[:6]}"
    page.goto(f"{lab.url}/?q={name}")
    page.wait_for_selector("#experiments[data-ready='1']")
    expect(page.locator("#page-info")).to_have_text("0–0 of 0")
    page.click("#new-experiment")
    assert '"method"' in page.input_value("#spec-text")  # an example is filled in
    page.fill(
        "#spec-text",
        f"name: {name}\ndataset: {{name: synthetic}}\nmethod:\n  name: igm\n"
        "  params:\n    tau: not-a-number\n",
    )
    page.click("#submit-button")
    error = page.locator("#spec-errors li[data-field='method.params.tau']")
    expect(error).to_contain_text("method.params.tau")
    expect(error.locator("button")).to_have_text("line 6")  # where the key is written
    watched.shot(tmp_path / "submit-error.png")
    page.fill("#spec-text", f"name: {name}\ndataset: {{name: synthetic}}\nmethod: {{name: igm}}\n")
    page.fill("#submit-priority", "12")
    page.click("#submit-button")
    expect(page.locator(".field-error[data-field='query.priority']")).to_contain_text("9")
    expect(page.locator("#spec-errors li")).to_have_count(0)
    page.fill("#submit-priority", "7")
    page.fill("#submit-tags", "form-test, second")
    page.click("#submit-button")
    expect(page.locator("#submit-result")).to_contain_text(f"created {name}")
    expect(page.locator("#spec-errors li")).to_have_count(0)
    # the list shows it without a reload: the changes feed noticed one more matching row
    expect(page.locator("#page-info")).to_have_text("1–1 of 1")
    row = page.locator("#rows tr[data-id]").first
    expect(row.locator("td.name")).to_have_text(name)
    expect(row.locator("td.tags")).to_have_text("form-testsecond")
    watched.shot(tmp_path / "submitted.png")


def test_submit_form_shows_every_problem_at_once(
    lab: Lab, watched: Watched, tmp_path: Path
) -> None:
    page = watched.page
    watched.expected.append("422 (Unprocessable Entity)")  # the one refused submission
    page.goto(f"{lab.url}/")
    page.wait_for_selector("#experiments[data-ready='1']")
    page.click("#new-experiment")
    page.fill(
        "#spec-text",
        "name: my run!\ndataset: {name: synthetic}\nmodalities: [strong, audio]\nmethod:\n"
        "  name: igm\n  params:\n    tau: not-a-number\nbatch_size: 0\n",
    )
    page.fill("#submit-priority", "12")
    page.fill("#submit-tags", "ok, bad!, worse?")
    page.click("#submit-button")
    # one round trip: the spec's fields, its method, its modalities, and the query's
    expect(page.locator("#submit-result")).to_have_text(
        "not submitted: 7 problems to fix, marked below"
    )
    errors = page.locator("#spec-errors li")
    expect(errors).to_have_count(4)
    fields = [errors.nth(i).get_attribute("data-field") for i in range(4)]
    assert fields == ["name", "batch_size", "method.params.tau", "modalities.1"]
    name = page.locator("#spec-errors li[data-field='name']")
    expect(name).to_contain_text("must be letters, digits, spaces and _ . - only")
    assert "^[" not in name.inner_text()  # words, not the regex
    expect(name.locator("button")).to_have_text("line 1")
    expect(page.locator(".field-error[data-field='query.priority']")).to_contain_text("0..9")
    tags = page.locator(".field-error[data-field='query.tags']")  # both bad tags, beside the field
    expect(tags).to_contain_text("invalid tag 'bad!'")
    expect(tags).to_contain_text("invalid tag 'worse?'")
    watched.shot(tmp_path / "submit-every-problem.png")


def test_stored_text_is_shown_as_text(lab: Lab, watched: Watched, tmp_path: Path) -> None:
    evil = "<img src=x onerror=alert('xss')><script>alert('xss')</script>"
    eid = data.create(lab.sessions, data.spec(f"evil-{uuid.uuid4().hex[:6]}"), queue=lab.queue)
    data.finish(
        lab.sessions,
        eid,
        "failed",
        error=f"ValueError: {evil}",
        traceback=f"Traceback (most recent call last):\n  {evil}\n",
    )
    page = watched.page
    page.goto(f"{lab.url}/ui/experiments/{eid}")
    expect(page.locator("#status")).to_have_text("failed")
    expect(page.locator("#error")).to_have_text(f"ValueError: {evil}")
    page.click("#traceback-details summary")
    expect(page.locator("#traceback")).to_contain_text(evil)
    assert page.locator("#error-section img, #error-section script").count() == 0
    page.goto(f"{lab.url}/?q=%3Cscript%3Ealert(1)%3C/script%3E")
    page.wait_for_selector("#experiments[data-ready='1']")
    assert page.input_value("#filters input[name=q]") == "<script>alert(1)</script>"
    assert watched.dialogs == []
    watched.shot(tmp_path / "escaped.png")


def _seed_group(lab: Lab, method: str, tag: str, level: float, artifacts: dict | None) -> list:
    ids = []
    for seed in range(3):
        raw = data.spec(f"cmp-{method}", method={"name": method}, seed=seed)
        eid = data.create(lab.sessions, raw, tags=[tag], queue=lab.queue)
        wiggle = 0.01 * (seed + 1)
        run = data.log_run(
            lab.settings,
            {
                "val/fused/acc": data.curve(200, 0.3, level, wiggle, every=20),
                "val/weak/acc": data.curve(200, 0.25, level - 0.2, wiggle, every=20),
                "train/fused/loss": data.curve(200, 2.0, 0.3, wiggle),
            },
            artifacts if seed == 0 else None,
        )
        acc = level + 0.01 * seed
        data.finish(
            lab.sessions, eid, "succeeded", run_id=run, summary=data.summary(acc, acc, acc - 0.2)
        )
        ids.append(eid)
    return ids


def test_compare_draws_seed_bands(lab: Lab, watched: Watched, tmp_path: Path) -> None:
    tag = f"cmp-{uuid.uuid4().hex[:6]}"
    matrices = {"fused": [[40, 2], [5, 33]], "weak": [[30, 12], [20, 18]]}
    igm = _seed_group(lab, "igm", tag, 0.9, {"confusion_matrices.json": matrices})
    _seed_group(lab, "mla", tag, 0.8, None)
    page = watched.page
    page.goto(f"{lab.url}/ui/compare?tag={tag}")
    page.wait_for_selector("body[data-ready='1']")
    rows = page.locator("#final tbody tr")
    expect(rows).to_have_count(2)
    best = page.locator("#final td.best")
    assert best.count() >= 3 and all(t.startswith("★") for t in best.all_inner_texts())
    assert page.locator("#final tr[data-group='cmp-igm'] td.best").count() >= 3
    assert re.search(r"\[.*, .*\]", rows.first.locator("td.num").first.inner_text())
    expect(page.locator("#pairs tr[data-pair]")).to_have_count(5)  # 3 fused metrics, 2 modalities
    expect(page.locator("#pairs")).to_contain_text("interval excludes 0")
    charts = page.locator("#curves .chart-panel[data-drawn='1']")
    expect(charts).to_have_count(3)  # fused and weak validation accuracy, training loss
    assert (
        page.locator("#curves .chart-panel[data-key='val/fused/acc']").get_attribute("data-bands")
        == "2"
    )  # a band per group
    assert page.locator("#spec-diff").inner_text().count("method.name") == 1
    watched.shot(tmp_path / "compare.png")

    # a finished run's page: test metrics, confusion heatmaps, artifacts, MLflow link, charts
    page.goto(f"{lab.url}/ui/experiments/{igm[0]}")
    page.wait_for_selector("#charts[data-ready='1']")
    expect(page.locator("#test-metrics")).to_contain_text("fused accuracy")
    expect(page.locator("#confusion figure")).to_have_count(2)
    assert page.locator("#confusion figure[data-matrix='fused'] td").first.inner_text() == "40"
    expect(page.locator("#artifacts a")).to_have_text(["confusion_matrices.json"])
    assert page.get_attribute("#mlflow-link", "href").startswith("http://mlflow.example:5000/#/")
    assert page.locator(".chart-panel[data-drawn='1']").count() == 2  # train/loss, val/acc
    assert page.locator(".chart-panel[data-panel='val/acc'] .u-legend .u-series").count() == 3
    assert page.get_attribute(".chart-panel[data-panel='train/loss']", "data-total") == "200"
    watched.shot(tmp_path / "experiment-finished.png")


def test_sweeps_are_listed_as_groups(lab: Lab, watched: Watched, tmp_path: Path) -> None:
    tag = f"sweep-{uuid.uuid4().hex[:6]}"
    body = {"base": data.spec("swept"), "grid": {"method.params.tau": [0.2, 0.4, 0.8]},
            "tags": [tag]}  # fmt: skip
    made = httpx.post(f"{lab.url}/experiments/sweep", json=body, timeout=20)
    assert made.status_code == 201, made.text
    sweep_id = made.json()["sweep_id"]
    data.create(lab.sessions, data.spec("alone"), tags=[tag], queue=lab.queue)
    page = watched.page
    page.goto(f"{lab.url}/?tag={tag}")
    page.wait_for_selector("#experiments[data-ready='1']")
    header = page.locator(f"#rows tr.sweep-header[data-sweep='{sweep_id}']")
    expect(header).to_contain_text("sweep swept")
    expect(header).to_contain_text("3 on this page")
    points = page.locator(f"#rows tr[data-id][data-sweep='{sweep_id}']")
    expect(points).to_have_count(3)
    texts = " ".join(points.locator("td.name").all_inner_texts())
    assert all(f"method.params.tau={v}" in texts for v in ("0.2", "0.4", "0.8"))
    header.locator("button").click()
    expect(points.first).to_be_hidden()
    watched.shot(tmp_path / "sweep-groups.png")
    assert header.locator("a", has_text="compare").get_attribute("href") == (
        f"/ui/compare?sweep={sweep_id}"
    )
