"""Tests for the file-backed datasets: scikit-learn digits and pre-extracted .npz features."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from igm_core import catalog
from igm_core.data import digits, features, npz
from igm_core.data.params import DigitsParams, FeaturesParams

N_DIGITS = 1797

# ----------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits2() -> Any:
    return digits.load(DigitsParams(), seed=0)


@pytest.mark.parametrize("views", [2, 3])
def test_digits_shapes_match_catalog_meta(views: int) -> None:
    params = DigitsParams(views=views, noise=[0.1] * views)
    data = digits.load(params, seed=1)
    meta = catalog.dataset_meta("digits", params)
    assert data.modalities == meta["modalities"]
    assert data.shapes() == meta["shapes"]
    assert data.n_classes == meta["n_classes"] == 10
    for split in data.splits.values():
        assert split.y.dtype == torch.int64
        assert all(t.dtype == torch.float32 for t in split.x.values())


def test_digits_sizes_and_stratification(digits2: Any) -> None:
    sizes = digits2.info["sizes"]
    assert set(sizes) == {"train", "val", "test"}
    assert sum(sizes.values()) == N_DIGITS
    assert sizes == {name: len(s) for name, s in digits2.splits.items()}
    # Default fractions are 0.2 / 0.2 of the whole set.
    assert abs(sizes["val"] - 0.2 * N_DIGITS) <= 2
    assert abs(sizes["test"] - 0.2 * N_DIGITS) <= 2
    for split in digits2.splits.values():
        assert set(split.y.tolist()) == set(range(10))


def test_digits_without_noise_are_the_scaled_image() -> None:
    data = digits.load(DigitsParams(views=3, noise=[0.0, 0.0, 0.0]), seed=0)
    x = data.splits["train"].x
    assert float(x["top"].min()) >= 0.0 and float(x["top"].max()) <= 1.0
    full = torch.cat([x["top"], x["bottom"]], dim=2)  # N x 1 x 8 x 8
    pooled = torch.nn.functional.avg_pool2d(full, 2)
    assert torch.allclose(pooled, x["coarse"], atol=1e-6)


def test_digits_deterministic_per_seed(digits2: Any) -> None:
    again = digits.load(DigitsParams(), seed=0)
    other = digits.load(DigitsParams(), seed=1)
    for name in ("train", "val", "test"):
        assert torch.equal(digits2.splits[name].y, again.splits[name].y)
        for m in digits2.modalities:
            assert torch.equal(digits2.splits[name].x[m], again.splits[name].x[m])
    assert not torch.equal(digits2.splits["train"].x["top"], other.splits["train"].x["top"])


def test_digits_noise_level_per_view() -> None:
    clean = digits.load(DigitsParams(noise=[0.0, 0.0]), seed=3)
    noisy = digits.load(DigitsParams(noise=[0.0, 0.5]), seed=3)
    train_clean, train_noisy = clean.splits["train"].x, noisy.splits["train"].x
    assert torch.equal(train_clean["top"], train_noisy["top"])
    residual = train_noisy["bottom"] - train_clean["bottom"]
    assert 0.45 < float(residual.std()) < 0.55


# ----------------------------------------------------------------------------- features


def _arrays(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "label": np.arange(n) % 3,
        "audio": rng.normal(size=(n, 5)),  # float64 on purpose: converted to float32
        "video": rng.normal(size=(n, 2, 4, 4)).astype(np.float32),
    }


def _write(root: Path, overrides: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write a valid train/val/test root; overrides[split][name] replaces (None drops) an array."""
    root.mkdir(parents=True, exist_ok=True)
    for i, (split, n) in enumerate((("train", 12), ("val", 6), ("test", 6))):
        arrays: dict[str, Any] = _arrays(n, seed=i)
        for name, value in (overrides or {}).get(split, {}).items():
            if value is None:
                arrays.pop(name)
            else:
                arrays[name] = value
        np.savez(root / f"{split}.npz", **arrays)
    return root


@pytest.fixture
def good_root(tmp_path: Path) -> Path:
    return _write(tmp_path / "feats")


