"""igm_core.encoder_check and igm_core.weights_file against files torch itself writes: the
torch-free table of ResNet-18's tensors is the built encoder's; a state dict that loads is
accepted and one that does not is refused, with the message the encoder raises when it is built;
a pickle that would run code is refused without running it."""

from __future__ import annotations

import os
import struct
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from igm_core import encoder_check, weights_file
from igm_core.models import ConvEncoder
from igm_core.resnet import ResNet18Encoder

SHAPES = [(1, 4, 8), (3, 16, 16), (2, 3, 8, 8)]


def shapes_of(state: dict) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("shape", SHAPES)
def test_the_table_is_the_built_encoder(shape) -> None:
    built = ResNet18Encoder(shape).state_dict()
    assert encoder_check.resnet18_state(shape) == shapes_of(built)


def test_input_ranks_are_the_encoders_own() -> None:
    for name, cls, kw in [("conv", ConvEncoder, {"channels": [4], "out_dim": 4}),
                          ("resnet18", ResNet18Encoder, {})]:  # fmt: skip
        for shape in [(32,), (4, 8)]:
            message = encoder_check.input_error(name, shape)
            assert message is not None and "encoders that take these inputs: mlp" in message
            with pytest.raises(ValueError) as err:
                cls(shape, **kw)
            assert str(err.value) == message
        assert encoder_check.input_error(name, (1, 4, 8)) is None
    assert encoder_check.input_error("mlp", (32,)) is None


def test_every_registered_encoder_has_an_input_rule() -> None:
    from igm_core import catalog

    assert [*encoder_check.ANY_SHAPE, *encoder_check.INPUTS] == catalog.ENCODERS.names()


def test_token_encoders_take_ids_and_masks_only() -> None:
    for name in ("bert", "token_bag"):
        assert encoder_check.input_error(name, (2, 16)) is None
        for shape in [(16,), (3, 16), (3, 32, 32)]:
            message = encoder_check.input_error(name, shape)
            assert message is not None and "needs 2 x L token" in message
    assert encoder_check.input_error("resnet50", (3, 32, 32)) is None
    assert "encoders that take these inputs: mlp, bert, token_bag" in (
        encoder_check.input_error("resnet50", (2, 16)) or ""
    )


def save(path: Path, state, **kw) -> Path:
    torch.save(state, path, **kw)
    return path


@pytest.fixture
def rgb(tmp_path: Path) -> dict:
    return ResNet18Encoder((3, 16, 16)).state_dict()


def test_state_dicts_that_load_are_accepted(tmp_path: Path, rgb: dict) -> None:
    fc = {"fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}
    no_counters = {k: v for k, v in rgb.items() if not k.endswith("num_batches_tracked")}
    files = {
        "plain": save(tmp_path / "a.pt", rgb),
        "legacy": save(tmp_path / "b.pth", rgb, _use_new_zipfile_serialization=False),
        "classifier": save(tmp_path / "c.pt", OrderedDict({**rgb, **fc})),
        "data-parallel": save(tmp_path / "d.pt", {f"module.{k}": v for k, v in rgb.items()}),
        "no counters": save(tmp_path / "e.pt", no_counters),
        "half": save(tmp_path / "f.pt", {k: v.half() for k, v in no_counters.items()}),
    }
    shapes = [(3, 16, 16), (1, 4, 8), (2, 3, 8, 8)]  # RGB weights on 1 channel: averaged
    for i, (name, path) in enumerate(files.items()):
        for shape in shapes:
            assert encoder_check.weights_error("resnet18", shape, path) is None, (name, shape)
        enc = ResNet18Encoder(shapes[i % 3], pretrained=str(path))  # and torch loads it
        assert torch.equal(enc.layer4[1].bn2.running_var, rgb["layer4.1.bn2.running_var"])


def refused(path: Path, shape=(1, 4, 8)) -> str:
    """The API's message; the encoder, built on the same file, raises the same words."""
    message = encoder_check.weights_error("resnet18", shape, path)
    assert message is not None and message.startswith("not a resnet18 state dict for inputs of ")
    with pytest.raises(ValueError) as err:
        ResNet18Encoder(shape, pretrained=str(path))
    assert str(err.value) == f"{path}: {message}"
    return message


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_files_that_do_not_fit_are_refused_naming_why(tmp_path: Path, rgb: dict) -> None:
    mlp = torch.nn.Sequential(torch.nn.Linear(32, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    assert "missing conv1.weight, bn1.weight, bn1.bias and 97 more; 4 tensors resnet18 has not" in (
        refused(save(tmp_path / "mlp.pt", mlp.state_dict()))
    )
    narrow = {k: v[:256] if k.startswith("layer4.1.bn2") and v.dim() else v for k, v in rgb.items()}
    assert (
        "wrong shapes for layer4.1.bn2.weight, layer4.1.bn2.bias, layer4.1.bn2.running_mean "
        "and 1 more (layer4.1.bn2.weight must be 512)" in refused(save(tmp_path / "n.pt", narrow))
    )
    wrapped = save(tmp_path / "ckpt.pt", {"state_dict": rgb, "epoch": 3})
    assert refused(wrapped).endswith("it is not a state dict (a mapping of names to tensors)")
    (tmp_path / "noise.pt").write_bytes(os.urandom(4096))
    assert refused(tmp_path / "noise.pt").endswith("it is not a torch.save file")
    cut = tmp_path / "cut.pt"
    cut.write_bytes((tmp_path / "ckpt.pt").read_bytes()[:-5000])
    assert "cannot be read as a torch.save file" in refused(cut)
    header = b'{"conv1.weight": {"dtype": "F32", "shape": [64, 3, 7, 7], "data_offsets": [0, 0]}}'
    (tmp_path / "w.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    assert refused(tmp_path / "w.safetensors").endswith("a safetensors file, not a torch.save "
                                                         "state dict")  # fmt: skip


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    for kw in ({}, {"_use_new_zipfile_serialization": False}):
        path = save(tmp_path / "evil.pt", {"conv1.weight": RunsCode(marker)}, **kw)
        with pytest.raises(weights_file.WeightsError, match="objects other than tensors"):
            weights_file.read_tensors(path)
        assert not marker.exists()


def test_short_or_oversized_storages_are_refused(tmp_path: Path, monkeypatch) -> None:
    path = save(tmp_path / "v.pt", {"a": torch.arange(12.0).reshape(3, 4)[:, 1]})
    assert weights_file.read_tensors(path)["a"] == weights_file.Tensor((3,), "Float")
    monkeypatch.setattr(weights_file, "MAX_META_BYTES", 200)
    with pytest.raises(weights_file.WeightsError, match="metadata is larger than 200 bytes"):
        weights_file.read_tensors(path)
