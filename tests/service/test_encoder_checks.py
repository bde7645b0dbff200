"""Encoders that do not fit their inputs, and weights files that do not fit their encoder, are
refused by the API before anything queues, on both databases, with the words the worker uses when
it builds the model (igm_core.encoder_check is the one check); weights that fit are accepted."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from igm_core.resnet import ResNet18Encoder
from server import crud
from server.db import session_factory
from server.main import create_app
from server.settings import Settings
from tests.service.conftest import make_settings
from worker import runner

SYNTHETIC = {"name": "enc", "dataset": {"name": "synthetic"}, "method": {"name": "joint"}}
DIGITS = {
    "name": "enc",
    "dataset": {"name": "digits"},
    "method": {"name": "joint"},
    "schedule": {"epochs": 1},
}


def with_encoder(spec: dict, modality: str, encoder: dict) -> dict:
    return {**spec, "model": {"encoders": {modality: encoder}}}


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(ResNet18Encoder((3, 16, 16)).state_dict(), weights / "resnet18-rgb.pt")
    mlp = torch.nn.Sequential(torch.nn.Linear(32, 8), torch.nn.Linear(8, 2))
    torch.save(mlp.state_dict(), weights / "mlp.pt")
    (weights / "noise.pth").write_bytes(os.urandom(2048))
    return make_settings(tmp_path, database_url=db_url, data_roots=[weights])


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def refusal(res) -> dict:
    assert res.status_code == 422, res.text
    (err,) = res.json()["detail"]
    return err


@pytest.mark.parametrize("encoder", ["resnet18", "conv"])
def test_image_encoders_on_vectors_are_refused(client: TestClient, encoder: str) -> None:
    spec = with_encoder(SYNTHETIC, "strong", {"name": encoder})
    err = refusal(client.post("/experiments", json=spec))
    assert err["loc"] == "model.encoders.strong.name"
    assert err["msg"] == (
        f"modality 'strong': encoder {encoder!r} needs C x H x W or T x C x H x W inputs, "
        "got 32 (1 dimension); encoders that take these inputs: mlp"
    )
    assert client.get("/experiments").json()["count"] == 0


def test_weights_that_do_not_fit_are_refused(client: TestClient) -> None:
    for name, why in [
        ("mlp.pt", "missing conv1.weight, bn1.weight, bn1.bias and 97 more; 4 tensors "),
        ("noise.pth", "it is not a torch.save file"),
    ]:
        spec = with_encoder(DIGITS, "top", {"name": "resnet18", "params": {"pretrained": name}})
        err = refusal(client.post("/experiments", json=spec))
        assert err["loc"] == "model.encoders.top.params.pretrained"
        assert err["msg"].startswith("not a resnet18 state dict for inputs of 1 x 4 x 8: ")
        assert why in err["msg"], err
    sweep = {
        "base": DIGITS,
        "grid": {"model.encoders.top": [{"name": "resnet18", "params": {"pretrained": "mlp.pt"}}]},
    }
    res = client.post("/experiments/sweep", json=sweep)
    assert res.status_code == 422 and "not a resnet18 state dict" in res.text
    assert client.get("/experiments").json()["count"] == 0


def test_weights_that_fit_are_accepted(client: TestClient) -> None:
    spec = with_encoder(
        DIGITS, "top", {"name": "resnet18", "params": {"pretrained": "resnet18-rgb.pt"}}
    )
    assert client.post("/experiments", json=spec).status_code == 201


def test_the_worker_refuses_with_the_same_words(client: TestClient, settings: Settings) -> None:
    """A row written around the API (or a file replaced after the check) fails in the worker,
    when the model is built, with the message the API gives."""
    bad = with_encoder(DIGITS, "top", {"name": "resnet18", "params": {"pretrained": "mlp.pt"}})
    api_message = refusal(client.post("/experiments", json=bad))["msg"]
    good = with_encoder(
        DIGITS, "top", {"name": "resnet18", "params": {"pretrained": "resnet18-rgb.pt"}}
    )
    eid = client.post("/experiments", json=good).json()["id"]
    url = settings.resolved_database_url()
    with session_factory(url)() as s:
        row = crud.get_experiment(s, eid)
        weights = Path(row.spec["model"]["encoders"]["top"]["params"]["pretrained"])
    weights.write_bytes((weights.parent / "mlp.pt").read_bytes())  # replaced after the check
    assert runner.run(eid, settings=settings, worker="w") == "failed"
    with session_factory(url)() as s:
        error = crud.get_experiment(s, eid).error
    assert error == f"ValueError: {weights}: {api_message.replace('mlp.pt', weights.name)}"
