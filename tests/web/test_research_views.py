"""The run table (/ui/table) and a sweep's plots (/ui/sweeps/{id}) in real headless Chromium
(tests/web/conftest.py): the table adds a metric column, sorts by it, filters on it, keeps all of
it in the address, shows a failed run's error in one line and exports CSV that parses to the rows
shown; the sweep page draws one point per finished experiment in each scatter and a line per
experiment in the parallel coordinates. Each test saves a screenshot under its tmp_path."""

from __future__ import annotations

import csv
import io
import re
import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from igm_core.spec import resolve_spec
from server import crud
from tests.web import data
from tests.web.conftest import Lab, Watched

WEAK = "test.modality_acc.weak"
# pixels of each colour painted (opaque) on the fused scatter's canvas
PAINTED = """(colours) => {
  const canvas = document.querySelector('#scatter-fused canvas');
  const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const two = (v) => v.toString(16).padStart(2, '0');
  const counts = Object.fromEntries(colours.map(c => [c, 0]));
  for (let i = 0; i < px.length; i += 4) {
    const hex = '#' + two(px[i]) + two(px[i + 1]) + two(px[i + 2]);
    if (hex in counts && px[i + 3] === 255) counts[hex] += 1;
  }
  return counts;
}"""


def _failed_and_succeeded(lab: Lab, tag: str) -> dict[str, dict[str, Any]]:
    """Seven experiments under `tag`: five succeeded (weak accuracies all different), one failed
    with a two-line error, one queued. Their names -> what was stored."""
    stored = {}
    rows = [(0.1, 0.71, 0.41), (0.01, 0.83, 0.62), (0.001, 0.64, 0.33), (0.03, 0.9, 0.58)]
    for i, (lr, acc, weak) in enumerate([*rows, (0.003, 0.77, 0.49)]):
        name = f"tbl-{tag}-{i}"
        eid = data.create(
            lab.sessions, data.spec(name, optimizer={"lr": lr}, seed=i), tags=[tag], queue=lab.queue
        )
        data.finish(lab.sessions, eid, "succeeded", summary=data.summary(acc, acc, weak))
        stored[name] = {"lr": lr, "acc": acc, "weak": weak}
    failed = data.create(lab.sessions, data.spec(f"tbl-{tag}-failed"), tags=[tag], queue=lab.queue)
    data.finish(lab.sessions, failed, "failed", error="RuntimeError: CUDA out of memory\nat step 3")
    data.create(lab.sessions, data.spec(f"tbl-{tag}-queued"), tags=[tag], queue=lab.queue)
    return stored


def _table(page: Any) -> tuple[list[str], list[list[str]]]:
    """The header texts (without the remove buttons) and the cells of the rows shown."""
    heads = page.locator("#head-row th").evaluate_all(
        "ths => ths.map(th => th.dataset.column || th.firstChild.textContent.trim())"
    )
    rows = page.locator("#rows tr[data-id]").evaluate_all(
        "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))"
    )
    return heads, rows


def _number(text: str) -> float | None:
    return None if text in ("", "–") else float(text)


def test_run_table_column_sort_filter_and_csv(lab: Lab, watched: Watched, tmp_path: Path) -> None:
    tag = f"tbl-{uuid.uuid4().hex[:6]}"
    stored = _failed_and_succeeded(lab, tag)
    page = watched.page
    page.goto(f"{lab.url}/ui/table?tag={tag}&columns=test.acc,optimizer.lr")
    page.wait_for_selector("#run-table[data-ready='1']")
    expect(page.locator("#page-info")).to_have_text("1–7 of 7")

    # a metric column, added by the user, kept in the address
    page.fill("#new-column", WEAK)
    page.click("#add-column")
    expect(page.locator(f"#head-row th[data-column='{WEAK}']")).to_be_visible()
    assert f"columns=test.acc%2Coptimizer.lr%2C{WEAK}" in page.url

    # sorted by it (descending first, then ascending), experiments without a value last
    for order, reverse in (("sorted-desc", True), ("sorted-asc", False)):
        page.click(f"#head-row th[data-column='{WEAK}']")
        page.wait_for_selector(f"#head-row th.{order}[data-column='{WEAK}']")
        heads, rows = _table(page)
        col = heads.index(WEAK)
        values = [_number(r[col]) for r in rows]
        assert values[:5] == sorted((s["weak"] for s in stored.values()), reverse=reverse)
        assert values[5:] == [None, None]
    assert f"sort={WEAK}" in page.url

    # the failed run's error, one line
    failed = page.locator("#rows tr[data-status='failed'] td.error-excerpt")
    expect(failed).to_have_text("RuntimeError: CUDA out of memory")

    # CSV of what is shown parses to the rows shown (values in full, not as shown)
    with page.expect_download() as download:
        page.click("#export-page")
    text = Path(download.value.path()).read_text(encoding="utf-8")
    table = list(csv.reader(io.StringIO(text)))
    heads, rows = _table(page)
    assert table[0] == ["id", "name", "status", "method", "dataset", "test.acc", "optimizer.lr",
                        WEAK, "created_at", "error"]  # fmt: skip
    assert len(table) - 1 == len(rows) == 7
    ids = page.locator("#rows tr[data-id]").evaluate_all("trs => trs.map(tr => tr.dataset.id)")
    for line, row, eid in zip(table[1:], rows, ids, strict=True):
        assert line[0] == eid and line[1:5] == row[0:4]
        name = line[1]
        for key, cell in zip(("test.acc", "optimizer.lr", WEAK), line[5:8], strict=True):
            shown = _number(row[heads.index(key)])
            assert (cell == "") == (shown is None)
            if name in stored:
                exact = {"test.acc": "acc", "optimizer.lr": "lr", WEAK: "weak"}[key]
                assert float(cell) == stored[name][exact]  # in full
                assert abs(float(cell) - shown) < 1e-4
        assert line[9] == row[-1]  # the error excerpt
    watched.shot(tmp_path / "run-table.png")

    # a numeric condition on a JSON value, then the address reloads to the same view
    page.fill("#new-condition", "optimizer.lr<0.005")
    page.click("#add-condition")
    expect(page.locator("#page-info")).to_have_text("1–2 of 2")  # 0.001 and 0.003
    assert "match=optimizer.lr%3C0.005" in page.url
    page.reload()
    page.wait_for_selector("#run-table[data-ready='1']")
    expect(page.locator("#page-info")).to_have_text("1–2 of 2")
    expect(page.locator(f"#head-row th.sorted-asc[data-column='{WEAK}']")).to_be_visible()

    # a bad key is refused with the server's message, and the table stays as it was
    watched.expected.append("422 (Unprocessable Entity)")
    page.fill("#new-column", "test..acc")
    page.click("#add-column")
    expect(page.locator("#banner")).to_contain_text("bad key 'test..acc'")
    expect(page.locator("#head-row th[data-column]")).to_have_count(3)
    watched.shot(tmp_path / "run-table-filtered.png")

    # the list at / takes the same conditions from its address
    page.goto(f"{lab.url}/?tag={tag}&match=optimizer.lr%3C0.005")
    page.wait_for_selector("#experiments[data-ready='1']")
    expect(page.locator("#page-info")).to_have_text("1–2 of 2")


