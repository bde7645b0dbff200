"""The image-text encoders: `bert` from a local folder only (no hub, whatever the environment),
`resnet50` with torchvision's layout and a checked state dict, `token_bag`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from igm_core.data import examples_image_text as ex
from igm_core.resnet50 import ResNet50Encoder
from igm_core.text_encoders import BertEncoder, TokenBagEncoder
from tests.checkout import ROOT

# torchvision's resnet50(): 25,557,032 parameters and 320 state-dict entries (weights, biases
# and batch-norm buffers), with these names among them
TORCHVISION_PARAMETERS = 25_557_032
TORCHVISION_KEYS = 320
SOME_KEYS = (
    "conv1.weight",
    "bn1.running_var",
    "layer1.0.downsample.0.weight",
    "layer1.0.downsample.1.num_batches_tracked",
    "layer3.5.conv3.weight",
    "layer4.2.bn3.bias",
    "fc.weight",
    "fc.bias",
)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ex.write_tiny_bert(tmp_path_factory.mktemp("bert") / "bert-tiny")


def tokens(ids: list[list[int]], length: int) -> torch.Tensor:
    """Rows of ids, padded with 0: a batch of 2 x length token inputs."""
    out = torch.zeros(len(ids), 2, length, dtype=torch.long)
    for i, row in enumerate(ids):
        out[i, 0, : len(row)] = torch.tensor(row)
        out[i, 1, : len(row)] = 1
    return out


# ----------------------------------------------------------------------------- no network

OFFLINE_PROBE = textwrap.dedent(
    r"""
    import socket, sys
    attempts = []
    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError("network refused by the test")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = lambda address, *a, **k: refuse(None, address)
    from igm_core import hf
    from igm_core.text_encoders import BertEncoder
    folder = sys.argv[1]
    enc = BertEncoder((2, 8), folder)
    tok = hf.load_tokenizer(folder)
    ids = hf.tokenize(["the cat sat"], tok, 8)
    import pathlib
    only_vocab = pathlib.Path(sys.argv[2])
    only_vocab.mkdir()
    (only_vocab / "vocab.txt").write_text("[PAD]\n")
    for name in ("bert-base-uncased", folder + "/missing", str(only_vocab)):
        try:
            hf.load_bert(name)
        except FileNotFoundError as err:
            print("refused:", err)
    import torch
    print("ids", ids.tolist()[0][0], "out", tuple(enc(torch.from_numpy(ids)).shape))
    print("attempts", len(attempts))
    """
)


def test_bert_never_contacts_a_hub(bert_dir: Path, tmp_path: Path) -> None:
    """HF_HUB_OFFLINE unset, the hub endpoint and proxies pointing at a closed local port and
    every socket connection refused and counted: the model and tokenizer load from the folder,
    a hub model name is a clear error, and no connection is ever attempted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    env.update(
        HF_ENDPOINT=closed,
        HTTP_PROXY=closed,
        HTTPS_PROXY=closed,
        ALL_PROXY=closed,
        HF_HOME=str(tmp_path / "hf-home"),
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE_PROBE, str(bert_dir), str(tmp_path / "vocab-only")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "attempts 0" in out, out
    assert "ids [2, " in out and "out (1, 32)" in out
    assert out.count("refused:") == 3 and out.count("never downloaded from a hub") == 3
    assert "(no config.json)" in out
    assert not (tmp_path / "hf-home").exists()  # nothing was cached either


# ----------------------------------------------------------------------------- bert


def test_bert_is_the_cls_vector_and_ignores_padding(bert_dir: Path) -> None:
    from transformers import BertModel

    torch.manual_seed(0)
    enc = BertEncoder((2, 12), str(bert_dir)).eval()
    reference = BertModel.from_pretrained(str(bert_dir), local_files_only=True).eval()
    x = tokens([[2, 7, 8, 9, 3], [2, 10, 3]], 12)
    with torch.no_grad():
        got = enc(x)
        want = reference(input_ids=x[:, 0], attention_mask=x[:, 1]).last_hidden_state[:, 0]
    assert got.shape == (2, 32) and enc.out_dim == 32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)  # the batch runs on 5 columns


def test_bert_dropout_repeats_after_a_reload(bert_dir: Path) -> None:
    """Training-mode forwards draw their dropout from the encoder's seed and counter (saved
    with the weights), not from the global generator: a copy restored from a state dict
    repeats the same outputs, whatever else used the global generator in between."""
    torch.manual_seed(1)
    a = BertEncoder((2, 8), str(bert_dir)).train()
    x = tokens([[2, 7, 8, 3], [2, 9, 3]], 8)
    a(x)
    state = {k: v.clone() for k, v in a.state_dict().items()}
    first = a(x)
    assert not torch.equal(first, a(x))  # dropout differs from call to call
    torch.manual_seed(99)
    b = BertEncoder((2, 8), str(bert_dir)).train()
    b.load_state_dict(state)
    torch.rand(1000)  # the global generator moves on
    torch.testing.assert_close(b(x), first, rtol=0, atol=0)


