"""The images of docker-compose.yml, read from their Dockerfiles (no Docker engine needed): the
requirements installed in a layer of their own before the source is copied (a code change
rebuilds seconds, not the dependencies), an unprivileged user, every build argument and image a
lab may point at its own registry or mirror named in .env.example, and the worker's MLflow the
tracking client only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {"api": ROOT / "docker/api.Dockerfile", "worker": ROOT / "docker/worker.Dockerfile"}
SOURCE = ("igm_core", "server", "worker", "igm_client", "launcher", "web", "alembic", "configs")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def env_example() -> dict[str, str]:
    text = (ROOT / ".env.example").read_text()
    return dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, flags=re.M))


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_requirements_are_installed_before_the_source_is_copied(image: str) -> None:
    steps = instructions(DOCKERFILES[image])
    copies = [(i, args.split()[0]) for i, (word, args) in enumerate(steps) if word == "COPY"]
    installs = [
        i for i, (word, args) in enumerate(steps) if word == "RUN" and "pip install" in args
    ]
    extra = f'".[{"server" if image == "api" else "worker"}]"'
    (deps,) = [i for i in installs if extra in steps[i][1]]
    before = {src for i, src in copies if i < deps}
    # only what pip needs to resolve the requirements: the project's metadata and build backend
    assert before == {"pyproject.toml", "build_backend"}, before
    after = {src for i, src in copies if i > deps}
    assert {s for s in SOURCE if s != "web" or image == "api"} <= after
    # and nothing is installed from the source afterwards: it runs from /app (PYTHONPATH)
    assert all(i < min(i for i, _ in copies if _ in SOURCE) for i in installs)
    assert any(word == "ENV" and "PYTHONPATH=/app" in args for word, args in steps)


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_services_run_as_an_unprivileged_user(image: str) -> None:
    steps = instructions(DOCKERFILES[image])
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    # the user is set after the last RUN: every later layer, and the containers, run as it
    last_user = max(i for i, (word, _) in enumerate(steps) if word == "USER")
    assert all(word != "RUN" for word, _ in steps[last_user:])
    # the same uid in both images: the API and the workers share the `runs` volume
    created = re.search(
        r"useradd --uid (\d+) .*\b" + re.escape(users[-1]) + r"\b", DOCKERFILES[image].read_text()
    )
    assert created and created.group(1) == "10001"
    # the volumes' mount points exist and belong to that user (a fresh volume takes them over)
    chowns = " ".join(args for word, args in steps if word == "RUN" and "chown" in args)
    assert "/data" in chowns


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_every_build_argument_is_named_in_env_example(image: str) -> None:
    steps = instructions(DOCKERFILES[image])
    assert steps[0] == ("ARG", "PYTHON_IMAGE=python:3.11-slim") and steps[1] == (
        "FROM",
        "${PYTHON_IMAGE}",
    )
    args = {a.split("=")[0] for word, a in steps if word == "ARG"} - {"TORCH_VERSION"}
    named = env_example()
    compose = (ROOT / "docker-compose.yml").read_text()
    for arg in args:
        # fed by the compose file from a variable of .env (TORCH_INDEX_URL: one per worker image)
        sources = {"TORCH_INDEX_URL": ["TORCH_CPU_INDEX_URL", "TORCH_CUDA_INDEX_URL"]}.get(
            arg, [arg]
        )
        for var in sources:
            assert var in named, f"{var} (build argument {arg}) is missing from .env.example"
            assert re.search(rf"{arg}: \$\{{{var}:-", compose), f"{arg} is not passed from ${var}"
    assert image != "worker" or {"PYTHON_IMAGE", "PIP_INDEX_URL", "TORCH_INDEX_URL"} <= args


def test_env_example_names_every_variable_the_compose_file_reads() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose))
    missing = used - set(env_example())
    assert not missing, f"read by docker-compose.yml, missing from .env.example: {sorted(missing)}"
    assert {"POSTGRES_IMAGE", "REDIS_IMAGE", "MLFLOW_PUBLISH", "IGM_MLFLOW_ALLOWED_HOSTS"} <= used


def test_the_worker_image_takes_the_tracking_client_and_no_apt() -> None:
    worker = DOCKERFILES["worker"].read_text()
    # torch first from its index and without its requirements (those come from the mirror)
    assert (
        'pip install --no-deps "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"' in worker
    )
    assert (
        '! python -c "import flask"' in worker
    )  # no MLflow server stack (pyproject: mlflow-skinny)
    api = DOCKERFILES["api"].read_text()
    assert '! python -c "import torch"' in api
    for text in (api, worker):  # a lab's build needs a PyPI mirror at most, never a Debian one
        assert "apt-get" not in text
