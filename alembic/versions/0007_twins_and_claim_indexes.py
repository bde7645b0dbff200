"""indexes for the hot paths: an experiment's twins, and a queue's next row to claim

Revision ID: 0007
Revises: 0006
Created: 2026-12-08 04:00:00

The twins query (other experiments with the same spec hash, oldest first, at most 20) read every
row of a hash and sorted them: with 10,000 experiments of one spec, every GET of one experiment
paid for it. The index on (spec_hash, created_at, id) returns them in order, so the read stops
after 20; it replaces the index on spec_hash alone (its prefix). A worker's claim reads the best
queued row of its queue (highest priority, then oldest): with the index on (queue, status,
priority DESC, created_at, id) that is the index's first entry, not a sort of every queued row.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("experiments") as batch_op:
        batch_op.create_index(
            "ix_experiments_spec_hash_created_at", ["spec_hash", "created_at", "id"]
        )
        batch_op.drop_index("ix_experiments_spec_hash")
    op.create_index(
        "ix_experiments_claim",
        "experiments",
        ["queue", "status", sa.text("priority DESC"), "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_experiments_claim", table_name="experiments")
    with op.batch_alter_table("experiments") as batch_op:
        batch_op.create_index("ix_experiments_spec_hash", ["spec_hash"])
        batch_op.drop_index("ix_experiments_spec_hash_created_at")
