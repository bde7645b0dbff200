"""MLflow slow or down never reaches the API's other routes: the routes that need it answer 503
within the configured timeout, without holding a database connection or the threads that serve
every other route. The MLflow server here is a black hole (accepts connections, never answers),
the worst case: a stopped server refuses at once."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from igm_core.spec import resolve_spec
from server import crud
from server.db import session_factory
from server.main import create_app
from tests.service.conftest import make_settings, served, sqlite_url

SPEC = {"name": "o", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}


class BlackHole:
    """A TCP server that accepts every connection and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def outage(url: str, experiment_id: str, requests: int = 40) -> tuple[list, list[float]]:
    """`requests` concurrent metric requests while GET /experiments is polled until they are
    all answered: ((status, seconds, body) of each, seconds of each list). bench/bench_outage.py
    prints these figures."""

    def metrics(i: int) -> tuple[int, float, dict]:
        t0 = time.monotonic()
        params = {"keys": "train/fused/loss"} if i % 2 else {}
        with httpx.Client(base_url=url, timeout=30) as own:
            res = own.get(f"/experiments/{experiment_id}/metrics", params=params)
        return res.status_code, time.monotonic() - t0, res.json()

    with ThreadPoolExecutor(requests) as pool, httpx.Client(base_url=url, timeout=30) as http:
        pending = [pool.submit(metrics, i) for i in range(requests)]
        listed = []
        while not all(f.done() for f in pending):
            t0 = time.monotonic()
            assert http.get("/experiments").status_code == 200
            listed.append(time.monotonic() - t0)
            time.sleep(0.05)
        return [f.result() for f in pending], listed


def hanging_store_app(tmp_path: Path, port: int, timeout_s: float) -> tuple[Any, str]:
    """An app whose MLflow store is the black hole at `port`, and an experiment with a run."""
    settings = make_settings(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        mlflow_tracking_uri=f"http://127.0.0.1:{port}",
        mlflow_timeout_s=timeout_s,
        mlflow_threads=4,
    )
    with session_factory(settings.resolved_database_url())() as s:
        exp = crud.create_experiment(s, spec=resolve_spec(SPEC), queue="cpu", max_attempts=3)
        crud.set_mlflow_run(s, experiment_id=exp.id, run_id="0" * 32, attempt=1)
    return create_app(settings), exp.id


def test_mlflow_hanging_gives_fast_503s_and_leaves_other_routes_alone(tmp_path: Path) -> None:
    hole = BlackHole()
    # long enough that a list which waited for MLflow would take a whole timeout, where it
    # usually takes milliseconds (seconds on a loaded machine): the list's hang guard
    timeout_s = 5.0
    app, eid = hanging_store_app(tmp_path, hole.port, timeout_s)
    try:
        with served(app) as url, httpx.Client(base_url=url, timeout=30) as http:
            answers, listed = outage(url, eid)
            assert {code for code, _, _ in answers} == {503}
            assert all(body["detail"].startswith("the MLflow store") for _, _, body in answers)
            # every request's client timeout is the hang guard; how long they took is
            # bench/bench_outage.py's figure, not an assertion
            assert listed, "no list answered while MLflow hung"
            assert http.get(f"/experiments/{eid}/artifacts").status_code == 503
            assert http.get(f"/experiments/{eid}/timeline").status_code == 503
            assert http.get(f"/experiments/{eid}").status_code == 200
    finally:
        hole.close()
