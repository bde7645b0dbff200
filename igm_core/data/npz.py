"""Reading and validating the `features` dataset: root/{train,val,test}.npz.

Each file holds an integer `label` array (N) and one float array per modality, N x D or
N x C x H x W, with the same modalities and per-sample shapes in all three files.

numpy only on purpose: the web process calls `read_meta` to validate specs and must not load
torch. `read_meta` reads the array headers from the zip members plus the label arrays, never the
feature arrays themselves; `load_splits` reads everything and also checks the values.

Every problem is reported as a ValueError (or, for a missing root or file, an OSError subclass)
whose message starts with the offending file and names the offending array.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from igm_core.names import MODALITY_NAME
from igm_core.paths import inside

SPLITS = ("train", "val", "test")
LABEL = "label"
# Mirrors the upper bound of FeaturesParams.n_classes, so that an inferred class count cannot
# exceed what a user could have written down (a stray huge label would otherwise size the head).
MAX_CLASSES = 100_000

_NAME = re.compile(MODALITY_NAME)
# What a truncated or corrupt archive raises besides ValueError; reported as ValueError.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError)


class ArrayLike(Protocol):
    """What the structural checks need: an ndarray, or the header of one."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self) -> np.dtype[Any]: ...


@dataclass(frozen=True)
class ArrayHeader:
    """Shape and dtype of an array stored in an .npz file, read without its data."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]


def split_files(root: str | Path) -> dict[str, Path]:
    """The resolved path of each split file; raises if root or one of the files is missing."""
    base = Path(root).expanduser()
    if not base.exists():
        raise FileNotFoundError(f"{base}: no such directory")
    if not base.is_dir():
        raise NotADirectoryError(f"{base}: not a directory")
    base = base.resolve()
    files = {}
    for split in SPLITS:
        path = base / f"{split}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{base}: missing file {split}.npz")
        files[split] = inside(base, path, f"{base}/{split}.npz")  # a link must not lead out
    return files


def read_headers(path: Path) -> dict[str, ArrayHeader]:
    """Shape and dtype of every array in an .npz file, in file order, from the headers only."""
    headers: dict[str, ArrayHeader] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    raise ValueError(f"{path}: member {member!r} is not a .npy array")
                name = member[: -len(".npy")]
                with archive.open(member) as fp:
                    try:
                        headers[name] = _read_header(fp)
                    except ValueError as err:
                        raise ValueError(f"{path}: cannot read array {name!r} ({err})") from None
    except _ZIP_ERRORS as err:
        raise ValueError(f"{path}: not a valid .npz file ({err})") from None
    return headers


def _read_header(fp: Any) -> ArrayHeader:
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        # numpy has no public header reader for newer versions (rare: non-latin-1 field names);
        # read the whole member instead, still refusing pickled objects.
        array = np.lib.format.read_array(fp, allow_pickle=False)
        shape, dtype = array.shape, array.dtype
    return ArrayHeader(tuple(int(n) for n in shape), np.dtype(dtype))


def validate_split(path: Path, arrays: Mapping[str, ArrayLike]) -> dict[str, tuple[int, ...]]:
    """Check the structure of one split file (names, dtypes, ranks, row counts).

    `arrays` maps array names to ndarrays or `ArrayHeader`s, so the same checks serve the cheap
    header pass and the full load. Returns the per-sample shape of each modality, in file order.
    """
    for name, array in arrays.items():
        if array.dtype.hasobject:
            raise ValueError(
                f"{path}: array {name!r} has dtype {array.dtype}; object arrays are not allowed"
            )
    if LABEL not in arrays:
        raise ValueError(f"{path}: missing array {LABEL!r}")
    label = arrays[LABEL]
    if len(label.shape) != 1 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(
            f"{path}: {LABEL!r} must be a 1-D integer array, "
            f"got dtype {label.dtype} with shape {tuple(label.shape)}"
        )
    n = label.shape[0]
    if n == 0:
        raise ValueError(f"{path}: the split is empty ({LABEL!r} has 0 rows)")

    shapes: dict[str, tuple[int, ...]] = {}
    for name, array in arrays.items():
        if name == LABEL:
            continue
        if not _NAME.match(name):
            raise ValueError(
                f"{path}: array {name!r} is not a valid modality name "
                f"(lower-case letters, digits and '_', starting with a letter, at most 32)"
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(
                f"{path}: array {name!r} has dtype {array.dtype}; expected a float array"
            )
        shape = tuple(array.shape)
        if len(shape) not in (2, 4):
            raise ValueError(
                f"{path}: array {name!r} has shape {shape}; expected N x D or N x C x H x W"
            )
        if shape[0] != n:
            raise ValueError(f"{path}: array {name!r} has {shape[0]} rows but {LABEL!r} has {n}")
        if 0 in shape[1:]:
            raise ValueError(f"{path}: array {name!r} has shape {shape}; a sample holds no values")
        shapes[name] = shape[1:]
    if not shapes:
        raise ValueError(f"{path}: no modality arrays besides {LABEL!r}")
    return shapes


def validate_consistent(
    reference: Path,
    reference_shapes: Mapping[str, tuple[int, ...]],
    path: Path,
    shapes: Mapping[str, tuple[int, ...]],
) -> None:
    """Check that a split has exactly the reference split's modalities, with the same shapes."""
    for name, shape in reference_shapes.items():
        if name not in shapes:
            raise ValueError(f"{path}: missing array {name!r}, which {reference.name} has")
        if shapes[name] != shape:
            raise ValueError(
                f"{path}: array {name!r} has sample shape {shapes[name]} "
                f"but {shape} in {reference.name}"
            )
    for name in shapes:
        if name not in reference_shapes:
            raise ValueError(f"{path}: array {name!r} is not in {reference.name}")


