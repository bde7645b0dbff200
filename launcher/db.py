"""`igm db upgrade | check | current`: the service database's schema, against the configured
database (IGM_DATABASE_URL, or the embedded one under IGM_DATA_DIR)."""

from __future__ import annotations

import argparse
import sys

from server.migrations import (
    SchemaError,
    check_schema,
    current_revision,
    head_revision,
    upgrade,
)
from server.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="igm db", description="the service database schema")
    parser.add_argument("action", choices=["upgrade", "check", "current"])
    args = parser.parse_args(argv)
    url = get_settings().resolved_database_url()
    shown = url.split("@")[-1]
    if args.action == "upgrade":
        upgrade(url)
        print(f"{shown}: schema at {current_revision(url)}")
        return 0
    if args.action == "current":
        print(f"{shown}: schema at {current_revision(url)} (code expects {head_revision()})")
        return 0
    try:
        check_schema(url)
    except SchemaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{shown}: schema is current ({head_revision()})")
    return 0
