"""Runs migrations against the service database (online mode only)."""

from __future__ import annotations

from alembic import context

from server.db import get_engine
from server.models import Base
from server.settings import get_settings

url = (
    context.get_x_argument(as_dictionary=True).get("url")
    or context.config.attributes.get("url")
    or get_settings().resolved_database_url()
)

with get_engine(url).connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=url.startswith("sqlite"),  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
