"""Short ids: wherever the API takes an experiment or sweep id, a unique prefix of it will do.

`igm ls` shows the first 8 hex digits of an id. A prefix of at least MIN_PREFIX hex digits names
the one row whose id starts with it; several matches are an AmbiguousId (the routes answer 409
with the count). Ids are lowercase hex, so every id starting with p sorts in [p, p + "g"): a range
on the primary key, which both SQLite and PostgreSQL answer from the index (a LIKE would scan
the table under PostgreSQL's default collation).
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.models import Experiment, Sweep

MIN_PREFIX = 6
ID_LEN = 32
_HEX = re.compile(r"^[0-9a-f]{1,32}$")


class AmbiguousId(Exception):
    """More than one id starts with the prefix."""

    def __init__(self, kind: str, prefix: str, count: int) -> None:
        self.kind, self.prefix, self.count = kind, prefix, count
        super().__init__(f"{count} {kind}s have ids starting with {prefix!r}: give more of the id")


def is_hex(ident: str) -> bool:
    return bool(_HEX.match(ident))


def too_short(ident: str) -> bool:
    """A hex string too short to be taken as a prefix (the 404 says how long one must be)."""
    return bool(_HEX.match(ident.strip().lower())) and len(ident.strip()) < MIN_PREFIX


def resolve(session: Session, model: type[Experiment] | type[Sweep], ident: str) -> str | None:
    """The full id that `ident` names: a whole id that exists, or the one id starting with a
    prefix of MIN_PREFIX or more hex digits (any case); None when nothing matches."""
    ident = ident.strip().lower()
    if not _HEX.match(ident) or len(ident) < MIN_PREFIX:
        return None
    if len(ident) == ID_LEN:
        return ident if session.scalar(select(model.id).where(model.id == ident)) else None
    in_range = (model.id >= ident, model.id < ident + "g")
    found = [i for i in session.scalars(select(model.id).where(*in_range).limit(2))]
    found = [i for i in found if i.startswith(ident)]
    if len(found) > 1:
        count = session.scalar(select(func.count()).select_from(model).where(*in_range)) or 2
        kind = "experiment" if model is Experiment else "sweep"
        raise AmbiguousId(kind, ident, count)
    return found[0] if found else None