def test_features_load_good_root(good_root: Path) -> None:
    data = features.load(FeaturesParams(root=str(good_root)), seed=0)
    assert data.modalities == ["audio", "video"]
    assert data.shapes() == {"audio": (5,), "video": (2, 4, 4)}
    assert data.n_classes == 3
    assert data.info == {
        "root": str(good_root.resolve()),
        "sizes": {"train": 12, "val": 6, "test": 6},
    }
    for split in data.splits.values():
        assert split.y.dtype == torch.int64
        assert all(t.dtype == torch.float32 for t in split.x.values())
    expected = _arrays(6, seed=1)
    assert torch.equal(data.splits["val"].y, torch.from_numpy(expected["label"]))
    assert torch.allclose(
        data.splits["val"].x["audio"], torch.from_numpy(expected["audio"]).float()
    )


def test_read_meta_agrees_with_load(good_root: Path) -> None:
    data = features.load(FeaturesParams(root=str(good_root)), seed=0)
    meta = npz.read_meta(str(good_root), None)
    assert meta == {
        "modalities": data.modalities,
        "shapes": data.shapes(),
        "n_classes": data.n_classes,
        "sizes": {name: len(split) for name, split in data.splits.items()},
    }
    assert catalog.dataset_meta("features", FeaturesParams(root=str(good_root))) == meta


def test_explicit_n_classes_is_kept(good_root: Path) -> None:
    assert npz.read_meta(str(good_root), 7)["n_classes"] == 7
    assert features.load(FeaturesParams(root=str(good_root), n_classes=7), seed=0).n_classes == 7


def test_compressed_npz_is_accepted(tmp_path: Path) -> None:
    for split in ("train", "val", "test"):
        np.savez_compressed(tmp_path / f"{split}.npz", **_arrays(6))
    assert npz.read_meta(str(tmp_path), None)["shapes"] == {"audio": (5,), "video": (2, 4, 4)}


def _expect(root: Path, match: str, error: type[Exception] = ValueError) -> None:
    """Both the cheap (read_meta) and the full (load) path must refuse, with the same message."""
    with pytest.raises(error, match=match):
        npz.read_meta(str(root), None)
    with pytest.raises(error, match=match):
        features.load(FeaturesParams(root=str(root)), seed=0)


def test_missing_root(tmp_path: Path) -> None:
    _expect(tmp_path / "nope", re.escape(f"{tmp_path / 'nope'}: no such directory"), OSError)


def test_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    _expect(tmp_path / "file", "file: not a directory", OSError)


def test_missing_split_file(good_root: Path) -> None:
    (good_root / "val.npz").unlink()
    _expect(good_root, re.escape(f"{good_root.resolve()}: missing file val.npz"), OSError)


# one array changed in one split file, and the error that names the file and the array
ONE_BAD_ARRAY = {
    "missing_label": ({"train": {"label": None}}, r"train\.npz: missing array 'label'"),
    "row_mismatch": (
        {"val": {"audio": np.zeros((5, 5))}},
        r"val\.npz: array 'audio' has 5 rows but 'label' has 6",
    ),
    "integer_features": (
        {"train": {"audio": np.zeros((12, 5), dtype=np.int64)}},
        r"train\.npz: array 'audio' has dtype int64; expected a float array",
    ),
    "negative_label": (
        {"val": {"label": np.array([0, 1, 2, -1, 0, 1])}},
        r"val\.npz: array 'label' holds a negative value \(-1\)",
    ),
    "modality_missing_from_val": (
        {"val": {"video": None}},
        r"val\.npz: missing array 'video', which train\.npz has",
    ),
    "extra_modality_in_test": (
        {"test": {"depth": np.zeros((6, 3))}},
        r"test\.npz: array 'depth' is not in train\.npz",
    ),
    "shape_differs_across_splits": (
        {"test": {"video": np.zeros((6, 2, 4, 5), dtype=np.float32)}},
        re.escape("test.npz: array 'video' has sample shape (2, 4, 5) but (2, 4, 4) in train"),
    ),
    "bad_modality_name": (
        {"val": {"Audio": np.zeros((6, 5))}},
        r"val\.npz: array 'Audio' is not a valid modality name",
    ),
}