def validate_labels(path: Path, labels: np.ndarray, n_classes: int | None) -> None:
    """Check label values: not negative and, when n_classes is known, below it."""
    low = int(labels.min())
    if low < 0:
        raise ValueError(f"{path}: array {LABEL!r} holds a negative value ({low})")
    if n_classes is not None:
        high = int(labels.max())
        if high >= n_classes:
            raise ValueError(
                f"{path}: array {LABEL!r} holds the value {high}, not below n_classes ({n_classes})"
            )


def validate_values(path: Path, name: str, array: np.ndarray) -> np.ndarray:
    """The array as float32, refusing NaN and infinities (also those made by the cast)."""
    # Overflow is reported below as an error, so numpy's warning would only repeat it.
    with np.errstate(over="ignore"):
        converted = array.astype(np.float32, copy=False)
    if not np.isfinite(converted).all():
        if np.isfinite(array).all():
            raise ValueError(f"{path}: array {name!r} holds values too large for float32")
        raise ValueError(f"{path}: array {name!r} holds NaN or infinite values")
    return converted


def _read_labels(path: Path) -> np.ndarray:
    # NpzFile reads members lazily, so only the label data is decompressed here.
    with np.load(path, allow_pickle=False) as npz:
        return npz[LABEL]


def _check_all(
    files: Mapping[str, Path], headers: Mapping[str, Mapping[str, ArrayLike]]
) -> dict[str, tuple[int, ...]]:
    """Structural checks on every split, then the cross-split ones; train's shapes."""
    shapes = {split: validate_split(files[split], headers[split]) for split in SPLITS}
    for split in SPLITS[1:]:
        validate_consistent(files["train"], shapes["train"], files[split], shapes[split])
    return shapes["train"]


def _resolve_classes(
    files: Mapping[str, Path], labels: Mapping[str, np.ndarray], n_classes: int | None
) -> int:
    for split in SPLITS:
        validate_labels(files[split], labels[split], n_classes)
    if n_classes is not None:
        return n_classes
    inferred = max(int(labels[split].max()) for split in SPLITS) + 1
    root = files["train"].parent
    if inferred < 2:
        raise ValueError(f"{root}: the labels hold a single class; at least 2 are needed")
    if inferred > MAX_CLASSES:
        raise ValueError(
            f"{root}: the largest label is {inferred - 1}, which implies more than "
            f"{MAX_CLASSES} classes"
        )
    return inferred


def read_meta(root: str, n_classes: int | None) -> dict[str, Any]:
    """Modalities, per-sample shapes and class count of a features root, read cheaply.

    Reads the array headers and the label arrays only; NaN checks happen in `load_splits`.
    """
    files = split_files(root)
    headers = {split: read_headers(files[split]) for split in SPLITS}
    shapes = _check_all(files, headers)
    labels = {split: _read_labels(files[split]) for split in SPLITS}
    return {
        "modalities": list(shapes),
        "shapes": dict(shapes),
        "n_classes": _resolve_classes(files, labels, n_classes),
        "sizes": {split: len(labels[split]) for split in SPLITS},
    }


@dataclass
class NpzSplits:
    """The validated contents of a features root: float32 arrays and int64 labels per split."""

    root: Path
    modalities: list[str]
    n_classes: int
    x: dict[str, dict[str, np.ndarray]]  # split -> modality -> N x ... float32
    y: dict[str, np.ndarray]  # split -> N int64


def load_splits(root: str, n_classes: int | None) -> NpzSplits:
    """Read and fully validate root/{train,val,test}.npz."""
    files = split_files(root)
    # Cheap structural pass first, so that a bad val or test file fails before train's features
    # are decompressed.
    _check_all(files, {split: read_headers(files[split]) for split in SPLITS})

    raw: dict[str, dict[str, np.ndarray]] = {}
    for split in SPLITS:
        try:
            with np.load(files[split], allow_pickle=False) as npz:
                raw[split] = {name: npz[name] for name in npz.files}
        except (ValueError, *_ZIP_ERRORS) as err:
            raise ValueError(f"{files[split]}: cannot read ({err})") from None
    # The file could have changed between the two passes; checking again costs nothing.
    shapes = _check_all(files, raw)
    classes = _resolve_classes(files, {split: raw[split][LABEL] for split in SPLITS}, n_classes)

    x = {
        split: {m: validate_values(files[split], m, raw[split][m]) for m in shapes}
        for split in SPLITS
    }
    y = {split: raw[split][LABEL].astype(np.int64, copy=False) for split in SPLITS}
    return NpzSplits(files["train"].parent, list(shapes), classes, x, y)
