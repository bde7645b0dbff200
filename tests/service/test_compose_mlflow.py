"""The lab's MLflow server as docker-compose.yml runs it (`igm mlflow-server` with
docker/mlflow-auth.ini), started for real on a free port with a SQLite store: every request but
/health needs the admin account's credentials, a Host outside IGM_MLFLOW_ALLOWED_HOSTS gets 403,
and MLflow's own client (what the API and the workers use) logs in with MLFLOW_TRACKING_USERNAME /
MLFLOW_TRACKING_PASSWORD."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from launcher.mlflow_server import server_command

pytestmark = pytest.mark.slow  # a real MLflow server with its auth app: the slow lane (-m slow)

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ("igm", "admin-secret")
SEARCH = "api/2.0/mlflow/experiments/search?max_results=1"
# hang guard: each check of a password hashes it (PBKDF2), slow on a loaded 2-core machine
TIMEOUT = httpx.Timeout(120)
LOG_A_METRIC = """
import mlflow
client = mlflow.MlflowClient()
exp = client.create_experiment("smoke")
run = client.create_run(exp)
client.log_metric(run.info.run_id, "loss", 0.5, step=1)
print("logged", run.info.run_id)
"""


def get(url: str, **kwargs) -> httpx.Response:
    return httpx.get(url, timeout=TIMEOUT, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("IGM_", "MLFLOW_"))}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    ini = (ROOT / "docker/mlflow-auth.ini").read_text()
    ini, n = re.subn(
        r"^database_uri = .*$", f"database_uri = sqlite:///{tmp}/auth.db", ini, flags=re.M
    )
    assert n == 1
    (tmp / "auth.ini").write_text(ini)
    env = {
        **clean_env(),
        "MLFLOW_AUTH_CONFIG_PATH": str(tmp / "auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "IGM_MLFLOW_ALLOWED_HOSTS": json.dumps([f"mlflow:{port}", f"127.0.0.1:{port}"]),
    }
    args = ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    args += ["--backend-store-uri", f"sqlite:///{tmp}/mlflow.db"]
    args += ["--artifacts-destination", str(tmp / "artifacts"), "--serve-artifacts"]
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher", "mlflow-server", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # hang guard: it starts in seconds
        while True:
            assert proc.poll() is None, (tmp / "server.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp / "server.log").read_text()
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(60)
        log.close()


def test_every_request_but_health_needs_the_credentials(server: str) -> None:
    assert get(f"{server}/health").status_code == 200
    assert get(f"{server}/{SEARCH}").status_code == 401
    assert get(f"{server}/{SEARCH}", auth=(ADMIN[0], "wrong")).status_code == 401
    assert get(f"{server}/{SEARCH}", auth=ADMIN).status_code == 200
    # the UI's pages too (what the dashboard links to)
    assert get(f"{server}/ajax-api/2.0/mlflow/experiments/search").status_code == 401


def test_only_the_allowed_hosts_are_answered(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    named = get(f"{server}/{SEARCH}", auth=ADMIN, headers={"Host": f"mlflow:{port}"})
    assert named.status_code == 200
    other = get(f"{server}/{SEARCH}", auth=ADMIN, headers={"Host": "evil.example"})
    assert other.status_code == 403


def test_mlflows_client_logs_in_with_the_tracking_credentials(server: str) -> None:
    env = {**clean_env(), "MLFLOW_TRACKING_URI": server}
    run = [sys.executable, "-c", LOG_A_METRIC]
    kwargs = {"capture_output": True, "text": True, "timeout": 300, "cwd": ROOT}
    anonymous = subprocess.run(run, env=env, **kwargs)
    assert anonymous.returncode != 0 and "401" in anonymous.stderr + anonymous.stdout
    creds = {"MLFLOW_TRACKING_USERNAME": ADMIN[0], "MLFLOW_TRACKING_PASSWORD": ADMIN[1]}
    logged = subprocess.run(run, env={**env, **creds}, **kwargs)
    assert logged.returncode == 0, logged.stderr
    assert logged.stdout.startswith("logged ")


def test_the_command_owns_auth_and_hosts() -> None:
    command = server_command(["--port", "5000"], ["mlflow:5000", "localhost:5000"])
    assert command == [
        "server",
        "--port",
        "5000",
        "--app-name",
        "basic-auth",
        "--allowed-hosts",
        "mlflow:5000,localhost:5000",
    ]
    for given in (["--allowed-hosts", "*"], ["--app-name=none"]):
        with pytest.raises(ValueError, match="is set by igm mlflow-server"):
            server_command(given, ["mlflow:5000"])
    with pytest.raises(ValueError, match="empty"):
        server_command([], [])
