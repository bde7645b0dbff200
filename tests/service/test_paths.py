"""Path confinement (igm_core.paths) through the API and the worker, on SQLite: every path a spec
can name is refused outside the data roots, after symlinks, with one message for missing and
forbidden paths that never holds a file's contents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from igm_core import paths
from igm_core.spec import resolve_spec
from server import crud
from server.db import session_factory
from server.main import create_app
from tests.factories import features_root
from tests.service.conftest import make_settings, sqlite_url
from worker import runner

JOINT = {"name": "p", "dataset": {"name": "synthetic"}, "method": {"name": "joint"}}
DATASETS = [
    "features",
    "nvgesture_features",
    "crema_d",
    "kinetics_sounds",
    "sarcasm",
    "twitter2015",
]
# (field, spec change making `value` that field)
FIELDS = {
    **{
        f"dataset.params.root[{name}]": lambda v, name=name: {
            "dataset": {"name": name, "params": {"root": v}}
        }
        for name in DATASETS
    },
    "model.encoders.visual.params.pretrained": lambda v: {
        "model": {"encoders": {"visual": {"name": "resnet18", "params": {"pretrained": v}}}}
    },
    "dataset.params.tokenizer": lambda v: {
        "dataset": {"name": "sarcasm", "params": {"root": "ok", "tokenizer": v}}
    },
    # a Hugging Face model is a folder
    "model.encoders.text.params.pretrained": lambda v: {
        "model": {"encoders": {"text": {"name": "bert", "params": {"pretrained": v}}}}
    },
}
FOLDERS = ("root", "tokenizer", "text.params.pretrained")
SECRET = "TOP-SECRET-LINE"


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """A data root with a link to an outside secret and to /etc/passwd; an outside folder."""
    root = tmp_path / "datasets"
    outside = tmp_path / "elsewhere"
    (root / "ok").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.csv").write_text(f"{SECRET},x\n")
    (root / "passwd").symlink_to("/etc/passwd")
    (root / "escape").symlink_to(outside)
    (root / "weights.pt").write_bytes(b"not really weights")
    return {"root": root, "outside": outside}


@pytest.fixture
def client(tmp_path: Path, world: dict[str, Path]) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path, database_url=sqlite_url(tmp_path), data_roots=[world["root"]]
    )
    with TestClient(create_app(settings)) as c:
        yield c


def attacks(world: dict[str, Path]) -> list[str]:
    root, outside = world["root"], world["outside"]
    return [
        "../elsewhere",  # relative: against the root, and out of it
        str(root / ".." / "elsewhere"),
        "ok/../../elsewhere/secret.csv",
        str(outside),
        str(outside / "secret.csv"),
        "escape",  # a link inside the root to a folder outside
        "escape/secret.csv",
        "passwd",  # a link inside the root to /etc/passwd
        "/etc/passwd",
        "/etc",
        "/proc/self/environ",
        "/proc/self",
        "/dev/zero",
        "/nonexistent/anywhere",
        "missing-inside",
        "ok\x00/etc/passwd",
    ]


@pytest.mark.parametrize("field", list(FIELDS))
def test_every_path_field_refuses_every_escape(client, world, field) -> None:
    loc = field.split("[")[0]
    roots = str(world["root"].resolve())
    for value in attacks(world):
        res = client.post("/experiments", json={**JOINT, **FIELDS[field](value)})
        assert res.status_code == 422, (field, value, res.text)
        # the path's one problem (the spec's others, such as an encoder for a modality the
        # dataset lacks, come with it)
        (err,) = [d for d in res.json()["detail"] if d["loc"].startswith(loc)]
        what = "folder" if loc.endswith(FOLDERS) else "file"
        # the same words whether the path exists outside or not at all
        assert err["msg"] == (
            f"{value[:200]!r} is not a {what} inside the allowed data roots ({roots}): it is "
            "missing, or lies outside the allowed roots"
        ), err["msg"]
        assert SECRET not in res.text and "root:x:" not in res.text
    assert client.get("/experiments").json()["count"] == 0


def test_paths_inside_are_resolved_against_the_roots(world) -> None:
    root = world["root"]
    assert paths.confine("ok", [root]) == (root / "ok").resolve()
    assert paths.confine(str(root / "ok"), [root]) == (root / "ok").resolve()
    assert paths.confine("weights.pt", [root], kind="file") == (root / "weights.pt").resolve()
    second = root.parent / "more"
    (second / "b").mkdir(parents=True)
    assert paths.confine("b", [root, second]) == (second / "b").resolve()  # roots in order
    with pytest.raises(paths.PathRefused, match="not a file"):
        paths.confine("ok", [root], kind="file")
    with pytest.raises(paths.PathRefused, match="IGM_DATA_ROOTS"):
        paths.confine("ok", [])
    spec = {**JOINT, **FIELDS["model.encoders.visual.params.pretrained"]("weights.pt")}
    out = paths.confine_spec(spec, [root])
    assert out["model"]["encoders"]["visual"]["params"]["pretrained"] == str(
        (root / "weights.pt").resolve()
    )
    assert spec["model"]["encoders"]["visual"]["params"]["pretrained"] == "weights.pt"


def test_a_relative_root_is_stored_resolved(client, world) -> None:
    features_root(world["root"] / "feat")
    spec = {**JOINT, "dataset": {"name": "features", "params": {"root": "feat"}}}
    res = client.post("/experiments", json=spec)
    assert res.status_code == 201, res.text
    stored = res.json()["spec"]["dataset"]["params"]["root"]
    assert stored == str((world["root"] / "feat").resolve())


def test_linked_files_inside_a_dataset_root_are_refused(client, world) -> None:
    """A root inside the data roots whose files link out: the loader refuses, quoting nothing."""
    feat = features_root(world["root"] / "linked")
    (feat / "test.npz").unlink()
    (feat / "test.npz").symlink_to(features_root(world["outside"] / "f") / "test.npz")
    clips = world["root"] / "clips"
    (clips / "annotations").mkdir(parents=True)
    (clips / "annotations" / "train.csv").symlink_to("/etc/passwd")
    (clips / "annotations" / "test.csv").symlink_to(world["outside"] / "secret.csv")
    pairs = world["root"] / "pairs"
    (pairs / "annotations").mkdir(parents=True)
    (pairs / "annotations" / "train_data.json").symlink_to("/etc/passwd")
    (world["root"] / "tok").mkdir()
    for name, root in [("features", "linked"), ("crema_d", "clips"), ("kinetics_sounds", "clips"),
                       ("sarcasm", "pairs")]:  # fmt: skip
        params = {"root": root, **({"tokenizer": "tok"} if name == "sarcasm" else {})}
        res = client.post(
            "/experiments", json={**JOINT, "dataset": {"name": name, "params": params}}
        )
        assert res.status_code == 422, res.text
        assert "outside the dataset root" in res.text, res.text
        assert SECRET not in res.text and "root:x:" not in res.text


def test_the_worker_checks_again_before_opening(tmp_path, world) -> None:
    """A row written around the API (or a root linked out after the check) fails in the worker
    before anything is opened."""
    url = sqlite_url(tmp_path)
    settings = make_settings(tmp_path, database_url=url, data_roots=[world["root"]])
    spec = resolve_spec(JOINT).to_dict()
    spec["model"]["encoders"]["strong"] = {
        "name": "mlp",
        "params": {"pretrained": "/dev/zero"},
    }
    spec["dataset"]["params"]["root"] = "/etc"
    with session_factory(url)() as s:
        exp = crud.create_experiment(
            s, spec=resolve_spec(JOINT), queue="cpu", max_attempts=1, submitted_by="t"
        )
        exp.spec = spec
        s.commit()
        eid = exp.id
    assert runner.run(eid, settings=settings, worker="w") == "failed"
    with session_factory(url)() as s:
        row = crud.get_experiment(s, eid)
        assert row.error.startswith("refused path: ")
        assert "is not a" in row.error and "inside the allowed data roots" in row.error


def test_an_image_text_spec_is_stored_with_its_folders_resolved(client, world) -> None:
    """Sarcasm with a BERT encoder through the API: the dataset root, the tokenizer and the
    BERT folder resolved inside the roots; the web process reads the annotations only."""
    from igm_core.data import examples_image_text as ex

    root = world["root"]
    ex.write_sarcasm(root / "sarcasm")
    (root / "bert").mkdir()
    (root / "bert" / "config.json").write_text(
        '{"vocab_size": 40, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, '
        '"intermediate_size": 16, "max_position_embeddings": 64}'
    )
    spec = {
        "name": "it",
        "dataset": {"name": "sarcasm", "params": {"root": "sarcasm", "tokenizer": "bert"}},
        "method": {"name": "igm"},
        "model": {"encoders": {"text": {"name": "bert", "params": {"pretrained": "bert"}}}},
    }
    res = client.post("/experiments", json=spec)
    assert res.status_code == 201, res.text
    stored = res.json()["spec"]
    assert stored["dataset"]["params"]["tokenizer"] == str((root / "bert").resolve())
    assert stored["model"]["encoders"]["text"]["params"]["pretrained"] == str(
        (root / "bert").resolve()
    )
    assert stored["model"]["encoders"]["image"]["name"] == "conv"
