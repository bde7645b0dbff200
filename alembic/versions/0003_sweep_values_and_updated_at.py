"""experiments keep their swept values and when they last changed

Revision ID: 0003
Revises: 0002
Created: 2026-11-28 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


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
