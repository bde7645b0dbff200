"""Command-line values of the remote commands: `key=value` pairs, grid values, distributions."""

from __future__ import annotations

from typing import Any

import yaml


def grid_values(text: str) -> list[Any]:
    """ "0.1,0.2" -> [0.1, 0.2]; a YAML list ("[[64], [128]]") for values that hold commas."""
    if text.lstrip().startswith("["):
        values = yaml.safe_load(text)
        if not isinstance(values, list) or not values:
            raise ValueError(f"--grid: {text!r} is not a non-empty YAML list")
        return values
    return [yaml.safe_load(v) for v in text.split(",")]


DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")


def distribution(key: str, text: str) -> dict[str, Any]:
    """ "log_uniform:1e-4:1e-2", "int_uniform:1:5", "uniform:0:1" or "choice:a,b,c"."""
    kind, _, rest = text.partition(":")
    if kind not in DISTRIBUTIONS or not rest:
        raise ValueError(
            f"--random {key}: give one of {', '.join(DISTRIBUTIONS)} and its arguments, e.g. "
            f"{key}=log_uniform:1e-4:1e-2 or {key}=choice:a,b"
        )
    if kind == "choice":
        return {"choice": [yaml.safe_load(v) for v in rest.split(",")]}
    bounds = rest.split(":")
    if len(bounds) != 2:
        raise ValueError(f"--random {key}: {kind} takes two bounds, lo:hi")
    number = int if kind == "int_uniform" else float
    try:
        return {kind: [number(b) for b in bounds]}
    except ValueError:
        raise ValueError(f"--random {key}: bounds must be numbers, got {rest!r}") from None


def pairs(items: list[str] | None, flag: str) -> list[tuple[str, str]]:
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag}: expected key=value, got {item!r}")
        out.append((key.strip(), value))
    return out
