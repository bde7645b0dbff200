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


def test_mlflow_hanging_gives_fast_503s_and_leaves_other_routes_alone(tmp_path: Path) -> None:
    hole = BlackHole()
    settings = make_settings(
        tmp_path,
        database_url=sqlite_url(tmp_path),
        mlflow_tracking_uri=f"http://127.0.0.1:{hole.port}",
        mlflow_timeout_s=1.0,
        mlflow_threads=4,
    )
    with session_factory(settings.resolved_database_url())() as s:
        exp = crud.create_experiment(s, spec=resolve_spec(SPEC), queue="cpu", max_attempts=3)
        crud.set_mlflow_run(s, experiment_id=exp.id, run_id="0" * 32, attempt=1)
    try:
        with served(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as http:

            def metrics(i: int) -> tuple[int, float]:
                t0 = time.monotonic()
                params = {"keys": "train/fused/loss"} if i % 2 else {}
                with httpx.Client(base_url=url, timeout=30) as own:
                    code = own.get(f"/experiments/{exp.id}/metrics", params=params).status_code
                return code, time.monotonic() - t0

            with ThreadPoolExecutor(40) as pool:
                pending = [pool.submit(metrics, i) for i in range(40)]
                listed = []
                while not all(f.done() for f in pending):
                    t0 = time.monotonic()
                    assert http.get("/experiments").status_code == 200
                    listed.append(time.monotonic() - t0)
                    time.sleep(0.05)
                answers = [f.result() for f in pending]
            assert {code for code, _ in answers} == {503}
            # each waited at most about one timeout (plus the machine's scheduling)
            assert max(took for _, took in answers) < 10
            assert listed and max(listed) < 1.0, listed
            t0 = time.monotonic()
            assert http.get(f"/experiments/{exp.id}/artifacts").status_code == 503
            assert http.get(f"/experiments/{exp.id}/timeline").status_code == 503
            assert time.monotonic() - t0 < 5
            assert http.get(f"/experiments/{exp.id}").status_code == 200
    finally:
        hole.close()
