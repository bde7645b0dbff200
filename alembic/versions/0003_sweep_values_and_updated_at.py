"""0003, 2026-11-28: experiments keep their swept values and when they last changed."""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0003", "0002"


def upgrade() -> None:
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sweep_values", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE experiments SET updated_at = "
        "COALESCE(finished_at, heartbeat_at, started_at, created_at)"
    )
    op.create_index("ix_experiments_updated_at", "experiments", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_experiments_updated_at", table_name="experiments")
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_column("updated_at")
        batch_op.drop_column("sweep_values")
