"""Seeds for `igm train --seeds`: parsing "0,1,2" or "0-4", one spec and folder per seed."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MAX_SEED = 2**31 - 1


class SeedsError(ValueError, argparse.ArgumentTypeError):
    """A --seeds value that does not parse; argparse prints its message as is."""


def parse_seeds(text: str) -> list[int]:
    """Seeds from "0,1,2" or ranges such as "0-4" (inclusive), mixed: "0-2,7". Distinct, in order.

    Raises SeedsError (a ValueError and an argparse.ArgumentTypeError) with the reason.
    """
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part)
        if match is None:
            raise SeedsError(
                f"bad seed {part!r} in {text!r}: give non-negative integers or ranges, e.g. 0,1,2 "
                "or 0-4"
            )
        lo, hi = int(match[1]), int(match[2] or match[1])
        if hi < lo:
            raise SeedsError(f"bad seed range {part!r}: the end is below the start")
        if hi > MAX_SEED or hi - lo >= 10_000:
            raise SeedsError(
                f"bad seed range {part!r}: seeds lie in [0, {MAX_SEED}], 10,000 at most"
            )
        for seed in range(lo, hi + 1):
            if seed in seeds:
                raise SeedsError(f"seed {seed} is given twice in {text!r}")
            seeds.append(seed)
    return seeds


def seed_specs(
    spec: dict[str, Any], seeds: Sequence[int], out: str | Path
) -> list[tuple[int, dict[str, Any], Path]]:
    """(seed, spec mapping with that seed, out/seed-<seed>) for each seed; the name is kept."""
    base = Path(out)
    return [(s, {**spec, "seed": s}, base / f"seed-{s}") for s in seeds]


def already_done(out: str | Path, spec_hash: str) -> bool:
    """True when out/result.json holds a finished run of exactly this resolved spec."""
    try:
        data = json.loads((Path(out) / "result.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("spec_hash") == spec_hash
