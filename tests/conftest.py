"""Suite-wide: the golden-number update switch, and the check that a run leaves the tree clean.

Nothing a test run writes may land in the working tree (broker folders, databases, run
directories, logs): at the end of the session, `git status --porcelain` must show nothing that
was not there at the start, or the session fails and names the files. The client's config file
(`igm login`, `igm up`) goes to a folder of the session, never the user's ~/.config, and the
user's IGM_URL / IGM_TOKEN do not reach the tests. With IGM_NO_SKIPS=1 (set by .ci/run, where
every tool is installed) a skipped test fails the session.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden.json from this run (a deliberate, reviewed change)",
    )
    parser.addoption(
        "--update-openapi",
        action="store_true",
        help="rewrite tests/service/openapi.json from the app (a deliberate API change)",
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


@pytest.fixture(scope="session", autouse=True)
def client_config_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """XDG_CONFIG_HOME of the session (subprocesses inherit it); no IGM_URL / IGM_TOKEN."""
    home = tmp_path_factory.mktemp("xdg-config")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(home))
        mp.delenv("IGM_URL", raising=False)
        mp.delenv("IGM_TOKEN", raising=False)
        yield home


def _no_skips(session: pytest.Session) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = (reporter.stats.get("skipped", []) if reporter is not None else []) or []
    if os.environ.get("IGM_NO_SKIPS") != "1" or not skipped:
        return
    lines = [
        f"{r.nodeid}: {r.longrepr[-1] if isinstance(r.longrepr, tuple) else r.longrepr}"
        for r in skipped
    ]
    reporter.ensure_newline()
    reporter.write_line(
        f"IGM_NO_SKIPS=1 and {len(skipped)} tests skipped:\n  " + "\n  ".join(lines), red=True
    )
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _no_skips(session)
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
