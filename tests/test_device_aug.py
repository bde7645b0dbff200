"""Device-side frame augmentation (augment: device) equals the CPU path bit for bit, on CPU tensors.

Tolerance: none. The same per-sample generators draw the same frames, crop boxes and flips, and
the resize reproduces PIL's fixed-point bilinear arithmetic exactly (igm_core.data.device_aug).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from igm_core.data import av, av_prepare
from igm_core.data.av_meta import CremaDParams
from igm_core.data.device_aug import augment_frames, device_taps, pil_taps
from igm_core.data.examples import make_dataset
from igm_core.spec import resolve_spec


def test_frames_equal_the_pil_path_for_many_boxes_flips_and_sizes() -> None:
    rng = np.random.default_rng(0)
    for side, size in ((258, 224), (37, 32), (40, 48)):  # shrink, mild shrink, enlarge
        squares = rng.integers(0, 256, (10 if side > 100 else 24, side, side, 3), dtype=np.uint8)
        want, rows = [], []
        for i in range(len(squares)):
            draw = None if i % 5 == 0 else np.random.default_rng([11, i])  # eval every 5th
            want.append(av.frame_tensor(squares[i], size, draw))
            again = None if i % 5 == 0 else np.random.default_rng([11, i])
            if again is None:
                rows.append((0, 0, side, side, 0))
            else:
                rows.append((*av.crop_box(again, side), int(again.random() < 0.5)))
        assert {r[4] for r in rows} == {0, 1}
        got = augment_frames(
            torch.from_numpy(squares),
            torch.tensor(rows, dtype=torch.int32),
            size,
            av._SCALE,
            av._OFFSET,
        )
        assert got.dtype == torch.float32 and got.shape == (len(squares), 3, size, size)
        assert torch.equal(got, torch.stack(want)), (side, size)


def test_device_taps_equal_pil_taps_for_many_spans() -> None:
    rng = np.random.default_rng(1)
    for in_size, out_size in ((258, 224), (258, 32), (40, 48), (37, 5)):
        a = rng.integers(0, in_size - 1, 40)
        b = np.minimum(a + rng.integers(1, in_size, 40), in_size)
        got = device_taps(
            torch.tensor(a, dtype=torch.float64),
            torch.tensor(b, dtype=torch.float64),
            in_size,
            out_size,
        )
        for i in range(len(a)):
            want = pil_taps(float(a[i]), float(b[i]), in_size, out_size)
            assert np.array_equal(got[i].numpy(), want), (in_size, out_size, a[i], b[i])


def test_taps_sum_to_one_in_fixed_point() -> None:
    taps = pil_taps(13.0, 218.0, 258, 224)
    assert taps.shape == (224, 258)
    assert np.all(np.abs(taps.sum(axis=1) - 2**22) <= 258)  # rounding of each tap


def test_loader_batches_equal_across_paths_and_resume(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "c", frames=3, size=(40, 30))
    av_prepare.prepare("crema_d", str(root), {"frames": 2, "image_size": 32, "num_workers": 0})
    splits = {
        mode: av.load_crema_d(
            CremaDParams(root=str(root), frames=2, image_size=32, num_workers=0, augment=mode), 0
        ).splits
        for mode in ("cpu", "device")
    }
    for split in ("train", "test"):
        cpu, dev = splits["cpu"][split], splits["device"][split]
        assert cpu.shapes() == dev.shapes()
        for start in (0, 1):  # a resumed epoch skips batches and draws the same crops
            gen = (
                [torch.Generator().manual_seed(5) for _ in range(2)]
                if split == "train"
                else [None] * 2
            )
            a = list(cpu.batches(4, generator=gen[0], start=start, device="cpu"))
            b = list(dev.batches(4, generator=gen[1], start=start, device="cpu"))
            assert len(a) == len(b) > 0
            for (xa, ya), (xb, yb) in zip(a, b, strict=True):
                assert set(xa) == set(xb) == {"audio", "visual"}
                assert torch.equal(ya, yb) and torch.equal(xa["audio"], xb["audio"])
                assert torch.equal(xa["visual"], xb["visual"])


def test_the_option_is_hash_neutral_at_its_default(tmp_path: Path) -> None:
    root = str(make_dataset(tmp_path / "c", frames=1, size=(16, 12)))

    def spec(**extra: str) -> dict:
        params = {"root": root, **extra}
        dataset = {"name": "crema_d", "params": params}
        return {"name": "a", "dataset": dataset, "method": {"name": "igm"}}

    cpu, dev = resolve_spec(spec(augment="cpu")), resolve_spec(spec(augment="device"))
    assert resolve_spec(spec()).hash() == cpu.hash() != dev.hash()
    assert cpu.dataset.params["augment"] == "cpu"
