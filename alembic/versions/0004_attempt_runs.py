"""experiments keep the MLflow run of each attempt and the step it resumed from

Revision ID: 0004
Revises: 0003
Created: 2026-11-29 05:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempt_runs", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_column("attempt_runs")
