"""IGMClient and the service commands of `igm` against a real server on a loopback port.

The app runs under uvicorn in a thread, on an upgraded SQLite database and a Redis queue of its own.
No worker runs, so experiments stay queued until a test cancels them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from igm_client import IGMClient, IGMClientError
from igm_client.cli import main
from tests.service.conftest import broker_settings, served, sqlite_url

ROOT = Path(__file__).resolve().parents[2]
SPEC_FILE = ROOT / "configs" / "synthetic_igm.yaml"


def spec(**changes) -> dict:
    data = yaml.safe_load(SPEC_FILE.read_text())
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the module (tests filter by their own names and tags)."""
    from server.main import create_app

    folder = tmp_path_factory.mktemp("service")
    queue = f"t{uuid.uuid4().hex[:12]}"  # the format of conftest's redis_queue, module-wide
    settings = broker_settings(folder, sqlite_url(folder), queue)
    with served(create_app(settings), queue) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[IGMClient]:
    with IGMClient(url, timeout=10) as c:
        yield c


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------------- client


def test_submit_dict_yaml_and_json(client: IGMClient, tmp_path: Path) -> None:
    name = unique("forms")
    json_file = tmp_path / "spec.json"
    json_file.write_text(json.dumps(spec(name=name)))
    yaml_file = tmp_path / "spec.yaml"
    yaml_file.write_text(yaml.safe_dump(spec(name=name)))
    answers = [client.submit(spec(name=name)), client.submit(yaml_file), client.submit(json_file)]
    ids = [a["id"] for a in answers]
    assert len(set(ids)) == 3
    for experiment_id in ids:
        exp = client.get(experiment_id)
        assert exp["status"] == "queued" and exp["name"] == name and exp["method"] == "igm"
        assert exp["spec"]["schedule"]["stage_epochs"] == [3] * 6  # the resolved spec
    # the same resolved spec three times: the last answer names the first two as its twins
    assert answers[0]["twins"] == [] and set(ids[:2]) <= set(answers[2]["twins"])


def test_tags_priority_and_filters(client: IGMClient) -> None:
    name, tag = unique("filters"), unique("tag")
    first = client.submit(spec(name=name), priority=7, tags=[tag, "shared"])
    client.submit(spec(name=name, method={"name": "joint"}, schedule={"epochs": 2}), tags=[tag])
    exp = client.get(first["id"])
    assert exp["priority"] == 7 and set(exp["tags"]) == {tag, "shared"}
    assert client.list(tag=tag)["count"] == 2
    joint = client.list(tag=tag, method="joint")
    assert joint["count"] == 1 and joint["data"][0]["method"] == "joint"
    page = client.list(q=name, limit=1, offset=1, sort="created_at")
    assert page["count"] == 2 and [e["id"] for e in page["data"]] != [first["id"]]
    assert client.list(q=name, status="running")["count"] == 0
    assert client.list(q=name, dataset="synthetic", status="queued")["count"] == 2


def test_bad_spec_is_a_422_naming_the_field(client: IGMClient) -> None:
    bad = spec(name=unique("bad"))
    bad["method"]["params"]["tau"] = "not a number"
    with pytest.raises(IGMClientError) as info:
        client.submit(bad)
    assert info.value.status_code == 422
    assert "method.params.tau" in str(info.value) and str(info.value).startswith("HTTP 422: ")


def test_cancel_retry_delete(client: IGMClient) -> None:
    experiment_id = client.submit(spec(name=unique("life")))["id"]
    assert client.cancel(experiment_id)["status"] == "cancelled"
    with pytest.raises(IGMClientError) as info:
        client.cancel(experiment_id)
    assert info.value.status_code == 409 and "cancelled" in str(info.value)
    assert client.retry(experiment_id)["status"] == "queued"
    with pytest.raises(IGMClientError) as info:
        client.delete(experiment_id)  # queued: cancel it first
    assert info.value.status_code == 409
    client.cancel(experiment_id)
    assert client.delete(experiment_id) is None
    with pytest.raises(IGMClientError) as info:
        client.get(experiment_id)
    assert info.value.status_code == 404


def test_metrics_and_artifacts_of_an_experiment_without_a_run(
    client: IGMClient, tmp_path: Path
) -> None:
    experiment_id = client.submit(spec(name=unique("norun")))["id"]
    assert client.metrics(experiment_id) == {"keys": []}
    with pytest.raises(IGMClientError) as info:
        client.metrics(experiment_id, keys=["val/fused/acc"])
    assert info.value.status_code == 404
    assert client.artifacts(experiment_id) == {"artifacts": []}
    with pytest.raises(IGMClientError) as info:
        client.download_artifact(experiment_id, "result.json", tmp_path)
    assert info.value.status_code == 404 and list(tmp_path.iterdir()) == []


def test_sweep(client: IGMClient) -> None:
    name = unique("sweep")
    answer = client.sweep(spec(name=name), {"seed": [0, 1], "method.params.tau": [0.2, 0.4]},
                          tags=["swept"])  # fmt: skip
    assert answer["count"] == 4
    listed = client.list(sweep=answer["sweep_id"], sort="name")
    assert listed["count"] == 4
    assert [e["name"] for e in listed["data"]] == [f"{name}-{i}" for i in range(4)]
    assert {e["priority"] for e in listed["data"]} == {5}  # the server's default
    with pytest.raises(IGMClientError) as info:
        client.sweep(spec(name=name), {"method.params.tau": [-1.0]})
    assert info.value.status_code == 422 and "points.0.method.params.tau" in str(info.value)


