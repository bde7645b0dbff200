"""API tokens and the one access rule every route goes through.

A token is `igm_` + a random URL-safe secret (secrets.token_urlsafe); the database keeps only its
SHA-256, so the secret is shown once, when it is created (`igm token create`). With
settings.require_tokens (lab mode) `check_access`, installed as an app-level dependency so that
every route is covered, admits:
- writes (any method but GET/HEAD/OPTIONS) with a valid, unrevoked token that is not read-only;
- reads with a valid token, or with none when settings.public_reads;
- /health, /docs, /redoc and /static always.
401 for a missing, unknown or revoked token (one message for the last two, so nothing tells which
tokens ever existed), 403 for a read-only token that writes, 429 with Retry-After past
settings.write_rate_per_minute writes of one token. The API takes the token from
`Authorization: Bearer ...`; the dashboard's pages (plain page loads cannot send a header) also
from the `igm_token` cookie that the dashboard sets once a token is typed in. Without
require_tokens everything is open and experiments are submitted by "local".
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from fastapi import HTTPException, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.models import ApiToken, utcnow
from server.settings import Settings

LOCAL = "local"  # submitted_by on a server without tokens
PUBLIC = "public"  # a read without a token where reads are public
TOKEN_PREFIX = "igm_"
COOKIE = "igm_token"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
READS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
LAST_USED_EVERY = timedelta(seconds=60)  # last_used_at is written at most this often

MISSING = (
    "an API token is required: send `Authorization: Bearer <token>` (the igm commands: "
    "IGM_TOKEN or `igm login URL --token -`; an administrator creates tokens: igm token create)"
)
INVALID = "invalid or revoked API token"
READ_ONLY = "this API token is read-only; writes need a token created without --read-only"


class TokenError(ValueError):
    """A token name that is malformed, taken or unknown; the message says which."""


@dataclass(frozen=True)
class Principal:
    name: str
    read_only: bool = False


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    if not re.fullmatch(NAME_PATTERN, name):
        raise TokenError(f"invalid token name {name[:80]!r}: 1-64 of A-Z a-z 0-9 _ . @ - ")
    return name


def create_token(session: Session, *, name: str, read_only: bool = False) -> str:
    """Store a new token named `name`; returns its secret (not kept anywhere)."""
    check_name(name)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_secret(secret), read_only=read_only))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise TokenError(f"a token named {name!r} exists already") from None
    return secret


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


def revoke_token(session: Session, *, name: str) -> ApiToken:
    """Revoke the token named `name` (revoking twice keeps the first time)."""
    row = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None:
        raise TokenError(f"no token named {name[:80]!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.commit()
    return row


def lookup(session: Session, secret: str) -> Principal | None:
    """The principal of an unrevoked token with this secret, or None."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_secret(secret)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    last = row.last_used_at
    if last is not None and last.tzinfo is None:  # SQLite hands back naive datetimes
        last = last.replace(tzinfo=now.tzinfo)
    if last is None or now - last > LAST_USED_EVERY:
        row.last_used_at = now
        session.commit()
    return Principal(row.name, row.read_only)


class RateLimiter:
    """At most `per_minute` events per key in any sliding 60 s window (this process)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int:
        """0 and the event counted, or the seconds to wait before the next one is allowed."""
        now = time.monotonic()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and now - events[0] >= 60.0:
                events.popleft()
            if len(events) >= self.per_minute:
                return max(1, math.ceil(60.0 - (now - events[0])))
            events.append(now)
            return 0


class PageAuthRequired(Exception):
    """A dashboard page asked for without a usable token: answered with the sign-in page."""


def _is_page(request: Request) -> bool:
    path = request.url.path
    return request.method == "GET" and (path == "/" or path.startswith("/ui/"))


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if _is_page(request):
        return request.cookies.get(COOKIE) or None
    return None


def _refuse(request: Request, status: int, detail: str) -> HTTPException:
    if _is_page(request) and status == 401:
        raise PageAuthRequired(detail)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status_code=status, detail=detail, headers=headers)


def check_access(request: Request) -> None:
    """The app-level dependency: admits the request or raises 401 / 403 / 429; leaves the
    caller's name in request.state.principal (submitted_by of what it creates)."""
    settings: Settings = request.app.state.settings
    if not settings.require_tokens:
        request.state.principal = Principal(LOCAL)
        return
    path = request.url.path
    if path in OPEN_PATHS or path.startswith("/health/") or path.startswith("/static/"):
        request.state.principal = Principal(PUBLIC, read_only=True)
        return
    write = request.method not in READS
    secret = _bearer(request)
    if secret is None:
        if not write and settings.public_reads:
            request.state.principal = Principal(PUBLIC, read_only=True)
            return
        raise _refuse(request, 401, MISSING)
    with request.app.state.sessions() as session:
        principal = lookup(session, secret)
    if principal is None:
        raise _refuse(request, 401, INVALID)
    if write:
        if principal.read_only:
            raise _refuse(request, 403, READ_ONLY)
        wait = request.app.state.rate_limiter.retry_after(principal.name)
        if wait:
            raise HTTPException(
                status_code=429,
                detail=f"too many writes with token {principal.name!r}: the limit is "
                f"{settings.write_rate_per_minute} a minute (IGM_WRITE_RATE_PER_MINUTE)",
                headers={"Retry-After": str(wait)},
            )
    request.state.principal = principal


def submitter(request: Request) -> str:
    """Who makes this request, for submitted_by."""
    principal = getattr(request.state, "principal", None)
    return principal.name if principal is not None else LOCAL
