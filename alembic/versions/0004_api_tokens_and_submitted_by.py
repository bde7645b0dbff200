"""0004, 2026-11-29: API tokens (hashed, optionally read-only, revocable) and who submitted each
experiment."""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0004", "0003"


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("name", name="uq_api_tokens_name"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submitted_by", sa.String(64), nullable=True))
    # rows from before tokens existed were submitted without one
    op.execute("UPDATE experiments SET submitted_by = 'local' WHERE submitted_by IS NULL")
    op.create_index("ix_experiments_submitted_by", "experiments", ["submitted_by"])


def downgrade() -> None:
    op.drop_index("ix_experiments_submitted_by", table_name="experiments")
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_column("submitted_by")
    op.drop_table("api_tokens")
