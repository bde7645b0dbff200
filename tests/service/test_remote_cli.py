"""A newcomer's commands against a real server on a loopback port: `igm login` remembers it,
`igm ls --sweep` shows each point's swept values and result, `igm compare` takes ids, a sweep or
result.json files. The app runs under uvicorn in a thread on SQLite and the embedded broker; no
worker runs: experiments are finished through the worker's own database transitions."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from igm_client import IGMClient, config
from launcher.cli import main as igm
from server import crud
from server.db import session_factory
from server.settings import Settings
from tests.service.conftest import free_port, make_settings, sqlite_url

SPEC = {"name": "cli-sw", "dataset": {"name": "synthetic"}, "method": {"name": "igm"}}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    from server.main import create_app

    folder = tmp_path_factory.mktemp("remote-cli")
    settings = make_settings(folder, database_url=sqlite_url(folder))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30  # a hang guard
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", settings
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def sweep(service: tuple[str, Settings]) -> dict:
    """A finished 2 x 3 sweep (tau x seed); test acc 0.70/0.80 by tau, + 0.01 per seed."""
    url, settings = service
    with IGMClient(url) as client:
        answer = client.sweep(SPEC, {"method.params.tau": [0.2, 0.8], "seed": [0, 1, 2]})
    with session_factory(settings.resolved_database_url())() as session:
        for exp in answer["data"]:
            values = exp["sweep_values"]
            acc = 0.7 + 0.1 * (values["method.params.tau"] == 0.8) + 0.01 * values["seed"]
            assert crud.claim(session, experiment_id=exp["id"], worker="w", stale_after_s=60)
            test = {"acc": acc, "macro_f1": acc, "map": acc, "modality_acc": {"weak": acc}}
            crud.finish(session, experiment_id=exp["id"], worker="w", status="succeeded",
                        summary={"test": test, "run": {"wall_time_s": 2.0}})  # fmt: skip
    return answer


def test_login_remembers_the_server_for_every_command(
    service: tuple[str, Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    url, _ = service
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    dead = f"http://127.0.0.1:{free_port()}"
    assert igm(["login", dead]) == 1
    assert "nothing saved" in capsys.readouterr().err and not config.config_path().exists()
    assert igm(["login", url + "/"]) == 0
    said = capsys.readouterr().out.replace("\n", "")
    assert f"igm commands now talk to {url} (saved in {config.config_path()}" in said
    assert igm(["ls", "--json"]) == 0  # no --url: the saved server answers
    assert "count" in json.loads(capsys.readouterr().out)
    monkeypatch.setattr("sys.stdin", io.StringIO("tok-abc\n"))
    assert igm(["login", url, "--token", "-"]) == 0  # a token kept out of the shell's history
    assert config.resolve() == config.Resolved(url, str(config.config_path()), "tok-abc",
                                               str(config.config_path()))  # fmt: skip
    assert igm(["logout"]) == 0 and f"forgot the token of {url}" in capsys.readouterr().out
    assert config.resolve().token is None and config.resolve().url == url


def test_ls_sweep_shows_each_points_values_and_result(
    service: tuple[str, Settings], sweep: dict, capsys: pytest.CaptureFixture
) -> None:
    url, _ = service
    assert igm(["ls", "--sweep", sweep["sweep_id"][:8], "--sort", "name", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "swept values" in out and "6 of 6" in out
    rows = [line for line in out.splitlines() if "cli-sw-" in line]
    assert len(rows) == 6
    first = next(r for r in rows if "cli-sw-0 " in r)  # point 0: tau 0.2, seed 0
    assert "method.params.tau=0.2, seed=0" in first and "0.7000" in first
    last = next(r for r in rows if "cli-sw-5 " in r)
    assert "method.params.tau=0.8, seed=2" in last and "0.8200" in last


def test_ls_columns_conditions_and_a_sort_by_a_metric(
    service: tuple[str, Settings], sweep: dict, capsys: pytest.CaptureFixture
) -> None:
    url, _ = service
    args = ["ls", "--sweep", sweep["sweep_id"], "--url", url, "-c", "method.params.tau,seed",
            "--column", "test.modality_acc.weak", "--match", "test.acc>=0.71",
            "--match", "method.params.tau<0.5", "--sort=-test.acc"]  # fmt: skip
    assert igm(args) == 0
    out = capsys.readouterr().out
    assert "method.params.tau" in out and "test.modality_acc.weak" in out and "2 of 2" in out
    rows = [line for line in out.splitlines() if "cli-sw-" in line]
    assert len(rows) == 2, out  # tau 0.2, seeds 1 and 2 (0.71, 0.72), best first
    cells = [[c.strip() for c in row.split("│")[1:-1]] for row in rows]
    assert [c[1:] for c in cells] == [["cli-sw-2", "succeeded", "0.2", "2", "0.72"],
                                      ["cli-sw-1", "succeeded", "0.2", "1", "0.71"]]  # fmt: skip
    assert igm([*args[:5], "--match", "tau<0.5"]) == 2
    assert "bad key 'tau': a key starts with a spec field" in capsys.readouterr().err
    with IGMClient(url) as client:
        page = client.list(sweep=sweep["sweep_id"], columns=["test.acc"], match="seed=0")
    assert page["columns"] == ["test.acc"] and page["count"] == 2
    assert sorted(d["values"]["test.acc"] for d in page["data"]) == [0.7, 0.8]


def test_compare_by_sweep_ids_and_files(
    service: tuple[str, Settings],
    sweep: dict,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    url, _ = service
    assert igm(["compare", "--sweep", sweep["sweep_id"][:8], "--url", url]) == 0
    out = capsys.readouterr().out
    assert "cli-sw (tau=0.2)" in out and "cli-sw (tau=0.8)" in out
    assert "paired by seed" in out and "0.8100" in out  # tau 0.8: mean of 0.80, 0.81, 0.82
    assert "+10.00" in out  # tau 0.8 - tau 0.2 (no joint group: the first is the baseline)
    args = ["compare", "--sweep", sweep["sweep_id"][:8], "--baseline", "cli-sw (tau=0.8)"]
    assert igm([*args, "--json", "--url", url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["baseline"] == "cli-sw (tau=0.8)"
    assert {(p["b"], round(p["diff_pp"], 6)) for p in report["pairs"] if p["metric"] == "acc"} == {
        ("cli-sw (tau=0.2)", -10.0)
    }
    assert igm([*args[:3], "--baseline", "nope", "--url", url]) == 2
    assert "baseline 'nope' names no group" in capsys.readouterr().err
    ids = [e["id"][:8] for e in sweep["data"][:2]]
    assert igm(["compare", *ids, "--json", "--url", url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["experiments"]) == sorted(e["id"] for e in sweep["data"][:2])
    assert igm(["compare", sweep["sweep_id"], "--url", url]) == 1  # a sweep id, given as an id
    assert "a sweep id goes with --sweep" in capsys.readouterr().err

    # result.json files stay local: no server is asked
    files = []
    for seed, acc in enumerate((0.5, 0.6)):
        spec = {**SPEC, "name": "local", "seed": seed}
        test = {"acc": acc, "macro_f1": acc, "map": acc, "modality_acc": {"weak": acc}}
        path = tmp_path / f"seed-{seed}" / "result.json"
        path.parent.mkdir()
        path.write_text(json.dumps({"spec": spec, "test": test, "run": {}}))
        files.append(str(path))
    assert igm(["compare", *files, "--json", "--url", "http://127.0.0.1:9"]) == 0
    (group,) = json.loads(capsys.readouterr().out)["groups"]
    assert group["n"] == 2 and group["metrics"]["acc"]["mean"] == pytest.approx(0.55)
    assert group["interval_note"] == "too few seeds for an interval"
    assert igm(["compare", *files, "--baseline", "local", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"] == "local"
    assert igm(["compare", *files, "--baseline", "other"]) == 2
    assert "baseline 'other' names no group; the groups: local" in capsys.readouterr().err
    assert igm(["compare", files[0], ids[0]]) == 2
    assert "give either result.json files or experiment ids" in capsys.readouterr().err
    assert igm(["compare", str(tmp_path / "nope" / "result.json")]) == 2
    assert "no such file" in capsys.readouterr().err
