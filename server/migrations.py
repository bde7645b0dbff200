"""Schema upgrades (Alembic) and the start-up check that the schema is current."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from server.db import get_engine

ROOT = Path(__file__).resolve().parent.parent
UPGRADE_COMMAND = "igm db upgrade"


class SchemaError(RuntimeError):
    pass


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def current_revision(url: str) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(url: str) -> None:
    """Raise SchemaError, naming the command to run, unless the database is at the head."""
    current, head = current_revision(url), head_revision()
    if current != head:
        state = "has no IGM Lab schema" if current is None else f"is at schema {current}"
        raise SchemaError(
            f"the database {url.split('@')[-1]} {state}; this code needs {head}. "
            f"Run `{UPGRADE_COMMAND}` (or `alembic upgrade head`) first."
        )
