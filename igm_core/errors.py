"""The errors of a spec that does not validate: SpecError, shared by spec.py and sweep.py, and
the collector that gathers them while a spec is resolved."""

from __future__ import annotations

from typing import NoReturn

from pydantic import ValidationError


class SpecError(ValueError):
    """A spec that does not validate; `errors` holds (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"{path or '(spec)'}: {msg}" for path, msg in errors))


class Problems:
    """The one error collector of a resolution: (field path, message) pairs, raised together."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.found.append((path, message))

    def add_invalid(self, err: ValidationError, prefix: str = "") -> None:
        """pydantic's errors, each at `prefix` + its location."""
        for e in err.errors():
            path = ".".join(str(part) for part in e["loc"])
            message = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            self.add(f"{prefix}{path}" if path else prefix.rstrip("."), message)

    def add_outside(self, path: str, names: list[str], allowed: list[str], says: str) -> None:
        """A problem at `path`.i for each name not in `allowed`, which the message lists."""
        for i, name in enumerate(names):
            if name not in allowed:
                self.add(f"{path}.{i}", f"{name!r} {says}: {', '.join(allowed)}")

    def stop(self) -> NoReturn:
        raise SpecError(self.found) from None

    def stop_if_any(self) -> None:
        if self.found:
            self.stop()
