"""Suite-wide: the golden-number update switch, and the check that a run leaves the tree clean.

Nothing a test run writes may land in the working tree (broker folders, databases, run
directories, logs): at the end of the session, `git status --porcelain` must show nothing that
was not there at the start, or the session fails and names the files.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden.json from this run (a deliberate, reviewed change)",
    )


def git_status(root: Path) -> set[str] | None:
    """The lines of `git status --porcelain`, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return set(out.stdout.splitlines()) if out.returncode == 0 else None


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = git_status(ROOT)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, None)
    if before is None or session.config.option.collectonly:
        return
    after = git_status(ROOT) or set()
    new = sorted(after - before)
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                "the test run left files in the working tree (git status):\n  " + "\n  ".join(new),
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_BEFORE = pytest.StashKey[set[str] | None]()
