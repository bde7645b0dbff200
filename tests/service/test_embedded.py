"""`igm up --demo` as a user runs it: one command, a real worker process, Ctrl-C stops both."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from igm_client import config
from igm_core.cli import main as local_igm
from tests.checkout import clean_checkout, porcelain


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_igm_up_demo_then_ctrl_c_leaves_a_clean_checkout(tmp_path: Path) -> None:
    """The README's first command from a clean checkout, with its default data directory
    (./igm-data): the demo succeeds, Ctrl-C stops everything, and `git status` stays empty.
    On the way: the demo shows `igm logs -f`'s progress line, the server's URL is saved for
    the igm commands (the session's XDG_CONFIG_HOME), and `--data-root .` lets the README's
    `features` config in."""
    repo = clean_checkout(tmp_path / "repo")
    data = repo / "igm-data"
    port = free_port()
    command = ["up", "--demo", "--port", str(port), "--data-root", "."]
    proc = subprocess.Popen(
        [sys.executable, "-m", "launcher", *command],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("demo: succeeded") or line.startswith("demo: failed"):
                break
        out = "".join(lines)
        assert "demo: succeeded: test acc" in out, out
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
        assert health["status"] == "ok", health
        listed = httpx.get(f"http://127.0.0.1:{port}/experiments", timeout=5).json()
        assert listed["count"] == 1 and listed["data"][0]["status"] == "succeeded"
        assert re.search(r"^demo: (queued|running)", out, re.MULTILINE), out  # progress lines
        assert f"igm commands and IGMClient() now talk to http://127.0.0.1:{port}" in out, out
        assert config.resolve().url == f"http://127.0.0.1:{port}"
        # the README's features steps: export-features into data/, submit the config as it is
        exported = repo / "data" / "digits_features"
        assert local_igm(["export-features", "digits", "--out", str(exported)]) == 0
        features = httpx.post(
            f"http://127.0.0.1:{port}/experiments",
            content=(repo / "configs" / "features_igm.yaml").read_text(),
            headers={"Content-Type": "application/yaml"},
            timeout=10,
        )
        assert features.status_code == 201, features.text
        root = features.json()["spec"]["dataset"]["params"]["root"]
        assert root == str(exported.resolve())
        short = features.json()["id"][:8]
        cancelled = httpx.post(f"http://127.0.0.1:{port}/experiments/{short}/cancel", timeout=10)
        assert cancelled.status_code in (200, 409), cancelled.text  # 409: it failed already
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "IGM Lab stopped." in rest
    assert "Traceback" not in rest
    for name in ("igm.db", "mlflow.db", "worker.log"):
        assert (data / name).exists()
    assert not (repo / "control").exists()
    assert porcelain(repo) == ""
    worker = subprocess.run(["pgrep", "-f", f"embedded-{proc.pid}@"], capture_output=True)
    assert worker.returncode == 1  # no worker process left behind
