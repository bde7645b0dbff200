"""Tests for the audio-visual clip datasets (crema_d, kinetics_sounds) and their decode cache."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from igm_core import catalog, prepare_cli
from igm_core.data import av, av_frames, av_meta, av_prepare
from igm_core.data.av_meta import CremaDParams, KineticsSoundsParams
from igm_core.data.examples import make_dataset, tone


@pytest.fixture(scope="module")
def crema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only CREMA-D fixture with valid.csv (tests that modify data make their own)."""
    return make_dataset(tmp_path_factory.mktemp("crema") / "root")


def _params(root: Path, **kw: Any) -> CremaDParams:
    return CremaDParams(root=str(root), num_workers=0, **kw)


def _index(data: Any, split: str, clip: str) -> int:
    names = [c.name for c in data.splits[split].source.clips]
    return names.index(clip)


# ----------------------------------------------------------------------------- shapes


def test_crema_d_shapes_match_meta(crema: Path) -> None:
    p = _params(crema, cache=False)
    data = av.load_crema_d(p, seed=0)
    meta = catalog.dataset_meta("crema_d", p)
    assert data.shapes() == meta["shapes"] == {"audio": (1, 257, 188), "visual": (1, 3, 224, 224)}
    assert data.n_classes == meta["n_classes"] == 6
    assert data.info["sizes"] == {"train": 12, "val": 6, "test": 6}
    xs, y = next(data.splits["train"].batches(4, generator=torch.Generator().manual_seed(0)))
    assert xs["audio"].shape == (4, 1, 257, 188) and xs["visual"].shape == (4, 1, 3, 224, 224)
    assert xs["audio"].dtype == xs["visual"].dtype == torch.float32 and y.dtype == torch.int64


