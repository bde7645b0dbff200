"""`igm token create | ls | revoke`: the API tokens of a server, on its database.

The database is the one `igm up --data-dir DIR` uses (the embedded SQLite file under DIR, or
IGM_DATA_DIR), or IGM_DATABASE_URL when set, as for the API. `create` prints the token once, alone
on its last line (only its SHA-256 is stored); `revoke` takes effect on the next request.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server import auth, migrations
from server.db import session_factory
from server.settings import get_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igm token", description="the server's API tokens")
    parser.add_argument("--data-dir", help="the data directory of `igm up` (IGM_DATA_DIR)")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token; prints it once")
    create.add_argument("--name", required=True, help="who or what uses it (unique)")
    create.add_argument("--read-only", action="store_true", help="reads only, no writes")
    create.add_argument("--data-dir", dest="data_dir_sub", help=argparse.SUPPRESS)
    ls = actions.add_parser("ls", help="list tokens (never their secrets)")
    ls.add_argument("--data-dir", dest="data_dir_sub", help=argparse.SUPPRESS)
    revoke = actions.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name")
    revoke.add_argument("--data-dir", dest="data_dir_sub", help=argparse.SUPPRESS)
    return parser


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    data_dir = args.data_dir_sub or args.data_dir
    if data_dir:
        settings = settings.model_copy(update={"data_dir": Path(data_dir)})
    url = settings.resolved_database_url()
    try:
        if settings.database_url is None:
            migrations.upgrade(url)  # the embedded database is ours to create, as in `igm up`
        migrations.check_schema(url)
    except migrations.SchemaError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with session_factory(url)() as session:
        try:
            if args.action == "create":
                secret = auth.create_token(session, name=args.name, read_only=args.read_only)
                kind = "read-only token" if args.read_only else "token"
                print(f"created {kind} {args.name!r} on {url.split('@')[-1]}.")
                print("It is shown only now; send it as `Authorization: Bearer <token>`, or")
                print("export IGM_TOKEN=<token> / `igm login URL --token <token>` for igm:")
                print(secret)
                return 0
            if args.action == "revoke":
                row = auth.revoke_token(session, name=args.name)
                print(f"token {row.name!r} revoked at {_when(row.revoked_at)}")
                return 0
        except auth.TokenError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        rows = auth.list_tokens(session)
        print(f"{'NAME':<24} {'ACCESS':<10} {'CREATED':<19}  {'LAST USED':<19}  REVOKED")
        for row in rows:
            access = "read-only" if row.read_only else "read-write"
            print(
                f"{row.name:<24} {access:<10} {_when(row.created_at):<19}  "
                f"{_when(row.last_used_at):<19}  {_when(row.revoked_at)}"
            )
        return 0
