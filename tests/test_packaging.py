"""The distribution's requirements per extra, and a client that runs without the heavy parts.

The metadata comes from the build backend itself (build_backend/igm_build.py, the hooks pip
calls): a wheel's base is the client's requirements, an editable install of the checkout gets
every part. The extras build on each other ("igm-lab[client]" in `server`): the checks follow
those references, and check that each requirement is written once. The import check runs the
`igm` entry point in a process where torch, fastapi, sqlalchemy, celery, mlflow, numpy and
pydantic cannot be imported, as on a laptop with `pip install "igm-lab[client]"`.
"""

from __future__ import annotations

import email
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SELF = re.compile(r"igm-lab\[([a-z,]+)\]")  # a reference to this project's own extras
HEAVY = ("torch", "fastapi", "starlette", "sqlalchemy", "celery", "mlflow", "numpy", "pydantic",
         "scipy", "sklearn", "igm_core", "server", "worker")  # fmt: skip

METADATA = """
import sys
sys.path.insert(0, "build_backend")
import igm_build
hook_name, out = sys.argv[1:3]  # setuptools rewrites sys.argv
name = getattr(igm_build, hook_name)(out)
print(open(f"{out}/{name}/METADATA").read())
"""


def requirements(hook: str, tmp_path: Path) -> dict[str, set[str]]:
    """{extra or "": the names (lower case, with a pin if any) it requires, as written} from the
    backend; a reference to other extras of igm-lab keeps them ("igm-lab[client]")."""
    out = tmp_path / hook
    out.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", METADATA, hook, str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    meta = email.message_from_string(done.stdout[done.stdout.index("Metadata-Version") :])
    by_extra: dict[str, set[str]] = {}
    for line in meta.get_all("Requires-Dist") or []:
        req, _, marker = line.partition(";")
        extra = re.search(r"extra\s*==\s*['\"]([a-z]+)['\"]", marker)
        req = req.replace(" ", "").lower()
        name = req if SELF.fullmatch(req) else re.sub(r"\[.*?\]", "", req)
        by_extra.setdefault(extra.group(1) if extra else "", set()).add(name)
    return by_extra


def expanded(by_extra: dict[str, set[str]], extra: str) -> set[str]:
    """What `pip install "igm-lab[extra]"` asks for: the extra's requirements, with its
    references to other extras of igm-lab replaced by theirs."""
    found: set[str] = set()
    for req in by_extra[extra]:
        ref = SELF.fullmatch(req)
        found |= (
            {r for e in ref.group(1).split(",") for r in expanded(by_extra, e)} if ref else {req}
        )
    return found


def names(reqs: set[str]) -> set[str]:
    return {re.split(r"[<>=!~]", r, maxsplit=1)[0] for r in reqs}


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """A wheel's requirements per extra, as written (references to other extras kept)."""
    return requirements("prepare_metadata_for_build_wheel", tmp_path_factory.mktemp("wheel"))


def test_a_wheel_is_the_client_and_each_extra_adds_its_part(raw: dict[str, set[str]]) -> None:
    wheel = {extra: expanded(raw, extra) for extra in raw}
    assert names(wheel[""]) == {"httpx", "pyyaml", "rich"}
    assert wheel["client"] == wheel[""]
    assert {"client", "service", "server", "worker", "all", "dev"} <= set(wheel)
    for lean in ("client", "service", "server"):
        assert not names(wheel[lean]) & {"torch", "torchvision", "scikit-learn"}, lean
    assert {"fastapi", "uvicorn", "sqlalchemy", "alembic", "celery", "scipy"} <= names(
        wheel["server"]
    )
    assert "torch==2.13.0" in wheel["worker"]
    # a worker writes through the server's models and crud (the `service` part) and logs to an
    # MLflow server with the tracking client alone, of the server's release: no MLflow server
    # stack (Flask, pandas, pyarrow) and no web framework of its own in the worker image
    assert wheel["service"] <= wheel["server"] and wheel["service"] <= wheel["worker"]
    # (the server's mlflow comes with its `auth` extra, which requirements() leaves out here)
    assert "mlflow-skinny==3.17.2" in wheel["worker"] and "mlflow==3.17.2" in wheel["server"]
    assert not names(wheel["worker"]) & {"mlflow", "fastapi", "uvicorn", "jinja2"}
    assert wheel["server"] | wheel["worker"] == wheel["all"]
    assert wheel["all"] < wheel["dev"] and {"pytest", "ruff"} <= names(wheel["dev"])


def test_the_extras_build_on_each_other_and_write_each_requirement_once(
    raw: dict[str, set[str]],
) -> None:
    refs = {extra: {r for r in reqs if SELF.fullmatch(r)} for extra, reqs in raw.items()}
    assert refs == {
        "": set(),  # the base writes its requirements out
        "client": set(),
        "service": {"igm-lab[client]"},
        "server": {"igm-lab[service]"},
        "worker": {"igm-lab[service]"},
        "all": {"igm-lab[server,worker]"},
        "dev": {"igm-lab[all]"},
    }
    written: dict[str, str] = {}
    for extra in ("client", "service", "server", "worker", "all", "dev"):
        for name in names(raw[extra] - refs[extra]):
            assert name not in written, f"{name} in both {written[name]} and {extra}"
            written[name] = extra


def test_an_editable_checkout_installs_every_part(raw: dict[str, set[str]], tmp_path: Path) -> None:
    editable = requirements("prepare_metadata_for_build_editable", tmp_path)
    # `pip install -e .` then `igm up --demo` (README): the API, a worker and torch without extras,
    # written out in the base (no reference to igm-lab itself)
    assert editable[""] == expanded(raw, "all")
    assert {e: r for e, r in editable.items() if e} == {e: r for e, r in raw.items() if e}


BLOCKED_RUN = """
import importlib.abc, json, sys
HEAVY = set(json.loads(sys.argv[1]))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError(f"{name} is not installed (client-only installation)")
        return None

sys.meta_path.insert(0, Block())
from launcher.cli import main
codes = [main(["--help"]), main(["ls", "--url", "http://127.0.0.1:9"]), main(["up"])]
loaded = sorted({m.split(".")[0] for m in sys.modules} & HEAVY)
print("RESULT", json.dumps({"codes": codes, "loaded": loaded}))
"""


def test_the_igm_command_runs_remote_commands_without_torch_or_the_server() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, json.dumps(HEAVY)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    result = json.loads(done.stdout.rpartition("RESULT ")[2])
    # help works, `ls` reaches the network layer (nothing listens on port 9: exit 1), and a
    # service command says it is not available instead of a traceback
    assert result == {"codes": [0, 1, 1], "loaded": []}, done.stdout + done.stderr
    assert "is not available in this installation" in done.stdout
    assert "Traceback" not in done.stderr


def test_env_example_lists_every_setting() -> None:
    from server.settings import Settings

    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?(IGM_[A-Z0-9_]+)=", text, flags=re.M))
    wanted = {f"IGM_{name.upper()}" for name in Settings.model_fields}
    assert wanted <= listed, f"missing from .env.example: {sorted(wanted - listed)}"
