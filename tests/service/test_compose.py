"""The lab deployment file: valid for docker-compose, healthchecks, fail-fast on missing secrets."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"

# docker-compose (v1) validates the file without a Docker engine; the README's test command does
# not install it, .ci/run does (and there nothing may skip)
pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="needs docker-compose: apt-get install -y --no-install-recommends docker-compose "
    "(.ci/run installs it)",
)


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=60,
    )


def test_compose_file_is_valid_and_fails_fast_without_the_password() -> None:
    ok = compose_config({"POSTGRES_PASSWORD": "secret"})
    assert ok.returncode == 0, ok.stderr
    config = yaml.safe_load(ok.stdout)
    services = config["services"]
    assert {"postgres", "redis", "mlflow", "api", "worker-gpu0", "worker-cpu"} <= set(services)
    for name in ("postgres", "redis", "mlflow", "api"):
        assert "healthcheck" in services[name], name
    assert services["api"]["environment"]["IGM_BROKER_URL"].startswith("redis://")
    assert (
        "--workers 1" in " ".join(services["mlflow"]["command"])
        if isinstance(services["mlflow"]["command"], list)
        else "--workers 1" in services["mlflow"]["command"]
    )
    gpu = services["worker-gpu0"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["device_ids"] == ["0"]
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    missing = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert missing.returncode != 0 and "set POSTGRES_PASSWORD" in missing.stderr
