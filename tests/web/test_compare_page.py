"""The compare page in real headless Chromium (fixtures: conftest.py; rows and MLflow runs written
as the service writes them: data.py): one selection gives the same groups, labels and colours in
the table, the pairs, the forest plot and the curves; every pair reads "B − baseline" with the
weak modality's pair; a 2-seed group shows no interval and no star; a line breaks where its runs
logged nothing; the page shows a loading state until its data is in; the baseline is chosen on
the page. Each test saves a screenshot under its tmp_path."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from playwright.sync_api import Route, expect

from tests.web import data
from tests.web.conftest import Lab, Watched, watching

BASE = {"name": "cx", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}
IGM, JOINT = "cx (method=igm)", "cx (method=joint)"
FEW = "few"  # alternating, 2 seeds, the best fused accuracy


def _metrics(method: str, seed: int) -> dict[str, tuple[list, list]]:
    """Validation accuracies every 20 steps; the weak modality's training loss at every step of
    its stages: steps 1-100 and 201-300 for the staged methods (101-200 train the strong one)."""
    level = {"igm": 0.85, "joint": 0.75, "alternating": 0.9}[method]
    steps = list(range(1, 301))
    if method != "joint":
        steps = [s for s in steps if not 100 < s <= 200]
    shift = {"igm": 0.0, "joint": 1.5, "alternating": -0.7}[method]  # lines apart
    loss = [(2.0 if s <= 100 else 1.0) + shift for s in steps]
    return {
        "val/fused/acc": data.curve(300, 0.3, level, 0.01 * (seed + 1), every=20),
        "val/weak/acc": data.curve(300, 0.2, level - 0.3, 0.01 * (seed + 1), every=20),
        "train/weak/loss": (steps, loss),
    }


def _succeed(lab: Lab, exp_id: str, method: str, seed: int) -> None:
    level = {"igm": 0.85, "joint": 0.75, "alternating": 0.9}[method]
    weak = {"igm": 0.61, "joint": 0.385, "alternating": 0.6}[method] + 0.01 * seed
    run = data.log_run(lab.settings, _metrics(method, seed))
    summary = data.summary(level + 0.01 * seed, 0.9, weak)
    data.finish(lab.sessions, exp_id, "succeeded", run_id=run, summary=summary)


def _made(lab: Lab) -> dict[str, Any]:
    """A sweep of igm and joint x seeds 0-2, every point finished with a run; and a 2-seed
    alternating group under the same tag. Returns the tag and the sweep."""
    tag = f"cx-{uuid.uuid4().hex[:6]}"
    grid = {"method.name": ["igm", "joint"], "seed": [0, 1, 2]}
    body = {"base": BASE, "name": "cx", "grid": grid, "tags": [tag]}
    sweep = httpx.post(f"{lab.url}/experiments/sweep", json=body, timeout=30)
    assert sweep.status_code == 201, sweep.text
    for point in sweep.json()["data"]:
        values = point["sweep_values"]
        _succeed(lab, point["id"], values["method.name"], values["seed"])
    for seed in (0, 1):
        raw = {**BASE, "name": FEW, "method": {"name": "alternating"}, "seed": seed}
        _succeed(
            lab, data.create(lab.sessions, raw, tags=[tag], queue=lab.queue), "alternating", seed
        )
    return {"tag": tag, "sweep": sweep.json()}


def _rgb(page: Any, selector: str, prop: str) -> dict[str, str]:
    """Each matching element's data-group (or text) -> its computed colour `prop`."""
    return page.eval_on_selector_all(
        selector,
        f"""nodes => Object.fromEntries(nodes.map(n => [n.closest('[data-group]') ?
            n.closest('[data-group]').dataset.group : n.closest('tr').dataset.pair.split(' − ')[0],
            getComputedStyle(n).{prop}]))""",
    )


def _legend(page: Any, key: str) -> dict[str, str]:
    """A curve chart's legend: group label -> its line colour (uPlot's marker border)."""
    rows = page.locator(f".chart-panel[data-key='{key}'] .u-legend tr.u-series:not(.band-edge)")
    return rows.evaluate_all(
        """rows => Object.fromEntries(rows.slice(1).map(r => [
            r.querySelector('.u-label').textContent.replace(/ \\(n=\\d+\\)$/, ''),
            getComputedStyle(r.querySelector('.u-marker')).borderTopColor]))"""
    )