def test_sweep_scatter_draws_one_point_per_finished_experiment(
    lab: Lab, watched: Watched, tmp_path: Path
) -> None:
    name = f"sw-{uuid.uuid4().hex[:6]}"
    grid = {"optimizer.lr": [0.1, 0.01, 0.001], "optimizer.name": ["sgd", "adam"]}
    base = data.spec(name)
    points = [{"optimizer.lr": lr, "optimizer.name": o} for lr in grid["optimizer.lr"]
              for o in grid["optimizer.name"]]  # fmt: skip
    specs = [
        resolve_spec({**base, "name": f"{name}-{i}", "optimizer": {"lr": p["optimizer.lr"],
                                                                   "name": p["optimizer.name"]}})
        for i, p in enumerate(points)
    ]  # fmt: skip
    with lab.sessions() as s:
        sweep, exps = crud.create_sweep(
            s, name=name, base_spec=base, grid=grid, specs=specs, values=points, tags=[],
            queue=lab.queue, max_attempts=3,
        )  # fmt: skip
        sweep_id, ids = sweep.id, [e.id for e in exps]
    for i, eid in enumerate(ids[:4]):  # four finished, one failed, one still queued
        acc = 0.6 + 0.05 * i
        data.finish(lab.sessions, eid, "succeeded", summary=data.summary(acc, acc + 0.1, acc - 0.2))
    data.finish(lab.sessions, ids[4], "failed", error="ValueError: diverged")

    page = watched.page
    page.goto(f"{lab.url}/?sweep={sweep_id}")  # the list links a sweep to its plots
    page.wait_for_selector("#experiments[data-ready='1']")
    page.click(f"tr.sweep-header[data-sweep='{sweep_id}'] a:text('plots')")
    page.wait_for_selector("body[data-ready='1']")
    assert page.url.startswith(f"{lab.url}/ui/sweeps/{sweep_id}")

    def drawn(points: int, colours: int) -> None:
        """Every finished experiment a point in both scatters and a line in the parallel
        coordinates; `colours` legend entries, each colour painted on the fused scatter."""
        for figure in ("#scatter-fused", "#scatter-weak"):
            expect(page.locator(figure)).to_have_attribute("data-points", str(points))
        expect(page.locator("#parallel")).to_have_attribute("data-lines", str(points))
        expect(page.locator("#legend .legend-item")).to_have_count(colours)
        swatches = page.locator("#legend .swatch").evaluate_all("s => s.map(x => x.dataset.color)")
        painted = page.evaluate(PAINTED, swatches)
        assert all(n > 20 for n in painted.values()), painted

    drawn(4, 2)  # x: the learning rate, coloured by the optimizer (the other swept key)
    listed = page.locator("#points tr[data-id]").evaluate_all("t => t.map(r => r.dataset.id)")
    assert sorted(listed) == sorted(ids[:4])
    status = "4 of 6 points finished and drawn; 1 failed"
    expect(page.locator("#sweep-status")).to_contain_text(status)
    expect(page.locator("#weak-modality")).to_have_value("weak")
    assert page.locator("#log-x").is_checked()  # 0.01 .. 0.1 drawn: a decade, a log axis
    assert "x=optimizer.lr&color=optimizer.name" in page.url
    watched.shot(tmp_path / "sweep-plots.png")
    # text values on the x axis: one place per value, every point still drawn
    page.select_option("#x-key", "optimizer.name")
    expect(page).to_have_url(re.compile(r"x=optimizer.name&color=optimizer.name"))
    drawn(4, 2)
    # colour by a spec key that was not swept (read through the list's columns)
    page.fill("#color-key", "method.name")
    page.dispatch_event("#color-key", "change")
    expect(page.locator("#legend .legend-item")).to_have_text(["igm"])
    drawn(4, 1)
    watched.shot(tmp_path / "sweep-plots-by-optimizer.png")