def test_bert_refuses_ids_outside_its_vocabulary(bert_dir: Path) -> None:
    enc = BertEncoder((2, 8), str(bert_dir)).eval()
    with pytest.raises(ValueError, match=r"outside the vocabulary .* not this model's"):
        enc(tokens([[2, 30000, 3]], 8))
    with pytest.raises(ValueError, match="needs 2 x L token"):
        BertEncoder((3, 32, 32), str(bert_dir))
    with pytest.raises(ValueError, match="at most 64 tokens"):
        BertEncoder((2, 100), str(bert_dir))


def test_token_bag_averages_the_caption_tokens() -> None:
    torch.manual_seed(0)
    enc = TokenBagEncoder((2, 6), buckets=50, dim=4, out_dim=3)
    x = tokens([[2, 7, 3], [2, 7, 3]], 6)  # padding never counts, whatever its id
    x[1, 0, 3:] = 77
    out = enc(x)
    torch.testing.assert_close(out[0], out[1])
    mean = enc.embed.weight[[2, 7, 3]].mean(0)
    torch.testing.assert_close(out[0], torch.relu(enc.fc(mean)))


# ----------------------------------------------------------------------------- resnet50


def test_resnet50_has_torchvisions_layout() -> None:
    enc = ResNet50Encoder((3, 32, 32))
    state = enc.state_dict()
    assert sum(p.numel() for p in enc.parameters()) == TORCHVISION_PARAMETERS
    assert len(state) == TORCHVISION_KEYS and all(k in state for k in SOME_KEYS)
    assert enc(torch.randn(2, 3, 32, 32)).shape == (2, 1000) and enc.out_dim == 1000
    assert ResNet50Encoder((3, 32, 32), fc=False).out_dim == 2048
    proj = ResNet50Encoder((3, 32, 32), proj_dim=24)
    assert proj(torch.randn(2, 3, 32, 32)).shape == (2, 24)
    frames = ResNet50Encoder((2, 3, 32, 32), fc=False)
    assert frames(torch.randn(3, 2, 3, 32, 32)).shape == (3, 2048)


def test_resnet50_loads_a_torchvision_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = ResNet50Encoder((3, 32, 32))
    file = tmp_path / "resnet50.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, file)  # DataParallel
    loaded = ResNet50Encoder((3, 32, 32), pretrained=str(file), proj_dim=16)
    for k, v in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    trunk = ResNet50Encoder((3, 32, 32), pretrained=str(file), fc=False)  # fc keys ignored
    assert torch.equal(trunk.conv1.weight, source.conv1.weight)
    grey = ResNet50Encoder((1, 32, 32), pretrained=str(file))  # RGB filters averaged
    torch.testing.assert_close(grey.conv1.weight, source.conv1.weight.mean(1, keepdim=True))


@pytest.mark.parametrize(
    ("state", "needle"),
    [
        ("drop", "1 missing keys ['layer4.2.bn3.running_var']"),
        ("extra", "1 unexpected keys ['head.weight']"),
        ("shape", "1 of another shape ['fc.weight']"),
        ("resnet18", "not a torchvision-format ResNet-50 state dict"),
        ("list", "not a state dict (a list)"),
        ("garbage", "cannot read a state dict"),
    ],
)
def test_resnet50_refuses_a_wrong_state_dict(tmp_path: Path, state: str, needle: str) -> None:
    from igm_core.resnet import ResNet18Encoder

    good = ResNet50Encoder((3, 32, 32)).state_dict()
    file = tmp_path / "w.pth"
    if state == "drop":
        good.pop("layer4.2.bn3.running_var")
    elif state == "extra":
        good["head.weight"] = torch.zeros(1)
    elif state == "shape":
        good["fc.weight"] = torch.zeros(10, 2048)
    elif state == "resnet18":
        good = ResNet18Encoder((3, 32, 32)).state_dict()
    if state == "garbage":
        file.write_bytes(b"not a checkpoint")
    else:
        torch.save([1, 2] if state == "list" else good, file)
    with pytest.raises(ValueError) as err:
        ResNet50Encoder((3, 32, 32), pretrained=str(file))
    assert str(file) in str(err.value) and needle in str(err.value)
    with pytest.raises(FileNotFoundError, match="no such file"):
        ResNet50Encoder((3, 32, 32), pretrained=str(tmp_path / "none.pth"))
