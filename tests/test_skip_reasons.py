"""Every test that may skip says which tool is missing and how to get it.

The README's test command must pass on a fresh machine, where a test that needs a tool the command
does not install skips; a skip must then tell the reader what to install (and .ci/run, where
everything is installed, runs with IGM_NO_SKIPS=1 so that nothing skips there). This reads the
suite's source: every pytest.skip / mark.skip / mark.skipif / importorskip call and its reason,
whether the skip happens on this machine or not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SKIPS = {"skip", "skipif", "importorskip"}
# tool -> words of a reason naming it; a tool a command installs must also say how ("install")
TOOLS = {
    "docker-compose": ("docker-compose",),
    "chromium": ("chromium",),
    "PostgreSQL": ("postgresql",),
    "Redis": ("redis",),
    "CUDA": ("cuda",),  # hardware: nothing to install
    "g++": ("g++",),
}
HARDWARE = {"CUDA"}


def _text(node: ast.AST | None, constants: dict[str, ast.AST]) -> str | None:
    """A reason expression as text: literals, f-strings (values as {}), + and module constants."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v, constants) or "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, constants), _text(node.right, constants)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Name) and node.id in constants:
        return _text(constants[node.id], constants)
    return None


def _reason(call: ast.Call, name: str) -> ast.AST | None:
    keywords = {k.arg: k.value for k in call.keywords}
    if "reason" in keywords:
        return keywords["reason"]
    if name == "skip" and call.args:  # pytest.skip("...") / mark.skip("...")
        return call.args[0]
    return None


def skip_calls(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, skip function, reason text or None) of every skip call in one file."""
    tree = ast.parse(path.read_text(), str(path))
    constants = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        if name in SKIPS:
            found.append((node.lineno, name, _text(_reason(node, name), constants)))
    return found


def problem(reason: str | None) -> str | None:
    """Why a skip reason does not do, or None."""
    if reason is None:
        return "no reason given as a string (a literal, an f-string or a module constant)"
    named = [tool for tool, words in TOOLS.items() if any(w in reason.lower() for w in words)]
    if not named:
        return f"names none of the tools {', '.join(TOOLS)} (add a new tool to TOOLS here)"
    if not set(named) <= HARDWARE and "install" not in reason.lower():
        return f"names {named[0]} but not how to install it"
    return None


def test_every_skip_in_the_suite_names_the_missing_tool_and_how_to_get_it() -> None:
    bad, seen = [], []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name == Path(__file__).name:
            continue
        for line, name, reason in skip_calls(path):
            seen.append(f"{path.relative_to(TESTS)}:{line}")
            why = problem(reason)
            if why:
                bad.append(f"{path.relative_to(TESTS)}:{line} {name}({reason!r}): {why}")
    assert not bad, "\n".join(bad)
    # the scan finds the skips it must: docker-compose, PostgreSQL, Redis, CUDA
    assert {"service/test_compose.py", "service/conftest.py", "test_gpu.py"} <= {
        s.split(":")[0] for s in seen
    }, seen


@pytest.mark.parametrize(
    ("source", "verdict"),
    [
        ('pytest.mark.skipif(True, reason="needs docker-compose: apt-get install docker-compose")',
         None),
        ('pytest.skip("needs chromium")', "names chromium but not how to install it"),
        ('pytest.mark.skipif(True, reason="not ready yet")', "names none of the tools"),
        ('pytest.importorskip("mlflow")', "no reason given"),
        ('R = "needs Redis: install redis-server"\npytest.mark.skip(reason=R)', None),
        ('pytest.mark.skipif(True, reason=f"needs a {x} CUDA device")', None),
    ],
)  # fmt: skip
def test_the_rule_itself(tmp_path: Path, source: str, verdict: str | None) -> None:
    path = tmp_path / "test_x.py"
    path.write_text(f"import pytest\n{source}\n")
    ((_, _, reason),) = skip_calls(path)
    why = problem(reason)
    assert why is None if verdict is None else why is not None and why.startswith(verdict)
