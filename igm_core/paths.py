"""The one rule for paths a spec names: inside the configured data roots, after symlinks.

A service (the API before it writes a row, the worker before it opens anything) confines every
path of a spec with `confine_spec`: each dataset's `root`, each encoder's `pretrained` weights and
any other parameter in PATH_KEYS (checkpoint or init files). A relative path is relative to a data
root (tried in order), never to a working directory; symlinks are resolved before the check, so a
link inside a root that points elsewhere is refused; the spec gets the resolved absolute path, so
the process that opens it reads exactly what was checked. A refusal has one message for a path
that is missing and one that lies outside the roots, so it tells nothing about what exists outside
them, and no message ever holds a file's contents. Loaders call `inside` for the files they open
under a dataset root. Torch-free; `igm train` on a laptop does not confine (no roots there).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

Kind = Literal["dir", "file"]
# parameter names that hold paths, and what they name
PATH_KEYS: dict[str, Kind] = {
    "root": "dir",
    "pretrained": "file",
    "checkpoint": "file",
    "init": "file",
    "init_from": "file",
    "weights": "file",
    "tokenizer": "dir",
}
# where a component names a folder under a key that is a file elsewhere: a Hugging Face model
# is a folder as save_pretrained writes it
COMPONENT_KINDS: dict[tuple[str, str], Kind] = {("bert", "pretrained"): "dir"}
MAX_SHOWN = 200


class PathRefused(ValueError):
    """A path outside the data roots, missing, or of the wrong kind; `loc` names the field."""

    def __init__(self, loc: str, message: str) -> None:
        super().__init__(f"{loc}: {message}" if loc else message)
        self.loc, self.message = loc, message


def _resolved_roots(roots: Sequence[Path | str]) -> list[Path]:
    out = []
    for root in roots:
        try:
            out.append(Path(root).resolve())
        except (OSError, RuntimeError):
            continue  # a root that cannot be resolved admits nothing
    return out


def _is_kind(path: Path, kind: Kind) -> bool:
    try:
        return path.is_dir() if kind == "dir" else path.is_file()  # is_file: no devices, FIFOs
    except OSError:
        return False


def confine(value: str, roots: Sequence[Path | str], *, kind: Kind = "dir", loc: str = "") -> Path:
    """`value` resolved inside one of `roots` as an existing `kind`, or PathRefused."""
    shown = repr(value[:MAX_SHOWN])
    allowed = _resolved_roots(roots)
    if not allowed:
        raise PathRefused(
            loc,
            "paths are disabled on this server: set IGM_DATA_ROOTS to the folders that "
            "datasets and weights may lie under",
        )
    what = "folder" if kind == "dir" else "file"
    refused = PathRefused(
        loc,
        f"{shown} is not a {what} inside the allowed data roots "
        f"({', '.join(map(str, allowed))}): it is missing, or lies outside the allowed roots",
    )
    if not value or "\x00" in value or len(value) > 4096:
        raise refused
    given = Path(value)
    candidates = [given] if given.is_absolute() else [root / given for root in allowed]
    for candidate in candidates:
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError):  # a symlink loop, say
            continue
        if any(resolved.is_relative_to(root) for root in allowed) and _is_kind(resolved, kind):
            return resolved
    raise refused


def inside(base: Path, path: Path, what: str) -> Path:
    """`path` (under a dataset root `base`) resolved, if it stays inside `base`; a loader's
    check before it opens a file, so that a symlink in a dataset cannot reach elsewhere."""
    try:
        resolved = path.resolve()
        ok = resolved.is_relative_to(base.resolve())
    except (OSError, RuntimeError):
        ok = False
    if not ok:
        raise PermissionError(f"{what}: refused, it leads outside the dataset root {base}")
    return resolved


def spec_paths(spec: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], Kind]]:
    """(key path, kind) of every path parameter in a raw or resolved spec mapping."""

    def part(mapping: Any, key: str) -> Any:
        return mapping.get(key) if isinstance(mapping, dict) else None

    blocks: list[tuple[tuple[str, ...], Any, Any]] = [
        (("dataset", "params"), part(part(spec, "dataset"), "params"), part(spec, "dataset")),
        (("method", "params"), part(part(spec, "method"), "params"), part(spec, "method")),
    ]
    encoders = part(part(spec, "model"), "encoders")
    if isinstance(encoders, dict):
        for modality, enc in encoders.items():
            if isinstance(enc, dict):
                prefix = ("model", "encoders", str(modality), "params")
                blocks.append((prefix, enc.get("params"), enc))
    for prefix, params, component in blocks:
        if not isinstance(params, dict):
            continue
        name = part(component, "name")
        name = name if isinstance(name, str) else ""
        for key, kind in PATH_KEYS.items():
            if params.get(key) is not None:
                yield (*prefix, key), COMPONENT_KINDS.get((name, key), kind)


def confine_spec(
    spec: dict[str, Any], roots: Sequence[Path | str], refused: list[PathRefused] | None = None
) -> dict[str, Any]:
    """A copy of `spec` with every path parameter resolved inside `roots`, or PathRefused for
    the first that is not (a path given as a non-string is left to the spec's own checks).
    Given a `refused` list, every refusal is appended to it instead, its path left as given."""
    out = copy.deepcopy(spec)
    for keys, kind in spec_paths(spec):
        holder = out
        for key in keys[:-1]:
            holder = holder[key]
        value = holder[keys[-1]]
        if isinstance(value, str):
            try:
                holder[keys[-1]] = str(confine(value, roots, kind=kind, loc=".".join(keys)))
            except PathRefused as err:
                if refused is None:
                    raise
                refused.append(err)
    return out
