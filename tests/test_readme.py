"""The README's two commands are the ones this repository runs: CI calls the test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n# \d\. [^\n]*\n([^\n]+)\n```", (ROOT / "README.md").read_text())
    return blocks


def test_readme_has_two_commands_and_ci_runs_the_test_command() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert "igm up --demo" in commands[0]
    assert "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