def test_health_and_registries(client: IGMClient) -> None:
    health = client.health()
    assert health["status"] == "ok" and health["database"]["ok"] and health["broker"]["ok"]
    methods = client.methods()
    names = [m["name"] for m in methods] if isinstance(methods, list) else list(methods)
    assert {"igm", "joint", "mla"} <= set(names)


def test_wait_reports_updates_and_times_out(client: IGMClient) -> None:
    experiment_id = client.submit(spec(name=unique("wait")))["id"]
    with pytest.raises(TimeoutError, match="still queued"):
        client.wait(experiment_id, timeout=0.3, poll=0.1)
    seen: list[str] = []
    threading.Timer(0.4, lambda: IGMClient(client.base_url).cancel(experiment_id)).start()
    final = client.wait(
        experiment_id, timeout=10, poll=0.1, on_update=lambda e: seen.append(e["status"])
    )
    assert final["status"] == "cancelled" and seen == ["queued", "cancelled"]


# ----------------------------------------------------------------------------- the igm command


def test_cli_round_trip(url: str, capsys: pytest.CaptureFixture) -> None:
    name = unique("cli")
    assert (
        main(["submit", str(SPEC_FILE), "--set", f"name={name}", "--tag", "cli", "--url", url]) == 0
    )
    experiment_id = capsys.readouterr().out.strip()
    assert len(experiment_id) == 32
    assert main(["ls", "--q", name, "--url", url]) == 0
    listing = capsys.readouterr().out
    assert experiment_id[:8] in listing and "queued" in listing and "1 of 1" in listing
    assert main(["show", experiment_id[:8], "--url", url]) == 0  # a short id is enough
    shown = capsys.readouterr().out
    assert experiment_id in shown and "resolved spec" in shown and "tau: 0.4" in shown
    assert main(["cancel", experiment_id, "--url", url]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert main(["logs", experiment_id, "--url", url]) == 0
    logs = capsys.readouterr().out
    assert "cancelled" in logs and "attempts 0/" in logs
    assert main(["logs", experiment_id, "--follow", "--url", url]) == 0  # finished: returns at once
    assert main(["retry", experiment_id, "--url", url]) == 0
    assert "queued" in capsys.readouterr().out
    assert main(["rm", experiment_id, "--url", url]) == 2  # queued again: cannot delete
    assert "error: HTTP 409" in capsys.readouterr().err
    assert main(["show", experiment_id, "--json", "--url", url]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "queued"


def test_cli_sweep_dry_run_then_submit(
    url: str, client: IGMClient, capsys: pytest.CaptureFixture
) -> None:
    name = unique("sweep")
    before = client.list(limit=1)["count"]
    args = [
        "sweep", str(SPEC_FILE), "--name", name, "--grid", "method.params.tau=0.2,0.4",
        "--random", "optimizer.lr=log_uniform:1e-3:1e-1", "--samples", "2", "--seed", "5",
        "--url", url,
    ]  # fmt: skip
    assert main([*args, "--dry-run"]) == 0
    table = capsys.readouterr().out
    assert "4 points (nothing submitted)" in table and "method.params.tau=0.4" in table
    assert client.list(limit=1)["count"] == before  # a dry run writes nothing
    assert main([*args, "--tag", "swept"]) == 0
    sweep_id = capsys.readouterr().out.strip()
    assert main(["ls", "--sweep", sweep_id, "--json", "--url", url]) == 0
    page = json.loads(capsys.readouterr().out)
    assert page["count"] == 4 and all(e["tags"] == ["swept"] for e in page["data"])
    for bad in (["--random", "optimizer.lr=beta:1:2"], ["--grid", "seed"], ["--samples", "3"]):
        assert main(["sweep", str(SPEC_FILE), *bad, "--dry-run", "--url", url]) == 2
        assert "error: " in capsys.readouterr().err


def test_cli_bad_spec_exits_2_without_traceback(url: str, capsys: pytest.CaptureFixture) -> None:
    args = ["submit", str(SPEC_FILE), "--set", "method.params.tau=oops", "--url", url]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error: HTTP 422" in err and "method.params.tau" in err and "Traceback" not in err
    assert main(["show", "0" * 32, "--url", url]) == 2


def test_cli_submit_wait_exits_3_when_cancelled(
    url: str, client: IGMClient, capsys: pytest.CaptureFixture
) -> None:
    name = unique("waitcli")

    def cancel_when_queued() -> None:
        for _ in range(100):
            data = client.list(q=name)["data"]
            if data:
                client.cancel(data[0]["id"])
                return
            time.sleep(0.05)

    canceller = threading.Thread(target=cancel_when_queued)
    canceller.start()
    code = main(["submit", str(SPEC_FILE), "--set", f"name={name}", "--wait", "--url", url])
    canceller.join()
    assert code == 3
    assert "cancelled" in capsys.readouterr().out
