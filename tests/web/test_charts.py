"""The experiment page's charts in real headless Chromium (see conftest.py): a line breaks across
a stage that trains another modality; zoom survives live updates; log y; PNG and CSV of a panel
(the CSV parses to the points drawn); the chart state in the URL, restored on load; the headline
row; every panel explained by the metric glossary. Each test saves screenshots under tmp_path.

The run: alternating training of strong, weak, strong (one epoch of 100 steps each), logged to
the service's MLflow store the way the trainer logs it: each modality's training loss only in its
own stages, validation at each epoch's end, gradient norms every 10 steps.
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from pathlib import Path
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from playwright.sync_api import expect

from igm_core.catalog.glossary import METRIC_GLOSSARY
from server import crud
from tests.web import data
from tests.web.conftest import Lab, Watched

STRONG_BLUE = (31, 119, 180)  # charts.js PALETTE[0]: the first modality, strong
LOSS = ".chart-panel[data-panel='train/loss']"


def history(last: int = 300) -> dict[str, tuple[list[int], list[float]]]:
    """Metrics of the alternating run up to step `last` (stages: strong 1-100, weak 101-200,
    strong 201-300)."""

    def loss(s: int, scale: float) -> float:
        return scale * math.exp(-s / 150) + 0.02 * math.sin(s)

    strong = [s for s in range(1, last + 1) if s <= 100 or s > 200]
    weak = [s for s in range(101, min(last, 200) + 1)]
    ends = [s for s in (100, 200, 300) if s <= last]
    return {
        "train/strong/loss": (strong, [loss(s, 2.0) for s in strong]),
        "train/weak/loss": (weak, [loss(s, 1.5) for s in weak]),
        "grad/strong/norm": (strong[9::10], [0.5 + 0.001 * s for s in strong[9::10]]),
        "grad/weak/norm": (weak[9::10], [0.05 + 0.0001 * s for s in weak[9::10]]),
        "val/fused/acc": (ends, [0.4 + 0.1 * i for i in range(len(ends))]),
        "val/strong/acc": (ends, [0.5 + 0.1 * i for i in range(len(ends))]),
        "val/weak/acc": (ends, [0.3 + 0.05 * i for i in range(len(ends))]),
        "gm/weak/plasticity_cos": ([s for s in (101,) if s <= last], [0.2][: int(last >= 101)]),
    }


def log(settings: Any, run_id: str, metrics: dict, after: int = 0) -> None:
    client = MlflowClient(settings.resolved_mlflow_uri())
    batch = [
        Metric(key, float(v), 1_700_000_000_000 + 100 * step, step)
        for key, (steps, values) in metrics.items()
        for step, v in zip(steps, values, strict=True)
        if step > after
    ]
    for i in range(0, len(batch), 1000):
        client.log_batch(run_id, metrics=batch[i : i + 1000])


def alternating_run(lab: Lab, *, finished: bool, last: int = 300) -> tuple[str, str]:
    """An experiment (alternating, three one-epoch stages) and its MLflow run holding `history`
    up to `last`; finished (with a summary) or still running. Returns (experiment id, run id)."""
    raw = data.spec(
        f"alt-{uuid.uuid4().hex[:6]}",
        method={"name": "alternating"},
        schedule={"stage_epochs": [1, 1, 1]},
    )
    eid = data.create(lab.sessions, raw, queue=f"{lab.queue}-charts")
    client = MlflowClient(lab.settings.resolved_mlflow_uri())
    found = client.get_experiment_by_name(lab.settings.project)
    exp_id = found.experiment_id if found else client.create_experiment(lab.settings.project)
    run_id = client.create_run(exp_id).info.run_id
    log(lab.settings, run_id, history(last))
    if finished:
        client.set_terminated(run_id)
        summary = data.summary(0.7, 0.8, 0.45)
        data.finish(lab.sessions, eid, "succeeded", run_id=run_id, summary=summary)
    else:
        with lab.sessions() as s:
            assert crud.claim(s, experiment_id=eid, worker=data.WORKER, stale_after_s=600)
            crud.set_mlflow_run(s, experiment_id=eid, run_id=run_id)
    return eid, run_id


def chart(page: Any, panel: str, script: str) -> Any:
    """`script` (a function of the panel's uPlot chart, `u`) evaluated in the page."""
    get = f"document.querySelector({panel!r}).uplot"
    return page.evaluate(f"() => {{ const u = {get}; return ({script})(u); }}")


def line_pixels(page: Any, panel: str, x0: float, x1: float, rgb: tuple[int, int, int]) -> int:
    """How many opaque pixels of colour `rgb` the panel's canvas holds between x values x0, x1."""
    script = """(u) => {
      const [x0, x1, r, g, b] = ARGS;
      const left = Math.round(u.valToPos(x0, "x", true));
      const right = Math.round(u.valToPos(x1, "x", true));
      const { top, height } = u.bbox;
      const img = u.ctx.getImageData(left, top, right - left, height).data;
      let n = 0;
      for (let i = 0; i < img.length; i += 4) {
        const d = Math.abs(img[i] - r) + Math.abs(img[i + 1] - g) + Math.abs(img[i + 2] - b);
        const near = d < 60;
        if (near && img[i + 3] > 200) n += 1;
      }
      return n;
    }""".replace("ARGS", repr([x0, x1, *rgb]))
    return chart(page, panel, script)


def open_experiment(watched: Watched, lab: Lab, eid: str, query: str = "") -> Any:
    page = watched.page
    page.goto(f"{lab.url}/ui/experiments/{eid}{query}")
    page.wait_for_selector("#charts[data-ready='1']")
    page.wait_for_selector(f"{LOSS}[data-drawn='1']")
    return page


def test_a_line_breaks_across_a_stage_of_another_modality(
    lab: Lab, watched: Watched, tmp_path: Path
) -> None:
    eid, _ = alternating_run(lab, finished=True)
    page = open_experiment(watched, lab, eid)
    # the strong line holds no value inside the weak stage: a break (null), not a span
    inside = chart(
        page,
        LOSS,
        """(u) => { const j = u.series.findIndex((s) => s.label === "strong");
          return u.data[0].map((x, i) => [x, u.data[j][i]]).filter(([x]) => x > 100 && x < 201)
            .map(([, v]) => v); }""",
    )
    assert inside and all(v is None for v in inside), inside[:5]
    assert page.get_attribute(LOSS, "data-breaks") == "1"
    # and nothing of it is drawn there, while it is drawn in its own stages
    assert line_pixels(page, LOSS, 120, 180, STRONG_BLUE) == 0
    assert line_pixels(page, LOSS, 20, 80, STRONG_BLUE) > 50
    assert line_pixels(page, LOSS, 220, 280, STRONG_BLUE) > 50
    # lines logged at every epoch's end (validation, of every modality) are never broken
    assert page.get_attribute(".chart-panel[data-panel='val/acc']", "data-breaks") == "0"
    # a line logged every 10 steps breaks across the other stage only, not between its points
    assert page.get_attribute(".chart-panel[data-panel='grad/norm']", "data-breaks") == "1"
    watched.shot(tmp_path / "experiment-breaks.png")


def test_headline_and_the_glossary_under_every_panel(
    lab: Lab, watched: Watched, tmp_path: Path
) -> None:
    eid, _ = alternating_run(lab, finished=True)
    page = open_experiment(watched, lab, eid)
    head = page.locator("#headline")
    expect(head.locator("[data-headline='fused'] .headline-value")).to_have_text("70.0%")
    expect(head.locator("[data-headline='acc-strong'] .headline-value")).to_have_text("80.0%")
    expect(head.locator("[data-headline='acc-weak'] .headline-value")).to_have_text("45.0%")
    expect(head.locator("[data-headline='acc-weak']")).to_contain_text("weakest")
    expect(head.locator("[data-headline='checkpoint'] .headline-value")).to_have_text(
        "stage 2, epoch 1"
    )
    expect(head.locator("[data-headline='grad-strong'] .headline-value")).to_have_text("0.8000")
    expect(head.locator("[data-headline='grad-weak']")).to_contain_text("step 200")
    # the headline comes before the run's facts
    assert page.evaluate(
        "() => !!(document.getElementById('headline').compareDocumentPosition("
        "document.getElementById('facts')) & Node.DOCUMENT_POSITION_FOLLOWING)"
    )
    panels = page.locator(".chart-panel")
    assert panels.count() == 4  # train/loss, grad/norm, val/acc, gm/plasticity_cos
    for i in range(panels.count()):
        panel = panels.nth(i)
        family, quantity = panel.get_attribute("data-panel").split("/")
        words = METRIC_GLOSSARY[f"{family}/{quantity}"]
        expect(panel.locator(".chart-help")).to_have_text(words)
    watched.shot(tmp_path / "experiment-headline.png")


def test_zoom_survives_live_updates_and_is_in_the_url(
    lab: Lab, watched: Watched, tmp_path: Path
) -> None:
    eid, run_id = alternating_run(lab, finished=False, last=150)
    page = open_experiment(watched, lab, eid)
    assert page.get_attribute(LOSS, "data-last-step") == "150"
    box = page.locator(f"{LOSS} .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.25 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.6 * box["width"], y, steps=5)
    page.mouse.up()
    expect(page.locator("#reset-zoom")).to_be_visible()
    lo, hi = (float(v) for v in page.get_attribute(LOSS, "data-zoom").split(":"))
    assert 0 < lo < hi < 150
    assert f"zoom={int(lo)}%3A{int(hi)}" in page.url
    scale = "(u) => [u.scales.x.min, u.scales.x.max]"
    assert chart(page, LOSS, scale) == [lo, hi]
    assert chart(page, ".chart-panel[data-panel='val/acc']", scale) == [lo, hi]  # every panel
    # the run goes on: new points arrive by polling, and the chosen range stays
    log(lab.settings, run_id, history(260), after=150)
    page.wait_for_function(
        f"() => Number(document.querySelector({LOSS!r}).dataset.lastStep) >= 260", timeout=30_000
    )
    assert chart(page, LOSS, "(u) => u.data[0].at(-1)") >= 260
    assert chart(page, LOSS, scale) == [lo, hi]
    watched.shot(tmp_path / "experiment-zoomed-live.png")
    page.click("#reset-zoom")
    expect(page.locator("#reset-zoom")).to_be_hidden()
    assert "zoom" not in page.url
    assert chart(page, LOSS, scale) == chart(page, LOSS, "(u) => [u.data[0][0], u.data[0].at(-1)]")
    with lab.sessions() as s:  # leave no running row behind
        crud.finish(s, experiment_id=eid, worker=data.WORKER, status="cancelled")


def test_log_y_png_and_csv_of_a_panel(lab: Lab, watched: Watched, tmp_path: Path) -> None:
    eid, _ = alternating_run(lab, finished=True)
    page = open_experiment(watched, lab, eid)
    button = page.locator(f"{LOSS} button.log-y")
    button.click()
    expect(page.locator(LOSS)).to_have_attribute("data-log-y", "1")
    expect(button).to_have_attribute("aria-pressed", "true")
    assert chart(page, LOSS, "(u) => u.scales.y.distr") == 3
    assert "logy=train%2Floss" in page.url
    button.click()
    expect(page.locator(LOSS)).to_have_attribute("data-log-y", "")
    assert chart(page, LOSS, "(u) => u.scales.y.distr") == 1 and "logy" not in page.url

    with page.expect_download() as png:
        page.click(f"{LOSS} button.png")
    image = Path(png.value.path()).read_bytes()
    assert image[:8] == b"\x89PNG\r\n\x1a\n" and len(image) > 2000
    assert png.value.suggested_filename.endswith("-train_loss.png")
    (tmp_path / "panel.png").write_bytes(image)

    with page.expect_download() as got:
        page.click(f"{LOSS} button.csv")
    rows = list(csv.reader(io.StringIO(Path(got.value.path()).read_text())))
    assert rows[0] == ["step", "train/strong/loss", "train/weak/loss"]
    logged = history()
    for j, key in enumerate(rows[0][1:], start=1):
        steps, values = logged[key]
        points = [(int(r[0]), float(r[j])) for r in rows[1:] if r[j] != ""]
        assert [s for s, _ in points] == steps
        assert all(abs(v - w) < 1e-9 for (_, v), w in zip(points, values, strict=True))
    # the same points the chart holds (its added break steps are not rows)
    drawn = chart(
        page,
        LOSS,
        "(u) => u.data[0].map((x, i) => [x, u.data[1][i], u.data[2][i]])"
        ".filter(([, a, b]) => typeof a === 'number' || typeof b === 'number')",
    )
    assert [int(r[0]) for r in rows[1:]] == [x for x, _, _ in drawn]


def test_chart_state_is_restored_from_the_url(lab: Lab, watched: Watched, tmp_path: Path) -> None:
    eid, _ = alternating_run(lab, finished=True)
    query = "?x=epoch&smooth=0.5&points=500&filter=loss&zoom=50%3A250&logy=train%2Floss"
    page = open_experiment(watched, lab, eid, query)
    assert page.input_value("#x-axis") == "epoch"
    assert page.input_value("#smoothing") == "0.5"
    assert page.input_value("#max-points") == "500"
    assert page.input_value("#key-filter") == "loss"
    expect(page.locator(".chart-panel[data-panel='val/acc']")).to_be_hidden()
    expect(page.locator(LOSS)).to_be_visible()
    expect(page.locator(LOSS)).to_have_attribute("data-log-y", "1")
    lo, hi = chart(page, LOSS, "(u) => [u.scales.x.min, u.scales.x.max]")
    assert abs(lo - 0.5) < 1e-9 and abs(hi - 2.5) < 1e-9  # steps 50 and 250, in epochs
    expect(page.locator("#zoom-note")).to_have_text("steps 50–250")
    # smoothed as asked: the drawn values are not the logged ones
    first = chart(page, LOSS, "(u) => u.data[1].slice(0, 5)")
    assert (
        first[0] == history()["train/strong/loss"][1][0]
        and first[4] != history()["train/strong/loss"][1][4]
    )
    assert "x=epoch" in page.url and "zoom=50%3A250" in page.url  # kept as it was
    watched.shot(tmp_path / "experiment-from-url.png")
