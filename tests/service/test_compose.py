"""The lab deployment file: valid for docker-compose, the images used where they belong, the GPU
worker under the `gpu` profile (a host without the NVIDIA runtime starts everything else), MLflow
behind its basic auth and published on loopback only, healthchecks everywhere, Redis persistent
and never evicting, fail-fast on missing secrets. Everything through `docker-compose config`: no
Docker engine needed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "REDIS_PASSWORD": "redis-secret",
    "MLFLOW_PASSWORD": "mlflow-secret",
}
# what .env may set that changes the output below: the tests start from a clean slate
LAB_VARIABLES = re.compile(r"^(IGM_|MLFLOW_|API_PUBLISH|PYTHON_IMAGE|PIP_|TORCH_|POSTGRES_|REDIS_)")

# docker-compose (v1) validates the file without a Docker engine; the README's test command does
# not install it, .ci/run does (and there nothing may skip)
pytestmark = pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="needs docker-compose: apt-get install -y --no-install-recommends docker-compose "
    "(.ci/run installs it)",
)


def compose_config(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not LAB_VARIABLES.match(k)}
    # an empty env file: a checkout's own .env (a lab's settings) changes nothing here
    with tempfile.NamedTemporaryFile(suffix=".env") as empty:
        return subprocess.run(
            ["docker-compose", "--env-file", empty.name, "-f", str(COMPOSE), *args, "config"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**base, **env},
            timeout=60,
        )


def command(service: dict) -> str:
    cmd = service["command"]
    return " ".join(cmd) if isinstance(cmd, list) else cmd


@pytest.fixture(scope="module")
def services() -> dict:
    ok = compose_config(SECRETS)
    assert ok.returncode == 0, ok.stderr
    return yaml.safe_load(ok.stdout)["services"]


def test_every_service_has_a_healthcheck_and_the_expected_wiring(services: dict) -> None:
    assert {"postgres", "redis", "mlflow", "api", "worker-gpu0", "worker-cpu"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, name
    api_env = services["api"]["environment"]
    assert api_env["IGM_BROKER_URL"] == "redis://:redis-secret@redis:6379/0"
    assert api_env["IGM_REQUIRE_TOKENS"] == "true"
    assert "IGM_TRUSTED_HOSTS" in api_env
    assert services["worker-gpu0"]["environment"] == api_env
    assert services["worker-cpu"]["environment"] == api_env
    assert "--workers 1" in command(services["mlflow"])
    gpu = services["worker-gpu0"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["device_ids"] == ["0"] and "--gpu 0" in command(services["worker-gpu0"])


def test_a_plain_up_starts_no_service_that_needs_a_gpu(services: dict) -> None:
    # `docker compose up -d` starts the services without a profile; `--profile gpu` adds the rest
    default = {name for name, service in services.items() if not service.get("profiles")}
    assert default == {"postgres", "redis", "mlflow", "api", "worker-cpu"}
    for name, service in services.items():
        reserves = service.get("deploy", {}).get("resources", {}).get("reservations", {})
        if reserves.get("devices"):
            assert service["profiles"] == ["gpu"], name
    assert services["worker-gpu0"]["profiles"] == ["gpu"]
    assert "--queues cpu" in command(services["worker-cpu"])


def test_the_cpu_worker_builds_the_cpu_torch_and_the_gpu_worker_the_cuda_one(
    services: dict,
) -> None:
    assert not (ROOT / "Dockerfile").exists()
    for name in ("api", "mlflow"):
        assert services[name]["build"]["dockerfile"] == "docker/api.Dockerfile", name
        assert services[name]["image"] == "igm-lab-api:latest"
    cpu, gpu = services["worker-cpu"], services["worker-gpu0"]
    for service in (cpu, gpu):
        assert service["build"]["dockerfile"] == "docker/worker.Dockerfile"
    assert cpu["build"]["args"]["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert gpu["build"]["args"]["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cu128"
    # two tags: building one never overwrites the other's torch
    assert cpu["image"] != gpu["image"]


def test_image_sources_follow_env(services: dict) -> None:
    local = {
        "PYTHON_IMAGE": "registry.lab.example/python:3.11-slim",
        "PIP_INDEX_URL": "http://mirror.lab.example/simple",
        "PIP_TRUSTED_HOST": "mirror.lab.example",
        "TORCH_CPU_INDEX_URL": "http://mirror.lab.example/torch-cpu",
        "TORCH_CUDA_INDEX_URL": "http://mirror.lab.example/torch-cu128",
        "POSTGRES_IMAGE": "registry.lab.example/postgres:16",
        "REDIS_IMAGE": "registry.lab.example/redis:7",
    }
    done = compose_config({**SECRETS, **local})
    assert done.returncode == 0, done.stderr
    got = yaml.safe_load(done.stdout)["services"]
    assert got["postgres"]["image"] == local["POSTGRES_IMAGE"]
    assert got["redis"]["image"] == local["REDIS_IMAGE"]
    for name in ("api", "mlflow", "worker-cpu", "worker-gpu0"):
        args = got[name]["build"]["args"]
        for key in ("PYTHON_IMAGE", "PIP_INDEX_URL", "PIP_TRUSTED_HOST"):
            assert args[key] == local[key], (name, key)
    assert got["worker-cpu"]["build"]["args"]["TORCH_INDEX_URL"] == local["TORCH_CPU_INDEX_URL"]
    assert got["worker-gpu0"]["build"]["args"]["TORCH_INDEX_URL"] == local["TORCH_CUDA_INDEX_URL"]


def published(service: dict) -> list[str]:
    """Each published port as docker-compose v1 writes it: "IP:HOST:CONTAINER/tcp" or a map."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append(f"{port.get('host_ip', '0.0.0.0')}:{port['published']}:{port['target']}")
        else:
            out.append(port)
    return out


