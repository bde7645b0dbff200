"""The errors of a spec that does not validate: SpecError, shared by spec.py and sweep.py, and
the collector that gathers them while a spec is resolved."""

from __future__ import annotations

import copy
from typing import Any, NoReturn

from pydantic import ValidationError

from igm_core.names import pattern_message


class SpecError(ValueError):
    """A spec that does not validate; `errors` holds (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"{path or '(spec)'}: {msg}" for path, msg in errors))


def readable(error: Any) -> str:
    """One pydantic error's message, in words where pydantic's would show a regex or a type."""
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "string_pattern_mismatch":
        said = pattern_message((error.get("ctx") or {}).get("pattern"), error.get("input"))
        if said:
            return said
    return error["msg"]


class Problems:
    """The one error collector of a resolution: (field path, message) pairs, raised together."""

    def __init__(self, found: list[tuple[str, str]] | None = None) -> None:
        self.found: list[tuple[str, str]] = list(found or [])

    def add(self, path: str, message: str) -> None:
        self.found.append((path, message))

    def add_invalid(self, err: ValidationError, prefix: str = "") -> None:
        """pydantic's errors, each at `prefix` + its location."""
        for e in err.errors():
            # a mapping key that fails is located at the key itself, not its "[key]" marker
            path = ".".join(str(part) for part in e["loc"] if part != "[key]")
            self.add(f"{prefix}{path}" if path else prefix.rstrip("."), readable(e))

    def add_outside(self, path: str, names: list[str], allowed: list[str], says: str) -> None:
        """A problem at `path`.i for each name not in `allowed`, which the message lists."""
        for i, name in enumerate(names):
            if name not in allowed:
                self.add(f"{path}.{i}", f"{name!r} {says}: {', '.join(allowed)}")

    def has(self, prefix: str) -> bool:
        """Whether a problem was found at `prefix` or under it."""
        return any(p == prefix or p.startswith(f"{prefix}.") for p, _ in self.found)

    def stop(self) -> NoReturn:
        raise SpecError(self.found) from None

    def stop_if_any(self) -> None:
        if self.found:
            self.stop()


def _key_path(data: Any, loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The longest prefix of `loc` that walks mapping keys of `data` (a list index, pydantic's
    "[key]" marker or a key that is not there ends it)."""
    path: list[str] = []
    node = data
    for part in loc:
        if not isinstance(node, dict) or not isinstance(part, str) or part not in node:
            break
        path.append(part)
        node = node[part]
    return tuple(path)


def _drop(data: dict[str, Any], path: tuple[str, ...]) -> None:
    node = data
    for key in path[:-1]:
        node = node[key]
    node.pop(path[-1], None)


def without_invalid(
    data: dict[str, Any], err: ValidationError, validate: Any, keep: dict[str, Any]
) -> tuple[Any, set[str]] | None:
    """`validate` of `data` with every field that failed in `err` left out (its default stands
    in; a required key that has none gets its `keep` placeholder), and the dotted fields left
    out; None when a required field cannot be left out. The later steps of a resolution run on
    it, so one round trip reports their problems too; its own problems are already in `err`."""
    work = copy.deepcopy(data)
    dropped: set[str] = set()
    errors = err.errors()
    for _ in range(8):  # each round leaves out at least one more field, or gives up
        changed = False
        for e in errors:
            loc = tuple(e["loc"])
            if e["type"] == "missing":  # a required key: its placeholder, or its whole parent
                if len(loc) == 1 and loc[0] in keep and loc[0] not in work:
                    work[loc[0]] = keep[loc[0]]
                    changed = True
                    continue
                loc = loc[:-1]
            path = _key_path(work, loc)
            if path:
                _drop(work, path)
                dropped.add(".".join(path))
                changed = True
        if not changed:
            return None
        try:
            return validate(work), dropped
        except ValidationError as again:
            errors = again.errors()
    return None
