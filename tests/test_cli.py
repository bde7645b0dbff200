"""The `igm` command as a user runs it: train, stop and resume, errors, registry listings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from igm_core.cli import main

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
IGM = [sys.executable, "-m", "igm_core.cli"]


def igm(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*IGM, *args], capture_output=True, text=True, cwd=ROOT, timeout=300, **kw
    )


def train_to(out: Path, config: str, setting: str) -> subprocess.CompletedProcess:
    """`igm train CONFIG --out OUT --set SETTING`."""
    return igm("train", config, "--out", str(out), "--set", setting)


def shrink(config: Path) -> list[str]:
    """--set overrides that make a config train for one short stage per modality."""
    text = config.read_text()
    if "stage_epochs" in text:
        return ["--set", "schedule.stage_epochs=[1, 1, 1]"]
    return ["--set", "schedule.epochs=1"]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_config_trains(config: Path, tmp_path) -> None:
    args = ["train", str(config), "--out", str(tmp_path / "run"), "--quiet", *shrink(config)]
    if "features" in config.stem:
        assert main(["export-features", "digits", "--out", str(tmp_path / "feat")]) == 0
        args += ["--set", f"dataset.params.root={tmp_path / 'feat'}"]
    assert main(args) == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert set(result["test"]) == {"acc", "macro_f1", "map", "loss", "modality_acc"}
    assert result["spec"]["name"] in config.read_text()
    assert (tmp_path / "run" / "metrics.jsonl").exists()


def test_train_prints_a_summary(tmp_path) -> None:
    out = train_to(tmp_path, "configs/synthetic_joint.yaml", "schedule.epochs=2")
    assert out.returncode == 0, out.stderr
    assert "fused" in out.stdout and "strong" in out.stdout and "weak" in out.stdout
    assert "val acc" in out.stderr  # per-epoch lines with the progress bar, on stderr
    assert json.loads((tmp_path / "result.json").read_text())["spec"]["schedule"]["epochs"] == 2


def test_train_summary_lists_every_fusion(tmp_path) -> None:
    out = train_to(tmp_path, "configs/synthetic_alternating.yaml", "schedule.stage_epochs=[1,1]")
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    lines = out.stdout.splitlines()
    for name, row in result["fusions"].items():
        label = "fused (mean)" if name == "mean" else f"  fused ({name})"
        line = next(x for x in lines if f"{label.strip()} " in x)
        assert f"{row['test_acc']:.4f}" in line, (name, line)


@pytest.mark.parametrize(
    "args,needle",
    [
        (
            ["--set", "method.params.tau=-1"],
            "method.params.tau: Input should be greater than or equal to 0",
        ),
        (["--set", "batch_size=abc"], "batch_size: Input should be a valid integer"),
        (["--set", "method.name=nope"], "unknown method 'nope'; choose one of"),
        (["--set", "schedule.epochs=3"], "schedule.epochs: method 'igm' trains in stages"),
        (
            ["--set", "dataset.name=features", "--set", "dataset.params={root: /nonexistent}"],
            "/nonexistent",
        ),
    ],
)
def test_bad_specs_exit_with_the_message_not_a_traceback(args: list[str], needle: str) -> None:
    out = igm("train", "configs/synthetic_igm.yaml", *args)
    assert out.returncode == 2
    assert needle in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_and_malformed_files(tmp_path) -> None:
    out = igm("train", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "cannot read" in out.stderr and "Traceback" not in out.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = igm("train", str(bad))
    assert out.returncode == 2 and "is not valid json" in out.stderr


def test_duplicate_keys_in_spec_files_exit_2_naming_the_key(tmp_path) -> None:
    spec = (ROOT / "configs" / "synthetic_igm.yaml").read_text()
    twice = tmp_path / "twice.yaml"
    twice.write_text(spec + "seed: 1\nseed: 2\n")
    out = igm("validate", str(twice))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    line = len(spec.splitlines()) + 1  # the config says `seed: 0` already
    assert f"seed: {twice}: duplicate key 'seed' (line {line}): each key" in out.stderr
    as_json = tmp_path / "twice.json"
    as_json.write_text('{"name": "x", "optimizer": {"lr": 0.1, "lr": 0.01}}')
    out = igm("validate", str(as_json))
    assert out.returncode == 2 and "optimizer.lr: " in out.stderr
    assert "duplicate key 'lr': each key may appear only once" in out.stderr
    out = igm("validate", "configs/synthetic_igm.yaml", "--set", "optimizer={lr: 1, lr: 2}")
    assert out.returncode == 2 and "duplicate key 'lr'" in out.stderr


def test_features_data_errors_name_the_file(tmp_path) -> None:
    assert main(["export-features", "digits", "--out", str(tmp_path)]) == 0
    (tmp_path / "val.npz").unlink()
    out = igm("train", "configs/features_igm.yaml", "--set", f"dataset.params.root={tmp_path}")
    assert out.returncode == 2 and "val.npz" in out.stderr and "Traceback" not in out.stderr


def test_registry_listings() -> None:
    for what, name in (("methods", "igm"), ("datasets", "synthetic"), ("encoders", "conv")):
        out = igm(what, "--json")
        assert out.returncode == 0
        entries = json.loads(out.stdout)
        assert name in [e["name"] for e in entries]
        assert all("params" in e and e["description"] for e in entries)
    table = igm("methods")
    assert "ogm_ge" in table.stdout and "tau" in table.stdout


def test_ctrl_c_keeps_a_checkpoint_and_the_same_command_resumes(tmp_path) -> None:
    """Ctrl-C as soon as training has begun (the tracker's first record is written inside
    train(), after the CLI's handler is installed, just before the first step): the run stops
    within its first steps of 100 (a 20 ms poll against 100 steps and 10 validation passes),
    then the same command resumes it to the end. Bounded work, not a wall-clock race."""
    cmd = [
        *IGM,
        "train",
        "configs/synthetic_igm.yaml",
        "--out",
        str(tmp_path),
        "--set",
        "schedule.stage_epochs=[5, 5]",
        "--set",
        "dataset.params.n_train=640",  # 10 steps of 64 per epoch
        "--set",
        "method.params.sam=none",  # one pass per step: stopping is what is tested here
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    metrics, deadline = tmp_path / "metrics.jsonl", time.monotonic() + 120  # a hang guard
    while not (metrics.exists() and metrics.stat().st_size > 0):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Run the same command to resume" in err and "Traceback" not in err
    assert (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "result.json").exists()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "resuming from stage 1" in out.stderr
    assert json.loads((tmp_path / "result.json").read_text())["run"]["steps"] == 100


def test_train_tracks_to_mlflow(tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = [
        "train",
        str(ROOT / "configs" / "synthetic_igm.yaml"),
        "--out",
        str(tmp_path / "run"),
        "--quiet",
        "--mlflow",
        uri,
        "--set",
        "schedule.stage_epochs=[1, 1]",
    ]
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the SQLite store keeps artifacts under ./mlruns
    try:
        assert main(args) == 0
    finally:
        os.chdir(cwd)
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("igm-lab").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["method.params.tau"] == "0.4"
    assert run.data.tags["method"] == "igm"
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert run.data.metrics["test/fused/acc"] == pytest.approx(result["test"]["acc"])
    assert "grad/weak/norm" in run.data.metrics and "gm/weak/kept_ratio" in run.data.metrics
    assert "result.json" in [a.path for a in client.list_artifacts(run.info.run_id)]
