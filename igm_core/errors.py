"""The error a spec that does not validate raises, shared by spec.py and sweep.py."""

from __future__ import annotations


class SpecError(ValueError):
    """A spec that does not validate; `errors` holds (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"{path or '(spec)'}: {msg}" for path, msg in errors))
