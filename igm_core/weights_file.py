"""The tensors (names, shapes) of a weights file, read without torch and without running it.

A `torch.save` file is a zip archive whose `<name>/data.pkl` pickle rebuilds each tensor with
torch._utils._rebuild_tensor_v2 from a storage reference (its bytes are `<name>/data/<key>`);
files from before torch 1.6 are a run of pickles instead (a magic number, the protocol, the
system's info, then the object, then the raw storages). `read_tensors` unpickles only the object
with a restricted Unpickler: find_class maps exactly the names a state dict needs (an OrderedDict,
the tensor and parameter rebuilders, the storage types) to stand-ins that record shapes, and
refuses every other name, so nothing in the file runs. Bytes read are bounded (MAX_META_BYTES:
the zip directory and the pickle, never the tensors' data); in a zip each storage must be there
with the bytes its tensors need. A safetensors file is recognised by its header and reported as
such. Torch-free: the API checks weights with it before anything queues (igm_core.encoder_check).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

MAX_META_BYTES = 64 * 2**20
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
ITEM_BYTES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
    "ComplexFloatStorage": 8,
    "ComplexDoubleStorage": 16,
}


class WeightsError(ValueError):
    """A file that is not a readable state dict; the message never quotes the file."""


@dataclass(frozen=True)
class Tensor:
    shape: tuple[int, ...]
    dtype: str  # the storage type's name without "Storage": "Float", "Long", ...


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _Storage:
    kind: str
    key: str
    numel: int


def _ints(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, int) and v >= 0 for v in value)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> Tensor:
    if not (isinstance(storage, _Storage) and isinstance(offset, int) and offset >= 0):
        raise WeightsError("a tensor without a storage")
    if not (_ints(size) and _ints(stride) and len(size) == len(stride)):
        raise WeightsError("a tensor with a malformed shape")
    if all(size):  # an empty tensor reads nothing; others must lie inside their storage
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= storage.numel:
            raise WeightsError("a tensor reaches past the end of its storage")
    return Tensor(tuple(size), storage.kind.removesuffix("Storage"))


def _rebuild_parameter(data: Any, *_rest: Any) -> Tensor:
    if not isinstance(data, Tensor):
        raise WeightsError("a parameter without a tensor")
    return data


ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in ITEM_BYTES},
}


class _Unpickler(pickle.Unpickler):
    """Builds only what ALLOWED names; storages become records of their type, key and size."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.storages: list[_Storage] = []

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise WeightsError(
                "it holds objects other than tensors (refused without running them)"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        # ("storage", type, key, location, numel) in a zip; a sixth item (a view) in a legacy file
        ok = isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
        if not ok or not isinstance(pid[1], _StorageType) or not isinstance(pid[4], int):
            raise WeightsError("it refers to data that is not a tensor storage")
        storage = _Storage(pid[1].name, str(pid[2]), pid[4])
        self.storages.append(storage)
        return storage


class _Budget(io.RawIOBase):
    """A file that refuses to read more than `limit` bytes in all (seeks are free)."""

    def __init__(self, file: BinaryIO, limit: int) -> None:
        self.file, self.left = file, limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if view.nbytes and not self.left:
            raise WeightsError(f"its metadata is larger than {MAX_META_BYTES} bytes")
        n = self.file.readinto(view[: self.left]) or 0
        self.left -= n
        return n


def _unpickle(data: BinaryIO) -> tuple[Any, list[_Storage]]:
    unpickler = _Unpickler(data)
    try:
        return unpickler.load(), unpickler.storages
    except WeightsError:
        raise
    except Exception as err:  # truncated or malformed pickles raise many kinds of errors
        raise WeightsError(f"its pickle is malformed ({type(err).__name__})") from None


def _from_zip(file: BinaryIO) -> Any:
    with zipfile.ZipFile(file) as archive:
        pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise WeightsError("it is a zip archive but not one that torch.save writes")
        prefix = pickles[0].removesuffix("data.pkl")
        with archive.open(pickles[0]) as member:
            obj, storages = _unpickle(io.BytesIO(member.read(MAX_META_BYTES)))
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    for storage in storages:
        have = sizes.get(f"{prefix}data/{storage.key}")
        if have is None or have < storage.numel * ITEM_BYTES[storage.kind]:
            raise WeightsError("a tensor's data is missing or short (a truncated file?)")
    return obj


def _from_legacy(head: BinaryIO) -> Any:
    magic, _ = _unpickle(head)
    if magic != LEGACY_MAGIC:
        raise WeightsError("it is a pickle but not one that torch.save writes")
    protocol, _ = _unpickle(head)
    if protocol != LEGACY_PROTOCOL:
        raise WeightsError("it is a torch.save file of an unknown version")
    _unpickle(head)  # the system's info: byte order, sizes of C types
    return _unpickle(head)[0]


def read_tensors(path: str | Path) -> dict[str, Tensor]:
    """{name: Tensor} of the state dict saved in `path` by torch.save, or WeightsError."""
    try:
        with open(path, "rb") as raw:
            start = raw.read(9)
            raw.seek(0)
            file = io.BufferedReader(_Budget(raw, MAX_META_BYTES))
            if start[:4] == b"PK\x03\x04":
                obj = _from_zip(file)  # type: ignore[arg-type]
            elif start[:1] == b"\x80":  # a pickle's PROTO opcode
                obj = _from_legacy(file)  # type: ignore[arg-type]
            elif len(start) == 9 and start[8:9] == b"{":
                raise WeightsError("it is a safetensors file, not a torch.save state dict")
            else:
                raise WeightsError("it is not a torch.save file")
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise WeightsError(
            f"it cannot be read as a torch.save file ({type(err).__name__})"
        ) from None
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise WeightsError("it is not a state dict (a mapping of names to tensors)")
    return dict(obj)