def test_mlflow_is_published_on_loopback_only_and_asks_for_credentials(services: dict) -> None:
    mlflow = services["mlflow"]
    assert published(mlflow) == ["127.0.0.1:5000:5000/tcp"]
    for name in ("postgres", "redis", "worker-cpu", "worker-gpu0"):
        assert not services[name].get("ports"), name
    # `igm mlflow-server` runs MLflow's basic-auth app (tests/service/test_compose_mlflow.py)
    assert command(mlflow).startswith("igm mlflow-server ")
    assert "--allowed-hosts" not in command(mlflow) and "--app-name" not in command(mlflow)
    env = mlflow["environment"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/app/docker/mlflow-auth.ini"
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "mlflow-secret"
    assert "mlflow:5000" in yaml.safe_load(env["IGM_MLFLOW_ALLOWED_HOSTS"])
    # the API and the workers log in with the admin account, by the name the server answers to
    for name in ("api", "worker-cpu", "worker-gpu0"):
        client = services[name]["environment"]
        assert client["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        assert client["MLFLOW_TRACKING_USERNAME"] == env["MLFLOW_AUTH_ADMIN_USERNAME"], name
        assert client["MLFLOW_TRACKING_PASSWORD"] == "mlflow-secret", name
    assert any(v.endswith(":/mlflow-auth:rw") for v in mlflow["volumes"])


def test_a_lab_publishes_mlflow_for_other_machines_only_when_it_says_so() -> None:
    wider = compose_config({**SECRETS, "MLFLOW_PUBLISH": "0.0.0.0:5000"})
    assert wider.returncode == 0, wider.stderr
    assert published(yaml.safe_load(wider.stdout)["services"]["mlflow"]) == [
        "0.0.0.0:5000:5000/tcp"
    ]


def test_redis_persists_and_never_evicts_and_needs_its_password(services: dict) -> None:
    redis = command(services["redis"])
    assert "--appendonly yes" in redis
    assert "--maxmemory-policy noeviction" in redis
    assert "--requirepass redis-secret" in redis


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_fails_fast_without_a_password(missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    done = compose_config(env)
    assert done.returncode != 0 and f"set {missing}" in done.stderr
