"""`igm login URL [--token T]` and `igm logout [URL]`: remember which server the `igm` commands
talk to, and its token, in the client's config file (igm_client.config).

login checks the server first: an unreachable server, or a token it refuses, saves nothing.
"""

from __future__ import annotations

import argparse
import os
import sys

from igm_client import config
from igm_client.client import IGMClient, IGMClientError
from igm_client.format import console, fail, say


def where(settings: config.Resolved) -> str:
    """Where the URL in use came from, for messages about an unreachable server."""
    source = settings.url_source
    if source == "--url":
        return "given with --url"
    if source == config.URL_ENV:
        return f"from {config.URL_ENV}"
    if source == "default":
        return "the default: `igm login URL`, `igm up` or IGM_URL set another"
    return f"from {source} (`igm login URL` changes it)"


def _read_token(given: str | None) -> str | None:
    if given != "-":
        return given
    line = sys.stdin.readline().strip()  # `--token -`: from stdin, out of the shell's history
    if not line:
        raise ValueError("--token -: no token on standard input")
    return line


def cmd_login(args: argparse.Namespace) -> int:
    url = config.check_url(args.server, "URL")
    token = _read_token(args.token)
    with IGMClient(url, token=token, timeout=10) as client:
        try:
            client.health()
        except IGMClientError as err:
            return fail(f"{err}; nothing saved", 1 if err.status_code == 0 else 2)
        needs_token = False
        try:
            client.list(limit=1)
        except IGMClientError as err:
            if err.status_code != 401:
                raise
            if client.settings.token:
                return fail(f"the server refused the token ({err}); nothing saved", 2)
            needs_token = True
    path = config.save(url, token)
    say(f"igm commands now talk to {url} (saved in {path}; IGM_URL and --url override it)")
    if token:
        say("its token is kept in the same file (readable by you only)")
    if needs_token:
        console.print(
            f"warning: this server asks for a token: igm login {url} --token TOKEN "
            f"(or --token - to read it from standard input), or set {config.TOKEN_ENV}"
        )
    env_url = os.environ.get(config.URL_ENV, "").strip()
    if env_url and env_url.rstrip("/") != url:
        console.print(f"warning: {config.URL_ENV} is set to {env_url} and wins in this shell")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    url = config.check_url(args.server, "URL") if args.server else config.resolve().url
    if config.forget_token(url):
        say(f"forgot the token of {url}")
    else:
        say(f"no token kept for {url}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    login = sub.add_parser(
        "login", help="remember the server (and its token) for the igm commands and IGMClient"
    )
    login.add_argument("server", metavar="URL", help="the server, e.g. http://lab-host:8000")
    login.add_argument(
        "--token", help="an API token of that server; `-` reads it from standard input"
    )
    login.set_defaults(func=cmd_login, needs_client=False)
    logout = sub.add_parser("logout", help="forget the token kept for a server")
    logout.add_argument("server", metavar="URL", nargs="?", help="default: the current server")
    logout.set_defaults(func=cmd_logout, needs_client=False)
