"""Read-only query helpers the routes need beyond server.crud (which owns every write)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import Experiment

MAX_TWINS = 20
_CHUNK = 500  # bound parameters per IN (...)


def twins_of(session: Session, experiments: Sequence[Experiment]) -> dict[str, list[str]]:
    """Like crud.twins for many experiments at once: id -> ids of the other experiments with the
    same spec hash, oldest first, at most MAX_TWINS each."""
    hashes = sorted({exp.spec_hash for exp in experiments})
    by_hash: dict[str, list[str]] = {h: [] for h in hashes}
    for i in range(0, len(hashes), _CHUNK):
        q = (
            select(Experiment.spec_hash, Experiment.id)
            .where(Experiment.spec_hash.in_(hashes[i : i + _CHUNK]))
            .order_by(Experiment.created_at, Experiment.id)
        )
        for spec_hash, exp_id in session.execute(q):
            by_hash[spec_hash].append(exp_id)
    return {
        exp.id: [other for other in by_hash[exp.spec_hash] if other != exp.id][:MAX_TWINS]
        for exp in experiments
    }
