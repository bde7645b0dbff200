"""Name -> factory registries for datasets, encoders and methods.

An entry carries its name, a one-line description and a pydantic model of its parameters; the
factory is a "module:attribute" string imported only when the entry is built. This keeps the
registries (and spec validation) importable without torch, which the web process relies on.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

PUBLIC_EXTRAS = ("kind",)  # extras that describe() shows; the rest (hooks, examples) are internal


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    params: type[BaseModel]
    factory: str  # "package.module:attribute", imported lazily
    extra: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Callable[..., Any]:
        module_name, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def extra_loaded(self, key: str) -> Callable[..., Any]:
        """An extra given as "module:attribute" (like the factory), imported now."""
        module_name, _, attr = self.extra[key].partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "params": self.params.model_json_schema(),
            **{k: v for k, v in self.extra.items() if k in PUBLIC_EXTRAS},
        }


class Registry:
    """An ordered mapping of names to entries of one kind (dataset, encoder or method)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(
        self,
        name: str,
        description: str,
        params: type[BaseModel],
        factory: str,
        **extra: Any,
    ) -> Entry:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        entry = Entry(name, description, params, factory, extra)
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def describe(self) -> list[dict[str, Any]]:
        return [entry.describe() for entry in self]
