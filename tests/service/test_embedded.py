"""`igm up --demo` as a user runs it: one command, a real worker process, Ctrl-C stops both."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_igm_up_demo_then_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "launcher",
            "up",
            "--demo",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        cwd=ROOT,
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
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "IGM Lab stopped." in rest
    assert "Traceback" not in rest
    for name in ("igm.db", "mlflow.db", "worker.log"):
        assert (tmp_path / "data" / name).exists()
    worker = subprocess.run(["pgrep", "-f", f"embedded-{proc.pid}@"], capture_output=True)
    assert worker.returncode == 1  # no worker process left behind