def _line_pixels(page: Any, key: str, color: str, fractions: list[float]) -> list[int]:
    """Pixels of `color` (rgb(...)) in a column of a chart's plot area at each fraction of its
    width: the line of that colour crosses the column where the count is above 0."""
    return page.eval_on_selector(
        f".chart-panel[data-key='{key}']",
        """(panel, [color, fractions]) => {
            const canvas = panel.querySelector('canvas');
            const over = panel.querySelector('.u-over');
            const ctx = canvas.getContext('2d');
            const k = canvas.width / canvas.clientWidth;
            const want = color.match(/\\d+/g).map(Number);
            return fractions.map((f) => {
                const x = Math.round((over.offsetLeft + f * over.offsetWidth) * k);
                const top = Math.round(over.offsetTop * k);
                const px = ctx.getImageData(x, top, 1, Math.round(over.offsetHeight * k)).data;
                let hits = 0;
                for (let i = 0; i < px.length; i += 4) {
                    const near = [0, 1, 2].every((c) => Math.abs(px[i + c] - want[c]) < 40);
                    if (near && px[i + 3] > 200) hits += 1;
                }
                return hits;
            });
        }""",
        [color, fractions],
    )


def test_one_selection_one_grouping_labels_and_colours(
    lab: Lab, watched: Watched, tmp_path: Path
) -> None:
    made = _made(lab)
    page = watched.page
    page.goto(f"{lab.url}/ui/compare?tag={made['tag']}&baseline=joint")
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#compare-loading")).to_be_hidden()
    table = _rgb(page, "#final tr[data-group] th .swatch", "backgroundColor")
    assert set(table) == {IGM, JOINT, FEW} and len(set(table.values())) == 3
    # the pairs: every group minus the baseline, each in its group's colour
    pairs = page.locator("#pairs tr[data-pair]")
    assert set(pairs.evaluate_all("rows => rows.map(r => r.dataset.pair)")) == {
        f"{IGM} − {JOINT}",
        f"{FEW} − {JOINT}",
    }
    assert _rgb(page, "#pairs tr[data-pair] .swatch", "backgroundColor") == {
        IGM: table[IGM],
        FEW: table[FEW],
    }
    weak = page.locator(f"#pairs tr[data-pair='{IGM} − {JOINT}'][data-metric='modality_acc.weak']")
    expect(weak).to_have_count(1)
    expect(weak).to_contain_text("weak acc")
    expect(weak).to_contain_text("+22.5")  # 61.0% against 38.5%, seed by seed
    expect(weak).to_contain_text("interval excludes 0: higher than the baseline")
    dots = page.locator("#forest g[data-pair]")
    assert dots.count() == pairs.count() == 10  # 2 groups x (3 fused metrics + 2 modalities)
    forest = dots.evaluate_all(
        """gs => gs.map(g => [g.dataset.pair.split(' − ')[0],
                             getComputedStyle(g.querySelector('circle')).stroke])"""
    )
    assert {label: rgb for label, rgb in forest} == {IGM: table[IGM], FEW: table[FEW]}
    assert page.locator("#forest line.zero").count() == 1
    # the curves: the same groups under the same labels in the same colours
    for key in ("val/fused/acc", "val/weak/acc", "train/weak/loss"):
        assert _legend(page, key) == table, key
    expect(page.locator("#curves-note")).to_contain_text("8 runs in 3 groups")
    # the 2-seed group: the best fused accuracy, but no interval and no star
    few = page.locator(f"#final tr[data-group='{FEW}']")
    expect(few).to_contain_text("too few seeds for an interval")
    assert few.locator("td.best").count() == 0
    assert all("[" not in t and "★" not in t for t in few.locator("td.num").all_inner_texts())
    assert "too few seeds" in (few.locator("td[data-metric='acc']").get_attribute("title") or "")
    assert page.locator(f"#final tr[data-group='{IGM}'] td.best").count() == 0  # not the lead
    expect(page.locator(f"#forest g[data-pair='{FEW} − {JOINT}']").first).to_contain_text(
        "too few seeds for an interval"
    )
    # igm's weak-modality loss is not logged while the strong modality trains (steps 101-200):
    # its line stops there, drawn on both sides (the x axis runs from step 1 to 300)
    loss = page.locator(".chart-panel[data-key='train/weak/loss']")
    assert int(loss.get_attribute("data-breaks")) >= 2  # igm and alternating
    across = [0.36 + 0.02 * i for i in range(15)]  # steps 108-193, inside the gap
    left, *gap, right = _line_pixels(page, "train/weak/loss", table[IGM], [0.2, *across, 0.8])
    assert left > 0 and right > 0 and gap == [0] * len(across), (left, gap, right)
    # the same key's joint line, logged at every step, runs across those steps
    assert all(_line_pixels(page, "train/weak/loss", table[JOINT], [0.2, 0.5, 0.8]))
    watched.shot(tmp_path / "compare-baseline-joint.png")

    # the baseline chosen on the page: every pair now reads "... − igm", and the URL keeps it
    page.select_option("#baseline", IGM)
    expect(page.locator(f"#pairs tr[data-pair='{JOINT} − {IGM}']")).to_have_count(5)
    assert "baseline=cx+%28method%3Digm%29" in page.url
    expect(page.locator("#baseline-note")).to_contain_text(f"baseline: {IGM} (chosen)")
    watched.shot(tmp_path / "compare-baseline-igm.png")


