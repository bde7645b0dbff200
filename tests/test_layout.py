"""The package layout's rules (pyproject.toml [tool.importlinter]) hold, and they bite: the same
check fails on a checkout with one deliberately wrong import of each kind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.checkout import ROOT, clean_checkout

LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"


def lint(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LINT, "--no-cache"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_contracts_hold() -> None:
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clean_checkout(tmp_path_factory.mktemp("layout") / "repo")


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("server/selection.py", "from igm_core.trainer import train", "never imports torch"),
        ("igm_client/format.py", "from igm_core import spec", "httpx-level"),
        ("igm_core/spec.py", "import server.settings", "igm_core is a library"),
        ("worker/runner.py", "import launcher.cli", "nothing imports it"),
        ("igm_core/data/npz.py", "from igm_core import catalog", "no import cycles"),
        ("igm_core/cost_models.py", "import transformers", "never imports it"),
    ],
)
def test_a_wrong_import_breaks_its_contract(
    checkout: Path, module: str, line: str, contract: str
) -> None:
    path = checkout / module
    original = path.read_text()
    try:
        path.write_text(original + f"\n{line}  # noqa\n")
        done = lint(checkout)
    finally:
        path.write_text(original)
    assert done.returncode != 0
    broken = [row for row in done.stdout.splitlines() if row.endswith("BROKEN")]
    assert len(broken) >= 1 and any(contract in row for row in broken), done.stdout
