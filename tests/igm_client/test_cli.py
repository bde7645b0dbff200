"""The client and the `igm` command without a server: errors read one detail per line, an
unreachable server is one line, the help lists every command, the progress line, and local
commands that need no server."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from igm_client import IGMClient, IGMClientError
from igm_client.cli import main
from tests.service.conftest import free_port

SPEC_FILE = Path(__file__).resolve().parents[2] / "configs" / "synthetic_igm.yaml"


def test_validation_details_read_one_per_line() -> None:
    err = IGMClientError(
        422,
        [
            {"loc": ["body", "method", "params", "tau"], "msg": "must be > 0"},
            {"loc": ["body", "batch_size"], "msg": "too large"},
        ],
    )
    assert str(err) == "HTTP 422: method.params.tau: must be > 0\nbatch_size: too large"
    assert err.status_code == 422 and err.detail[0]["msg"] == "must be > 0"
    assert str(IGMClientError(409, "experiment x is queued")) == "HTTP 409: experiment x is queued"


def test_unreachable_server(capsys: pytest.CaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with IGMClient(dead) as c, pytest.raises(IGMClientError) as info:
        c.health()
    assert info.value.status_code == 0
    assert str(info.value).startswith(f"cannot reach the IGM Lab server at {dead}: ")
    assert main(["ls", "--url", dead]) == 1
    err = capsys.readouterr().err
    assert "error: cannot reach the IGM Lab server" in err and "Traceback" not in err


def test_help_lists_service_and_local_commands(capsys: pytest.CaptureFixture) -> None:
    from igm_core.cli import build_parser
    from launcher.cli import main as igm

    assert igm(["--help"]) == 0
    text = capsys.readouterr().out
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    remote = ["submit", "sweep", "ls", "show", "cancel", "retry", "rm", "logs"]
    for command in [*sub.choices, *remote, "up", "worker", "db"]:
        assert command in text, command


def test_progress_line() -> None:
    from igm_client.cli import progress_text

    exp = {"status": "running", "attempts": 1, "max_attempts": 3, "progress": {
        "stage": 1, "n_stages": 6, "modalities": ["weak"], "epoch": 0, "epochs": 3, "step": 40,
        "total_steps": 576, "fraction": 0.0694, "val_acc": 0.91234, "eta_s": 75.2}}  # fmt: skip
    assert progress_text(exp) == (
        "running  attempt 1/3  stage 2/6 (weak)  epoch 1/3  step 40/576  6.9%  val acc 0.9123  "
        "ETA 1m15s"
    )
    assert progress_text({"status": "queued", "attempts": 0, "progress": None}) == "queued"


def test_local_commands_need_no_server(capsys: pytest.CaptureFixture) -> None:
    from launcher.cli import main as igm

    assert igm(["methods", "--json"]) == 0
    assert "igm" in [m["name"] for m in json.loads(capsys.readouterr().out)]
    assert main(["submit", str(SPEC_FILE), "--set", "novalue", "--url", "http://127.0.0.1:1"]) == 2
    assert "--set: expected key=value" in capsys.readouterr().err
