"""Seed groups and their labels: results whose resolved specs differ only in their seed form a
group, and a group is labelled by what tells it apart.

A group's label is its name (the spec's name without a trailing "-seed<k>"). Groups that share a
name are told apart by the spec keys whose values differ between them, each under its shortest
unambiguous name (`method.name` -> `method`, `method.params.tau` -> `tau`): `band-check
(method=igm)`, never a hash. Labels are made over every group of a selection (`others`: specs of
the selection that a view does not show, e.g. running experiments in a table of finished ones),
so a group has the same label, and the same position in the label order (its colour), in every
view of that selection. Torch-free.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SEED_SUFFIX = re.compile(r"-seed[0-9]+$")
# the keys that tell groups apart first, when they differ; the rest in sorted order
_FIRST = ("method.name", "dataset.name")


@dataclass
class Run:
    path: Path
    result: dict[str, Any]

    @property
    def seed(self) -> int:
        return int(self.result["spec"]["seed"])


@dataclass
class Group:
    label: str
    spec: dict[str, Any]  # the resolved spec, seed removed, name without "-seed<k>"
    runs: list[Run] = field(default_factory=list)
    index: int = 0  # position of the label among every group of the selection, sorted


def group_key(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec without its seed, and its name without a trailing "-seed<k>"."""
    key = {k: v for k, v in spec.items() if k != "seed"}
    key["name"] = _SEED_SUFFIX.sub("", spec["name"])
    return key


def _canonical(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


def flatten(spec: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A spec as {"dotted.key": JSON text of the value}; lists and empty mappings stay whole."""
    out: dict[str, str] = {}
    for key, value in spec.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = json.dumps(value, sort_keys=True)
    return out


def differing(flat: list[dict[str, str]]) -> list[str]:
    """The dotted keys whose values (or presence) are not the same in every flattened spec."""
    keys = sorted({k for f in flat for k in f})
    return [k for k in keys if len({f.get(k) for f in flat}) > 1]


def short_names(keys: Iterable[str]) -> dict[str, str]:
    """Each dotted key under its shortest trailing part that no other of `keys` shares, a
    trailing ".name" dropped: method.name -> method, method.params.tau -> tau."""
    parts = {k: (k[: -len(".name")] if k.endswith(".name") else k).split(".") for k in keys}
    out = {}
    for key, mine in parts.items():
        for n in range(1, len(mine) + 1):
            short = ".".join(mine[-n:])
            if all(".".join(p[-n:]) != short for k, p in parts.items() if k != key):
                break
        out[key] = short
    return out


def shown(value: Any) -> str:
    """A spec value as a label shows it: text as is, floats to 4 significant digits."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value, separators=(",", ":"))


def describe(values: Mapping[str, Any]) -> str:
    """{"method.params.tau": 0.4, ...} as "tau=0.4, ...", keys under their short names."""
    short = short_names(values)
    return ", ".join(f"{short[k]}={shown(v)}" for k, v in values.items())


def _telling_apart(flat: dict[str, dict[str, str]]) -> list[str]:
    """Differing keys, method and dataset first, each kept only where it splits groups that
    the keys before it left together, until every group is told apart."""
    keys = differing(list(flat.values()))
    keys.sort(key=lambda k: (k not in _FIRST, _FIRST.index(k) if k in _FIRST else 0, k))
    chosen: list[str] = []
    for key in keys:
        tied = _ties(flat, chosen)
        if not tied:
            break
        if any(len({flat[c].get(key) for c in same}) > 1 for same in tied):
            chosen.append(key)
    return chosen


def _ties(flat: dict[str, dict[str, str]], chosen: list[str]) -> list[list[str]]:
    together: dict[tuple, list[str]] = {}
    for canon, f in flat.items():
        together.setdefault(tuple(f.get(k) for k in chosen), []).append(canon)
    return [same for same in together.values() if len(same) > 1]


def labels(keys: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Canonical group key -> label: the name, and where several groups share it, the values of
    the keys that tell them apart (a key a spec lacks is left out of its label)."""
    by_name: dict[str, list[str]] = {}
    for canon, key in keys.items():
        by_name.setdefault(key["name"], []).append(canon)
    out = {}
    for name, canons in by_name.items():
        if len(canons) == 1:
            out[canons[0]] = name
            continue
        flat = {c: flatten({k: v for k, v in keys[c].items() if k != "name"}) for c in canons}
        chosen = _telling_apart(flat)
        short = short_names(chosen)
        for c in canons:
            told = (f"{short[k]}={shown(json.loads(flat[c][k]))}" for k in chosen if k in flat[c])
            out[c] = f"{name} ({', '.join(told)})"
    return _unique(out)


def _unique(out: dict[str, str]) -> dict[str, str]:
    """Numbers a label that another group's name happens to spell already: "x (2)"."""
    seen: dict[str, int] = {}
    for canon in sorted(out, key=lambda c: (out[c], c)):
        label = out[canon]
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            out[canon] = f"{label} ({seen[label]})"
    return out


def group_runs(runs: Iterable[Run], others: Iterable[Mapping[str, Any]] = ()) -> list[Group]:
    """Group the runs whose specs differ only in the seed, sorted by label; `others` (specs of
    the same selection that are not among the runs) take part in labelling and ordering only."""
    keyed: dict[str, dict[str, Any]] = {}
    members: dict[str, list[Run]] = {}
    for run in runs:
        key = group_key(run.result["spec"])
        canon = _canonical(key)
        keyed[canon] = key
        members.setdefault(canon, []).append(run)
    for spec in others:
        key = group_key(dict(spec))
        keyed.setdefault(_canonical(key), key)
    named = labels(keyed)
    order = {label: i for i, label in enumerate(sorted(named.values()))}
    groups = [
        Group(named[c], keyed[c], sorted(rs, key=lambda r: (r.seed, str(r.path))), order[named[c]])
        for c, rs in members.items()
    ]
    return sorted(groups, key=lambda g: g.label)
