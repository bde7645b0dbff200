"""Benchmark of the dashboard, measured in real headless Chromium (Debian's /usr/bin/chromium driven
by Playwright), on loopback, against the API served by uvicorn in its own process.

    python bench/bench_dashboard.py [--rounds 5] [--screenshots docs/] [--only compare]

Prints, each as the median (and max) of --rounds page loads:
1. the experiments page usable (its first page of 50 rows drawn) with 10,000 experiments in
   PostgreSQL (a database of its own, dropped afterwards);
2. an experiment page with every chart drawn, for a 100,000-step run with 20 metric keys of
   100,000 points each (plus 3 validation keys at the epoch ends), in an MLflow SQLite store
   written with log_batch; charts ask for 1,000 points per line;
3. the delay from a metric logged by a worker's tracker (igm_core's MlflowTracker, as the worker
   uses it) to its point on the open chart of a running experiment;
4. the compare page with 20 runs (4 methods x 5 seeds) drawn: final metrics, pairs against the
   baseline, bands of 5 keys; reloads, and the cold first open (a fresh API process and a fresh
   browser context each time: nothing cached), with the time its loading state appears;
5. the run table (/ui/table) over the same 10,000 experiments with 5 chosen columns (spec values
   and result metrics read from the JSON columns), sorted by test accuracy, usable (its first 50
   rows drawn); again with two numeric conditions on JSON values; and GET /experiments with the
   same query alone.
Targets: 1 s, 2 s, 3 s, 2 s and 1 s. With --screenshots, saves a PNG of each page there.
`--only table` prepares the 10,000 rows only and measures the run table (no MLflow runs);
`--only compare` the figures of 4 alone (no 10,000 rows, no 100k-step runs: a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_service import PG_ADMIN, free_port, serve  # noqa: E402

from igm_core import catalog  # noqa: E402
from igm_core.spec import resolve_spec  # noqa: E402
from server import crud, migrations  # noqa: E402
from server.db import session_factory  # noqa: E402
from server.models import Experiment, ExperimentTag, utcnow  # noqa: E402
from server.settings import Settings  # noqa: E402
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

STEPS = 100_000
EPOCHS = 100
MODS = ("audio", "visual")
PER_STEP_KEYS = [
    *(f"train/{m}/loss" for m in MODS),
    "train/fused/loss_mixup",
    "train/fused/loss_flat",
    *(f"grad/{m}/{q}" for m in MODS for q in ("norm", "encoder_norm", "head_norm")),
    *(f"gm/{m}/{q}" for m in MODS for q in ("norm_before", "norm_after", "kept_ratio")),
    *(f"sam/{m}/sharpness" for m in MODS),
    "ogm/audio/coeff",
    "ogm/visual/coeff",
]
VAL_KEYS = ["val/fused/acc", "val/audio/acc", "val/visual/acc"]
LRS = (0.1, 0.03, 0.01, 0.003, 0.001)
TABLE_KEYS = "test.acc,test.modality_acc.visual,optimizer.lr,seed,run.wall_time_s"
TABLE_QUERY = f"columns={TABLE_KEYS}&sort=-test.acc"
TABLE_MATCH = "&match=test.acc%3E%3D0.8&match=optimizer.lr%3C0.05"
WORKER = "bench@dashboard"


def spec(name: str, method: str = "igm", seed: int = 0) -> dict[str, Any]:
    joint = catalog.method_rules(method).schedule == "epochs"  # one stage (MLA: per-step)
    schedule = {"epochs": EPOCHS} if joint else {"stage_epochs": [10] * 10}
    return {
        "name": name,
        "dataset": {"name": "synthetic", "params": {"modalities": list(MODS)}},
        "method": {"name": method},
        "schedule": schedule,
        "seed": seed,
    }


def summary(rng: np.random.Generator, level: float) -> dict[str, Any]:
    acc = float(level + rng.normal(0, 0.01))
    mods = {"audio": acc - 0.05, "visual": acc - 0.25}
    test = {
        "acc": acc,
        "macro_f1": acc - 0.02,
        "map": acc + 0.01,
        "loss": 1 - acc,
        "modality_acc": mods,
    }
    return {
        "test": test,
        "best": {"stage": 9, "epoch": 9, "score": acc},
        "run": {"wall_time_s": 1800.0},
    }


def seed_rows(settings: Settings, n: int) -> None:
    """n experiments of every status, methods and tags mixed, in one bulk insert."""
    rng = np.random.default_rng(0)
    methods = ("igm", "mla", "joint", "ogm_ge")
    # 4 methods x 5 learning rates x 5 seeds, so that the run table's columns differ
    specs = {
        (m, lr, seed): resolve_spec({**spec(f"{m}-run", m, seed), "optimizer": {"lr": lr}})
        for m in methods
        for lr in LRS
        for seed in range(5)
    }
    statuses = ["succeeded"] * 6 + ["failed", "cancelled", "queued", "running"]
    rows, tags = [], []
    for i in range(n):
        method = methods[i % 4]
        resolved = specs[(method, LRS[i // 4 % len(LRS)], i // 20 % 5)]
        status = statuses[i % len(statuses)]
        eid = uuid.uuid4().hex
        progress = {
            "stage": 3,
            "n_stages": 10,
            "epoch": 4,
            "epochs": 10,
            "step": 34_000,
            "total_steps": STEPS,
            "fraction": 0.34,
            "eta_s": 3400.0,
            "val_acc": 0.71,
            "modalities": ["visual"],
        }
        rows.append(
            {
                "id": eid,
                "name": f"{method}-run-{i}",
                "method": method,
                "dataset": "synthetic",
                "spec": resolved.to_dict(),
                "spec_hash": resolved.hash(),
                "status": status,
                "priority": 5,
                "queue": "cpu",
                "attempts": 1,
                "max_attempts": 3,
                "cancel_requested": False,
                "created_at": utcnow(),
                "updated_at": utcnow(),
                "started_at": utcnow(),
                "progress": progress if status != "queued" else None,
                "summary": summary(rng, 0.8) if status == "succeeded" else None,
                "error": "RuntimeError: out of memory" if status == "failed" else None,
            }
        )
        tags.append({"experiment_id": eid, "tag": f"batch-{i % 7}"})
    with session_factory(settings.resolved_database_url())() as s:
        s.execute(insert(Experiment), rows)
        s.execute(insert(ExperimentTag), tags)
        s.commit()


def log_history(client: Any, run_id: str, keys: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    from mlflow.entities import Metric

    batch: list[Any] = []
    for key, (steps, values) in keys.items():
        for s, v in zip(steps.tolist(), values.tolist(), strict=True):
            batch.append(Metric(key, v, 1_700_000_000_000 + 10 * s, s))
            if len(batch) == 1000:
                client.log_batch(run_id, metrics=batch)
                batch = []
    if batch:
        client.log_batch(run_id, metrics=batch)


def histories(rng: np.random.Generator, steps: int, level: float, every: int = 1) -> dict[str, Any]:
    """Per-step keys logged every `every` steps (the spec's log_every), validation keys at the
    epoch ends."""
    s = np.arange(every, steps + 1, every)
    decay = np.exp(-4 * s / steps)
    out = {k: (s, 0.2 + decay * (1 + 0.3 * rng.standard_normal(len(s)))) for k in PER_STEP_KEYS}
    ends = np.arange(1, EPOCHS + 1) * (steps // EPOCHS)
    for i, k in enumerate(VAL_KEYS):
        base = level - 0.1 * i
        out[k] = (
            ends,
            base - (base - 0.25) * np.exp(-5 * ends / steps) + rng.normal(0, 0.005, EPOCHS),
        )
    return out


def log_run(settings: Settings, hist: dict) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.resolved_mlflow_uri())
    found = client.get_experiment_by_name(settings.project)
    exp_id = found.experiment_id if found else client.create_experiment(settings.project)
    run_id = client.create_run(exp_id).info.run_id
    log_history(client, run_id, hist)
    return run_id


def runs(settings: Settings, only: str = "all") -> dict[str, Any]:
    """The MLflow runs (logged once, kept in the store folder for later rounds)."""
    saved = settings.data_dir / "runs.json"
    out: dict[str, Any] = json.loads(saved.read_text()) if saved.is_file() else {}
    rng = np.random.default_rng(1)
    if only == "compare":
        if "cmp" not in out:
            out["cmp"] = compare_runs(settings, rng)
            saved.write_text(json.dumps(out))
        return out
    if "big10" not in out:
        out["big10"] = log_run(settings, histories(rng, STEPS, 0.85, every=10))
        saved.write_text(json.dumps(out))
    if "big" in out:
        return out
    out["big"] = log_run(settings, histories(rng, STEPS, 0.85))
    out["cmp"] = compare_runs(settings, rng)
    saved.write_text(json.dumps(out))
    return out


def compare_runs(settings: Settings, rng: np.random.Generator) -> list[list[Any]]:
    """20 runs of 10,000 steps for the compare page: 4 methods x 5 seeds."""
    out = []
    for g, method in enumerate(("igm", "mla", "joint", "ogm_ge")):
        for seed in range(5):
            hist = histories(rng, 10_000, 0.85 - 0.03 * g)
            hist = {k: v for k, v in hist.items() if k in VAL_KEYS or k.startswith("train/")}
            out.append([method, seed, g, log_run(settings, hist)])
    return out


def new_row(sessions: Any, raw: dict, run_id: str, summ: dict | None, tag: str) -> str:
    """An experiment row claimed by a worker and pointed at `run_id`; finished when `summ`."""
    with sessions() as s:
        exp = crud.create_experiment(
            s, spec=resolve_spec(raw), tags=[tag], queue="cpu", max_attempts=3
        )
        crud.claim(s, experiment_id=exp.id, worker=WORKER, stale_after_s=3600)
        crud.set_mlflow_run(s, experiment_id=exp.id, run_id=run_id)
        if summ is not None:
            crud.finish(s, experiment_id=exp.id, worker=WORKER, status="succeeded", summary=summ)
        return exp.id


def timed(page: Any, url: str, ready: str, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        page.goto("about:blank")
        t0 = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_selector(ready, timeout=60_000)
        times.append(time.perf_counter() - t0)
    return times


def live_delay(page: Any, settings: Settings, run_id: str, start: int, rounds: int) -> list[float]:
    """Log one point at a time with the worker's tracker; time until the open chart shows it."""
    from igm_core.tracking import MlflowTracker

    tracker = MlflowTracker(settings.resolved_mlflow_uri(), settings.project, run_id=run_id)
    panel = ".chart-panel[data-panel='train/loss']"
    delays = []
    for i in range(rounds):
        step = start + i + 1
        t0 = time.perf_counter()
        tracker.log_metrics({"train/audio/loss": 0.3, "train/visual/loss": 0.4}, step)
        while int(page.get_attribute(panel, "data-last-step") or -1) < step:
            if time.perf_counter() - t0 > 30:
                raise RuntimeError(f"step {step} never reached the chart")
            time.sleep(0.02)
        delays.append(time.perf_counter() - t0)
        time.sleep(0.3 * (i % 4))  # log at varying phases of the page's 1 s poll
    tracker.flush(10)
    return delays


def line(what: str, times: list[float], target: float) -> str:
    med, worst = statistics.median(times), max(times)
    verdict = "met" if med < target else "MISSED"
    return f"{what:<80} median {med:6.3f} s  max {worst:6.3f} s  (target < {target:g} s: {verdict})"


READY = {
    "experiments": "#experiments[data-ready='1']",
    "experiment": "#charts[data-ready='1']",
    "compare": "body[data-ready='1']",
    "table": "#run-table[data-ready='1']",
}


def api_times(url: str, rounds: int) -> list[float]:
    """GET `url` alone (the JSON the run table reads), `rounds` times."""
    times = []
    with httpx.Client(timeout=60) as client:
        for _ in range(rounds):
            t0 = time.perf_counter()
            client.get(url).raise_for_status()
            times.append(time.perf_counter() - t0)
    return times


def measure_table(page: Any, base: str, rounds: int) -> list[str]:
    """The run table's figures: the page usable, with conditions, and its JSON alone."""
    url = f"{base}/ui/table?{TABLE_QUERY}"
    page_s = timed(page, url, READY["table"], rounds)
    match_s = timed(page, url + TABLE_MATCH, READY["table"], rounds)
    shown = page.locator("#rows tr[data-id]").count()
    json_s = api_times(f"{base}/experiments?{TABLE_QUERY}&limit=50", rounds)
    json_match_s = api_times(f"{base}/experiments?{TABLE_QUERY}{TABLE_MATCH}&limit=50", rounds)
    what = (
        "run table usable, 10,000 experiments, 5 chosen columns, sorted by test.acc",
        "  the same with 2 numeric conditions (test.acc>=0.8, optimizer.lr<0.05)",
        "  GET /experiments with the same 5 columns and sort, 50 rows (JSON only)",
        "  the same with the 2 conditions (JSON only)",
    )
    times = (page_s, match_s, json_s, json_match_s)
    return [
        *(line(w, t, 1.0) for w, t in zip(what, times, strict=True)),
        f"  (rows drawn with the conditions: {shown})",
    ]


def prepare(settings: Settings, only: str = "all") -> tuple[str, str, str]:
    """Rows and runs: the 100k-step experiment's id, its MLflow run id, and the id of the
    100k-step experiment that logged every 10 steps (empty with --only compare)."""
    migrations.upgrade(settings.resolved_database_url())
    sessions = session_factory(settings.resolved_database_url())
    t0 = time.perf_counter()
    logged = runs(settings, only)
    rng = np.random.default_rng(2)
    for method, seed, g, run_id in logged["cmp"]:
        summ = summary(rng, 0.85 - 0.03 * g)
        new_row(sessions, spec(f"cmp-{method}", method, seed), run_id, summ, "bench-cmp")
    if only == "compare":
        print(f"data: 20 compare runs in {time.perf_counter() - t0:.0f} s", flush=True)
        return "", "", ""
    seed_rows(settings, 10_000)
    big = new_row(sessions, spec("igm-100k"), logged["big"], None, "bench-big")
    big10 = new_row(sessions, spec("igm-100k-log10"), logged["big10"], None, "bench-big")
    print(
        f"data: 10,000 rows and a {STEPS:,}-step run ({len(PER_STEP_KEYS)} keys of {STEPS:,} "
        f"points + {len(VAL_KEYS)} per epoch) in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    return big, logged["big"], big10


def cold(page: Any, url: str, ready: str, rounds: int, restart: Any) -> list[float]:
    """Loads each right after a fresh API process started: nothing cached in the API."""
    times = []
    for _ in range(rounds):
        page.goto("about:blank")  # no page polls the API while it restarts
        restart()
        times.extend(timed(page, url, ready, 1))
    return times


def cold_compare(browser: Any, url: str, rounds: int, restart: Any) -> tuple[list, list]:
    """The compare page's first open on a fresh API process, in a fresh browser context (no
    cached files): seconds until its loading state shows, and until it is drawn."""
    shown, drawn = [], []
    for _ in range(rounds):
        restart()
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        t0 = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_selector("#compare-loading[aria-busy='true']", timeout=60_000)
        shown.append(time.perf_counter() - t0)
        page.wait_for_selector(READY["compare"], timeout=60_000)
        drawn.append(time.perf_counter() - t0)
        context.close()
    return shown, drawn


def measure_compare(base: str, args: Any, restart: Any) -> list[str]:
    """The compare figures alone (--only compare)."""
    from playwright.sync_api import sync_playwright

    url = f"{base}/ui/compare?tag=bench-cmp"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        shown, cold_s = cold_compare(browser, url, args.rounds, restart)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        warm_s = timed(page, url, READY["compare"], args.rounds)
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            page.goto(url)
            page.wait_for_selector(READY["compare"], timeout=60_000)
            page.screenshot(path=str(args.screenshots / "dashboard-compare.png"))
        browser.close()
    return [
        line("cold compare open (20 runs): loading state shown", shown, 2.0),
        line("cold compare open (20 runs): drawn", cold_s, 2.0),
        line("compare page, 20 runs (4 methods x 5 seeds) drawn, reloads", warm_s, 2.0),
        f"console errors: {len(errors)}" + (f" {errors[:3]}" if errors else ""),
    ]


def measure(
    settings: Settings, base: str, big: tuple[str, str, str], args: Any, restart: Any
) -> list[str]:
    """The four figures, in one browser; screenshots when asked."""
    from playwright.sync_api import sync_playwright

    urls = {
        "experiments": f"{base}/",
        "experiment": f"{base}/ui/experiments/{big[0]}",
        "compare": f"{base}/ui/compare?tag=bench-cmp",
    }
    n, keys = args.rounds, len(PER_STEP_KEYS) + len(VAL_KEYS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        list_s = timed(page, urls["experiments"], READY["experiments"], n)
        charts_cold = cold(page, urls["experiment"], READY["experiment"], n, restart)
        log10_cold = cold(page, f"{base}/ui/experiments/{big[2]}", READY["experiment"], n, restart)
        charts_s = timed(page, urls["experiment"], READY["experiment"], n)
        log10_s = timed(page, f"{base}/ui/experiments/{big[2]}", READY["experiment"], n)
        page.goto(urls["experiment"])
        page.wait_for_selector(READY["experiment"], timeout=60_000)
        last = int(page.get_attribute(".chart-panel[data-panel='train/loss']", "data-last-step"))
        delays = live_delay(page, settings, big[1], last, max(8, 2 * n))
        compare_s = timed(page, urls["compare"], READY["compare"], n)
        table = measure_table(page, base, n)
        urls["table"] = f"{base}/ui/table?{TABLE_QUERY}"
        _, compare_cold = cold_compare(browser, urls["compare"], n, restart)
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            urls["experiments"] += "?tag=batch-1"  # every status, running ones with progress
            for shot, url in urls.items():
                page.goto(url)
                page.wait_for_selector(READY[shot], timeout=60_000)
                page.screenshot(path=str(args.screenshots / f"dashboard-{shot}.png"))
        browser.close()
    return [
        line("experiments page usable, 10,000 experiments (PostgreSQL)", list_s, 1.0),
        # first loads (a fresh API each time) read every point; reloads find the downsampled
        # histories cached
        line(
            f"experiment page, all charts ({keys} keys, 100k steps, log_every 1), first load",
            charts_cold,
            2.0,
        ),
        line(
            f"experiment page, all charts ({keys} keys, 100k steps, log_every 1), reloads",
            charts_s,
            2.0,
        ),
        line(
            f"experiment page, all charts ({keys} keys, 100k steps, log_every 10), first load",
            log10_cold,
            2.0,
        ),
        line(
            f"experiment page, all charts ({keys} keys, 100k steps, log_every 10), reloads",
            log10_s,
            2.0,
        ),
        line("metric logged by a worker -> its point on the open chart", delays, 3.0),
        line("compare page, 20 runs (4 methods x 5 seeds) drawn", compare_s, 2.0),
        line("cold compare open (20 runs): drawn", compare_cold, 2.0),
        *table,
        f"console errors: {len(errors)}" + (f" {errors[:3]}" if errors else ""),
    ]


def measure_only_table(base: str, args: Any) -> list[str]:
    """--only table: the run table's figures alone, in one browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        results = measure_table(page, base, args.rounds)
        if args.screenshots:
            args.screenshots.mkdir(parents=True, exist_ok=True)
            page.goto(f"{base}/ui/table?{TABLE_QUERY}")
            page.wait_for_selector(READY["table"], timeout=60_000)
            page.screenshot(path=str(args.screenshots / "dashboard-table.png"))
        browser.close()
    return [*results, f"console errors: {len(errors)}" + (f" {errors[:3]}" if errors else "")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--screenshots", type=Path, default=None)
    parser.add_argument(
        "--store", type=Path, default=None, help="keep the MLflow store here and reuse it"
    )
    parser.add_argument(
        "--only",
        choices=("all", "table", "compare"),
        default="all",
        help="table: the run table alone; compare: the compare figures alone",
    )
    args = parser.parse_args()
    name = f"igm_dash_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    tmp = Path(tempfile.mkdtemp(prefix="igm-bench-dash-"))
    store = args.store or tmp
    store.mkdir(parents=True, exist_ok=True)
    db = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    settings = Settings(data_dir=store, database_url=db)
    proc: subprocess.Popen | None = None
    try:
        start_load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        if args.only == "table":
            migrations.upgrade(settings.resolved_database_url())
            seed_rows(settings, 10_000)
        else:
            big = prepare(settings, args.only)
        port = free_port()
        proc = serve(settings, port)

        def restart() -> None:
            nonlocal proc
            proc.terminate()
            proc.wait(10)
            proc = serve(settings, port)

        base = f"http://127.0.0.1:{port}"
        if args.only == "table":
            results = measure_only_table(base, args)
        elif args.only == "compare":
            results = measure_compare(base, args, restart)
        else:
            results = measure(settings, base, big, args, restart)
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"\nChromium {CHROMIUM}, one page at a time, API in its own uvicorn process; "
            f"{args.rounds} rounds each; {os.cpu_count()} cores; load average (1/5/15 min) "
            f"before: {start_load}, after: {load}\n" + "\n".join(results)
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