def test_prefixes_and_the_loading_state(lab: Lab, watched: Watched, tmp_path: Path) -> None:
    made = _made(lab)
    prefixes = ",".join(p["id"][:8] for p in made["sweep"]["data"])
    page = watched.page
    held: list[Route] = []

    def report(url: str) -> bool:
        return urlparse(url).path == "/compare"  # the API route, not the page /ui/compare

    page.route(report, lambda route: held.append(route))  # hold the report back
    with page.expect_response(lambda r: "/compare/curves" in r.url):
        page.goto(f"{lab.url}/ui/compare?ids={prefixes}")
    loading = page.locator("#compare-loading")
    expect(loading).to_be_visible()
    assert len(held) == 1, "the page asked for its report"
    # the curves are drawn as soon as they are in; the page says what it still waits for
    expect(page.locator("#curves .chart-panel[data-drawn='1']").first).to_be_visible()
    expect(loading).to_have_text("Loading the final metrics and pairs…")
    expect(loading).to_have_attribute("aria-busy", "true")
    assert page.get_attribute("body", "data-ready") is None
    assert page.locator("#final-panel").is_hidden()
    watched.shot(tmp_path / "compare-loading.png")
    held[0].continue_()
    page.unroute(report)
    page.wait_for_selector("body[data-ready='1']")
    expect(loading).to_be_hidden()
    table = _rgb(page, "#final tr[data-group] th .swatch", "backgroundColor")
    assert set(table) == {IGM, JOINT}
    assert _legend(page, "val/fused/acc") == table
    expect(page.locator("#curves-note")).to_contain_text("6 runs in 2 groups")
    expect(page.locator("#baseline-note")).to_contain_text(f"baseline: {JOINT} (joint training)")
    watched.shot(tmp_path / "compare-prefixes.png")


def test_dark_mode_draws_the_compare_page_light_on_dark(
    lab: Lab, browser: Any, tmp_path: Path
) -> None:
    made = _made(lab)
    with watching(browser, color_scheme="dark") as w:
        page = w.page
        page.goto(f"{lab.url}/ui/compare?tag={made['tag']}&baseline=joint")
        page.wait_for_selector("body[data-ready='1']")
        panel = ".chart-panel[data-key='val/fused/acc']"
        page.wait_for_selector(f"{panel}[data-drawn='1']")
        axis = page.evaluate(
            f"() => {{ const u = document.querySelector({panel!r}).uplot; "
            "return [u.axes[0].stroke(u, 0), u.axes[1].stroke(u, 1)]; }"
        )
        assert axis == ["#e4e7ec", "#e4e7ec"]  # the light text colour, not uPlot's black
        label = page.locator("#forest g[data-pair] text").first
        assert label.evaluate("t => getComputedStyle(t).fill") == "rgb(228, 231, 236)"
        hollow = page.locator("#forest circle.hollow").first  # a pair within its interval
        assert hollow.evaluate("c => getComputedStyle(c).fill") == "rgb(22, 27, 38)"
        w.shot(tmp_path / "compare-dark.png")