def test_kinetics_sounds_shapes_and_classes(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ks", "kinetics_sounds", frames=4)
    p = KineticsSoundsParams(root=str(root), num_workers=0, image_size=32)
    data = av.load_kinetics_sounds(p, seed=0)
    assert data.shapes() == {"audio": (1, 257, 1003), "visual": (3, 3, 32, 32)}
    assert data.n_classes == 3 and data.info["classes"] == ["dog", "drum", "saw"]
    assert catalog.dataset_meta("kinetics_sounds", p)["shapes"] == data.shapes()


# ----------------------------------------------------------------------------- audio


def test_resampled_tone_peaks_in_the_right_bin(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    sf.write(path, tone(1000.0, 2.0, 44100), 44100)
    p = _params(tmp_path)
    wave = av.waveform(path, p)
    assert wave.shape == (66150,)
    spec = av.spectrogram(wave, p)
    assert spec.shape == (1, 257, 188)
    peak = int(spec[0].mean(dim=1).argmax())
    assert peak == round(1000.0 * 512 / 22050)  # bin 23; at 44.1 kHz unresampled it would be 12


def test_short_audio_is_tiled_and_long_audio_cut(tmp_path: Path) -> None:
    p = _params(tmp_path)
    rng = np.random.default_rng(0)
    short = rng.uniform(-0.5, 0.5, 22050).astype(np.float32)  # 1 s at the target rate
    sf.write(tmp_path / "short.wav", short, 22050, subtype="FLOAT")
    wave = av.waveform(tmp_path / "short.wav", p)
    assert np.array_equal(wave, np.tile(short, 3))
    long = rng.uniform(-0.5, 0.5, 5 * 22050).astype(np.float32)
    sf.write(tmp_path / "long.wav", long, 22050, subtype="FLOAT")
    assert np.array_equal(av.waveform(tmp_path / "long.wav", p), long[:66150])


# ----------------------------------------------------------------------------- frames


def test_eval_frames_evenly_spaced_training_frames_random_and_seeded(tmp_path: Path) -> None:
    pick = av_frames.pick_frames
    assert pick(10, 3, None) == [1, 5, 8]
    assert pick(2, 3, None) == [0, 1, 1]
    draws = [pick(10, 3, np.random.default_rng(s)) for s in range(20)]
    assert draws[0] == pick(10, 3, np.random.default_rng(0))
    assert len({tuple(d) for d in draws}) > 5 and all(d == sorted(d) for d in draws)

    root = make_dataset(tmp_path / "c", frames=3)
    source = av.load_crema_d(_params(root, frames=2, image_size=32), 0).splits["train"].source
    i = next(i for i, c in enumerate(source.clips) if len(c.frames) == 3)
    ev = [source.load(i, ["visual"], None)["visual"] for _ in range(2)]
    assert torch.equal(ev[0], ev[1]) and ev[0].shape == (2, 3, 32, 32)
    tr = [source.load(i, ["visual"], np.random.default_rng(s))["visual"] for s in (7, 7, 8)]
    assert torch.equal(tr[0], tr[1]) and not torch.equal(tr[0], tr[2])
    assert not torch.equal(tr[0], ev[0])


def test_frame_rules_name_their_indices() -> None:
    choose = av_frames.choose_frames
    assert choose(10, 3, "first", None) == [0, 1, 2]
    assert choose(10, 3, "centre", None) == [1, 5, 8]
    assert choose(10, 3, "strided", None) == [0, 3, 6]
    assert choose(2, 3, "first", None) == [0, 1, 1]  # the last frame repeated
    assert choose(2, 3, "strided", None) == [0, 0, 0]  # as the MLA loader: floor(2 / 3) = 0
    assert choose(10, 3, "random", np.random.default_rng(4)) == av_frames.pick_frames(
        10, 3, np.random.default_rng(4)
    )
    with pytest.raises(ValueError, match="needs a random generator"):
        choose(10, 3, "random", None)
    with pytest.raises(ValueError, match="unknown frame choice 'last'"):
        choose(10, 3, "last", None)


def _which_frames(squares: torch.Tensor, paths: tuple[Path, ...], side: int) -> list[int]:
    """The index of the clip frame each uint8 square is (every frame of a clip differs)."""
    decoded = [torch.from_numpy(np.array(av.read_frame(p, side))) for p in paths]
    out = []
    for sq in squares:
        (hit,) = [j for j, d in enumerate(decoded) if torch.equal(sq, d)]
        out.append(hit)
    return out


EXPECTED_OF_6 = {"first": [0, 1], "centre": [1, 4], "strided": [0, 3]}  # 2 frames of 6


@pytest.mark.parametrize("dataset", ["crema_d", "kinetics_sounds"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_frame_choice_reads_the_frames_it_names(tmp_path: Path, dataset: str, mode: str) -> None:
    """Each rule, in training and in evaluation, reads the frames it names off the clip's folder
    (augment: device hands the chosen frames over uncropped, so they can be recognised)."""
    root = make_dataset(tmp_path / "c", dataset, frames=6)
    cls = CremaDParams if dataset == "crema_d" else KineticsSoundsParams
    seen = {}
    for how in av_frames.FRAME_CHOICES:
        p = cls(root=str(root), num_workers=0, frames=2, image_size=32, augment="device",
                **{f"frame_{mode}": how})  # fmt: skip
        source = av.build(dataset, p).splits["train"].source
        i = next(i for i, c in enumerate(source.clips) if len(c.frames) == 6)
        paths, side = source.clips[i].frames, av_meta.store_size(p)
        got = []
        for seed in range(12):
            rng = np.random.default_rng(seed) if mode == "train" else None
            got.append(_which_frames(source.load(i, ["visual"], rng)["visual"], paths, side))
        if how == "random":
            assert all(g == sorted(set(g)) and len(g) == 2 for g in got)
            if mode == "train":  # the sample's generator draws them
                assert got[0] == av_frames.pick_frames(6, 2, np.random.default_rng(0))
                assert len({tuple(g) for g in got}) > 3
            else:  # one fixed draw per clip
                assert all(g == got[0] for g in got)
                assert got[0] == av_frames.pick_frames(6, 2, av_frames.eval_generator(i))
        else:
            assert all(g == EXPECTED_OF_6[how] for g in got), (how, got)
        seen[how] = got[0]
    assert len({tuple(v) for v in seen.values()}) == 4  # four rules, four different choices


def test_frame_choice_defaults_keep_the_spec_hash(crema: Path) -> None:
    from igm_core.spec import resolve_spec

    def spec(**frame: str) -> dict[str, Any]:
        params = {"root": str(crema), "num_workers": 0, **frame}
        return {"name": "h", "dataset": {"name": "crema_d", "params": params},
                "method": {"name": "joint"}}  # fmt: skip

    plain = resolve_spec(spec())
    assert plain.dataset.params["frame_train"] == "random"
    assert plain.dataset.params["frame_eval"] == "centre"
    assert resolve_spec(spec(frame_train="random", frame_eval="centre")).hash() == plain.hash()
    assert resolve_spec(spec(frame_train="first")).hash() != plain.hash()
    assert resolve_spec(spec(frame_eval="first")).hash() != plain.hash()
    with pytest.raises(Exception, match="frame_eval"):
        resolve_spec(spec(frame_eval="last"))


def test_random_resized_crop_stays_inside_the_square() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        x0, y0, x1, y1 = av.crop_box(rng, 37)
        assert 0 <= x0 < x1 <= 37 and 0 <= y0 < y1 <= 37


# ----------------------------------------------------------------------------- validation split


def test_validation_carved_when_valid_csv_absent(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "c", valid=False, per_class={"train": 5, "test": 1})
    a = av.load_crema_d(_params(root, val_fraction=0.2), seed=0)
    b = av.load_crema_d(_params(root, val_fraction=0.2), seed=123)
    assert a.info["sizes"] == {"train": 24, "val": 6, "test": 6}
    assert sorted(a.splits["val"].source.labels.tolist()) == list(range(6))  # stratified
    names = [[c.name for c in d.splits["val"].source.clips] for d in (a, b)]
    assert names[0] == names[1]  # fixed seed, independent of the run seed
    assert a.info["val"]["source"].startswith("carved from") and a.info["val"]["fraction"] == 0.2
    train = {c.name for c in a.splits["train"].source.clips}
    assert not train & set(names[0])


# ----------------------------------------------------------------------------- bad data


def _break(root: Path, case: str) -> tuple[str, str]:
    """Damage a fresh fixture; returns the expected exception-text fragment and split/clip."""
    clip = "test_NEU_018"
    if case == "missing root":
        shutil.rmtree(root)
        return str(root), ""
    if case == "missing csv":
        (root / "annotations" / "test.csv").unlink()
        return str(root / "annotations" / "test.csv"), ""
    if case == "no wav":
        (root / "AudioWAV" / f"{clip}.wav").unlink()
        return str(root / "AudioWAV" / f"{clip}.wav"), ""
    if case == "no frames":
        shutil.rmtree(root / "Image-01-FPS" / clip)
        return str(root / "Image-01-FPS" / clip), ""
    if case == "unknown label":
        csv = root / "annotations" / "valid.csv"
        csv.write_text(csv.read_text() + "val_ANG_999,XYZ\n")
        return f"{csv}: row", "XYZ"
    path = root / "AudioWAV" / f"{clip}.wav"
    if case == "empty wav":
        sf.write(path, np.zeros(0, np.float32), 16000)
    elif case == "garbage wav":
        path.write_bytes(b"not a wav file at all" * 10)
    else:  # corrupt jpeg
        path = next((root / "Image-01-FPS" / clip).iterdir())
        path.write_bytes(b"\xff\xd8\xff" + os.urandom(64))
    return str(path), clip


@pytest.mark.parametrize(
    "case",
    [
        "missing root",
        "missing csv",
        "no wav",
        "no frames",
        "unknown label",
        "empty wav",
        "garbage wav",
        "corrupt jpeg",
    ],
)
def test_bad_data_errors_name_the_path(tmp_path: Path, case: str) -> None:
    root = make_dataset(tmp_path / "c", frames=1, size=(16, 12))
    fragment, clip = _break(root, case)
    p = _params(root, image_size=32)
    with pytest.raises((OSError, ValueError)) as err:
        data = av.load_crema_d(p, seed=0)
        i = _index(data, "test", clip)
        data.splits["test"].source.load(i, ["audio", "visual"], None)
    assert fragment in str(err.value)
    if case == "unknown label":
        assert "XYZ" in str(err.value)
    elif clip:  # decode errors come from load(); the plan itself was fine
        assert isinstance(err.value, ValueError)


def test_unknown_kinetics_label_names_csv_row_and_value(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "ks", "kinetics_sounds", frames=1, size=(16, 12))
    csv = root / "annotations" / "test.csv"
    csv.write_text(csv.read_text() + "test_x_1,kazoo\n")
    line = len([r for r in csv.read_text().splitlines() if r.strip()])
    with pytest.raises(ValueError, match=rf"test\.csv: row {line}: unknown label 'kazoo'"):
        catalog.dataset_meta("kinetics_sounds", KineticsSoundsParams(root=str(root)))


def test_skip_missing_counts_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_dataset(tmp_path / "c", frames=1, size=(16, 12))
    (root / "AudioWAV" / "train_HAP_002.wav").unlink()
    shutil.rmtree(root / "Image-01-FPS" / "test_SAD_020")
    with caplog.at_level(logging.WARNING, logger="igm_core.data.av"):
        data = av.load_crema_d(_params(root, skip_missing=True), seed=0)
    assert data.info["skipped"] == 2
    assert data.info["sizes"] == {"train": 11, "val": 6, "test": 5}
    assert "skipped 2 clips" in caplog.text


# ----------------------------------------------------------------------------- cache


def _eval_tensors(data: Any, split: str) -> list[dict[str, torch.Tensor]]:
    source = data.splits[split].source
    return [source.load(i, ["audio", "visual"], None) for i in range(len(source.labels))]


def test_cache_gives_the_decoded_tensors_and_invalidates(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "c", frames=3, size=(40, 30))
    p = _params(root, frames=2, image_size=32)
    decoded = av.load_crema_d(p, 0)
    reports = av_prepare.prepare("crema_d", str(root), {"frames": 2, "image_size": 32})
    assert [r.written for r in reports] == [True, True, True]
    cached = av.load_crema_d(p, 0)
    assert all(cached.info["cache"][s] for s in ("train", "val", "test"))
    for a, b in zip(_eval_tensors(decoded, "val"), _eval_tensors(cached, "val"), strict=True):
        assert torch.allclose(a["audio"], b["audio"], atol=2e-2)  # float16 storage
        assert torch.equal(a["visual"], b["visual"])
    tr = [
        d.splits["train"].source.load(1, ["visual"], np.random.default_rng(3))
        for d in (decoded, cached)
    ]
    assert torch.equal(tr[0]["visual"], tr[1]["visual"])
    assert not any(r.written for r in av_prepare.prepare("crema_d", str(root), {"image_size": 32}))

    # another image size, or an edited file: the old cache is not found
    assert av.load_crema_d(_params(root, image_size=48), 0).info["cache"]["val"] is None
    wav = cached.splits["test"].source.clips[0].wav
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    info = av.load_crema_d(p, 0).info["cache"]
    assert info["test"] is None and info["train"] is not None
    assert av.load_crema_d(_params(root, cache=False), 0).info["cache"]["train"] is None


def test_cache_read_through_worker_processes(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "c", frames=2, size=(16, 12))
    av_prepare.prepare("crema_d", str(root), {"image_size": 32, "num_workers": 0})
    p = CremaDParams(root=str(root), image_size=32, num_workers=2)
    split = av.load_crema_d(p, 0).splits["train"]
    batches = list(split.batches(5, generator=torch.Generator().manual_seed(1)))
    assert sum(len(y) for _, y in batches) == 12
    again = list(split.batches(5, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(batches[0][0]["visual"], again[0][0]["visual"])


def test_prepare_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dataset(tmp_path / "c", frames=1, size=(16, 12))
    argv = ["crema_d", "--root", str(root), "--param", "image_size=32", "--param", "num_workers=0"]
    assert prepare_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "train" in out and "written" in out and "total" in out
    assert len(list((root / ".igm_cache").iterdir())) == 3
    assert prepare_cli.main(argv) == 0
    assert "up to date" in capsys.readouterr().out
    assert prepare_cli.main(["crema_d", "--root", str(tmp_path / "nowhere")]) == 2
    assert prepare_cli.main([*argv, "--param", "frames=99"]) == 2


# ----------------------------------------------------------------------------- training


CONV = {"name": "conv", "params": {"channels": [8]}}
RESNET = {"name": "resnet18"}


@pytest.mark.parametrize(
    ("dataset", "enc"),
    [
        ("crema_d", CONV),
        ("kinetics_sounds", CONV),
        # the paper's encoder: 3 s here on an idle 2-core CPU, but 50 s seen on a busy one
        pytest.param(
            "crema_d",
            RESNET,
            marks=pytest.mark.slow,
        ),
    ],
    ids=["crema_d-conv", "kinetics_sounds-conv", "crema_d-resnet18"],
)
def test_trains_through_the_real_trainer(tmp_path: Path, dataset: str, enc: dict) -> None:
    from igm_core.trainer import train

    root = make_dataset(
        tmp_path / "d", dataset, per_class={"train": 2, "val": 1, "test": 1}, size=(24, 18)
    )
    params = {"root": str(root), "image_size": 32, "num_workers": 0, "frames": 1}
    if dataset == "kinetics_sounds":
        params["seconds"] = 2.0  # keeps the CPU test short; 257 x 201 spectrograms
    res = train(
        {
            "name": "t",
            "dataset": {"name": dataset, "params": params},
            "method": {"name": "igm"},
            "schedule": {"stage_epochs": [1, 1]},
            "batch_size": 4,
            "model": {"encoders": {"audio": enc, "visual": enc}},
        }
    )
    assert res.status == "completed"
    assert set(res.result["test"]["modality_acc"]) == {"audio", "visual"}


def test_meta_is_torch_free_and_reads_only_csvs(crema: Path) -> None:
    meta = av_meta.crema_d_meta(CremaDParams(root=str(crema), frames=4, image_size=64))
    assert meta["shapes"]["visual"] == (4, 3, 64, 64)
    assert meta["shapes"]["audio"] == (1, 257, 188)
    assert av_meta.spectrogram_shape(KineticsSoundsParams(root="x")) == (1, 257, 1003)


def test_igm_train_command_on_a_prepared_crema_d_folder(tmp_path: Path) -> None:
    """As a user runs it: `igm prepare`, then `igm train` on the folder, one short stage each."""
    from igm_core.cli import main

    root = make_dataset(tmp_path / "crema", size=(24, 18))
    assert (
        prepare_cli.main(["crema_d", "--root", str(root), "--param", "image_size=32", "--quiet"])
        == 0
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: cli-crema\n"
        f"dataset: {{name: crema_d, params: {{root: '{root}', image_size: 32, num_workers: 0}}}}\n"
        "method: {name: igm}\n"
        "schedule: {stage_epochs: [1, 1]}\n"
        "batch_size: 4\n"
        "model: {encoders: {audio: {name: conv, params: {channels: [8]}},"
        " visual: {name: conv, params: {channels: [8]}}}}\n"
    )
    out = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(out), "--quiet"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert set(result["test"]["modality_acc"]) == {"audio", "visual"}
    assert result["spec"]["dataset"]["params"]["cache"] is True
