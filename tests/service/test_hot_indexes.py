"""Migration 0007's indexes, on SQLite and PostgreSQL: they come and go with the migration, and the
queries they are for read them in order (no sort of every row: the twins of one experiment, a
queue's next row to claim)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite

from server import migrations
from server.crud.reads import MAX_TWINS
from server.db import get_engine
from server.models import QUEUED, Experiment
from tests.service.test_migrations import empty_db  # noqa: F401 (the fixture)

NEW = {"ix_experiments_spec_hash_created_at", "ix_experiments_claim"}


def _indexes(url: str) -> set[str]:
    with get_engine(url).connect() as conn:
        return {ix["name"] for ix in sa_inspect(conn).get_indexes("experiments")}


def test_the_indexes_come_and_go_with_0007(empty_db: str) -> None:  # noqa: F811
    migrations.upgrade(empty_db)
    assert _indexes(empty_db) >= NEW and "ix_experiments_spec_hash" not in _indexes(empty_db)
    command.downgrade(migrations.alembic_config(empty_db), "0006")
    assert not NEW & _indexes(empty_db) and "ix_experiments_spec_hash" in _indexes(empty_db)
    migrations.upgrade(empty_db)
    assert migrations.current_revision(empty_db) == migrations.head_revision()


def _plan(url: str, query) -> str:
    """The database's plan of `query` (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN with
    sequential scans priced out, as on a large table)."""
    pg = url.startswith("postgresql")
    sql = str(
        query.compile(
            dialect=postgresql.dialect() if pg else sqlite.dialect(),
            compile_kwargs={"literal_binds": True},
        )
    )
    with get_engine(url).connect() as conn:
        if pg:
            conn.execute(text("SET enable_seqscan = off"))
            return "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {sql}")))
        return "\n".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))


def test_twins_and_the_claim_read_an_index_in_order(empty_db: str) -> None:  # noqa: F811
    migrations.upgrade(empty_db)
    twins = (
        select(Experiment.id)
        .where(Experiment.spec_hash == "h", Experiment.id != "x")
        .order_by(Experiment.created_at)
        .limit(MAX_TWINS)
    )
    claim = (
        select(Experiment.id)
        .where(Experiment.queue == "cpu", Experiment.status == QUEUED)
        .order_by(Experiment.priority.desc(), Experiment.created_at, Experiment.id)
        .limit(1)
    )
    for query, index in (
        (twins, "ix_experiments_spec_hash_created_at"),
        (claim, "ix_experiments_claim"),
    ):
        plan = _plan(empty_db, query)
        assert index in plan, plan
        assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