@pytest.mark.parametrize("case", list(ONE_BAD_ARRAY))
def test_one_bad_array_is_named(tmp_path: Path, case: str) -> None:
    changes, pattern = ONE_BAD_ARRAY[case]
    _expect(_write(tmp_path, changes), pattern)


def test_nan_values(tmp_path: Path) -> None:
    video = np.zeros((6, 2, 4, 4), dtype=np.float32)
    video[2, 1, 0, 3] = np.nan
    root = _write(tmp_path, {"test": {"video": video}})
    # Finding NaN needs the data, so only the full load checks it.
    assert npz.read_meta(str(root), None)["n_classes"] == 3
    with pytest.raises(ValueError, match=r"test\.npz: array 'video' holds NaN or infinite values"):
        features.load(FeaturesParams(root=str(root)), seed=0)


def test_infinite_values(tmp_path: Path) -> None:
    audio = np.zeros((6, 5))
    audio[0, 0] = -np.inf
    root = _write(tmp_path, {"val": {"audio": audio}})
    with pytest.raises(ValueError, match=r"val\.npz: array 'audio' holds NaN or infinite values"):
        features.load(FeaturesParams(root=str(root)), seed=0)


def test_float32_overflow(tmp_path: Path) -> None:
    audio = np.zeros((6, 5))
    audio[0, 0] = 1e300
    root = _write(tmp_path, {"val": {"audio": audio}})
    with pytest.raises(ValueError, match=r"val\.npz: array 'audio' holds values too large"):
        features.load(FeaturesParams(root=str(root)), seed=0)


@pytest.mark.parametrize(
    "label",
    [np.zeros(12, dtype=np.float32), np.zeros((12, 1), dtype=np.int64)],
    ids=["float", "2-D"],
)
def test_bad_label_array(tmp_path: Path, label: np.ndarray) -> None:
    root = _write(tmp_path, {"train": {"label": label}})
    _expect(root, r"train\.npz: 'label' must be a 1-D integer array")


def test_label_not_below_n_classes(good_root: Path) -> None:
    match = r"train\.npz: array 'label' holds the value 2, not below n_classes \(2\)"
    with pytest.raises(ValueError, match=match):
        npz.read_meta(str(good_root), 2)
    with pytest.raises(ValueError, match=match):
        features.load(FeaturesParams(root=str(good_root), n_classes=2), seed=0)


def test_single_class(tmp_path: Path) -> None:
    zeros = {"label": np.zeros(6, dtype=np.int64)}
    root = _write(tmp_path, {"train": {"label": np.zeros(12, dtype=np.int64)}, "val": zeros,
                             "test": zeros})  # fmt: skip
    _expect(root, "the labels hold a single class")


@pytest.mark.parametrize("shape", [(12,), (12, 2, 3), (12, 1, 2, 3, 4)], ids=["1-D", "3-D", "5-D"])
def test_bad_rank(tmp_path: Path, shape: tuple[int, ...]) -> None:
    root = _write(tmp_path, {"train": {"audio": np.zeros(shape)}})
    _expect(root, re.escape(f"train.npz: array 'audio' has shape {shape}; expected N x D"))


def test_empty_split(tmp_path: Path) -> None:
    empty = {"label": np.zeros(0, dtype=np.int64), "audio": np.zeros((0, 5)),
             "video": np.zeros((0, 2, 4, 4))}  # fmt: skip
    root = _write(tmp_path, {"test": empty})
    _expect(root, r"test\.npz: the split is empty")


def test_object_array_refused(tmp_path: Path) -> None:
    ragged = np.empty(12, dtype=object)
    ragged[:] = [np.zeros(i) for i in range(12)]
    root = _write(tmp_path, {"train": {"audio": ragged}})
    _expect(root, r"train\.npz: array 'audio' has dtype object; object arrays are not allowed")


def test_not_a_zip(good_root: Path) -> None:
    (good_root / "val.npz").write_bytes(b"not a zip archive")
    _expect(good_root, r"val\.npz: not a valid \.npz file")


def test_non_npy_member(good_root: Path) -> None:
    with zipfile.ZipFile(good_root / "test.npz", "a") as archive:
        archive.writestr("notes.txt", "hello")
    _expect(good_root, r"test\.npz: member 'notes\.txt' is not a \.npy array")
