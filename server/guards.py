"""Request guards in front of every route: trusted Host headers, body content types and sizes.

A web page open in a lab member's browser can send simple cross-site requests (form posts,
`text/plain` bodies) and can point a DNS name it controls at the lab's address (DNS rebinding).
So, before any route runs:
- the Host header must name one of settings.trusted_hosts (400 otherwise);
- a write (POST, PUT, PATCH, DELETE) that carries a body says it is JSON (application/json or
  any +json type), or YAML where the API accepts a spec as YAML (POST /experiments); any other
  content type, a form among them, or a body without a type gets 415, even when empty;
- a body is at most settings.max_body_bytes long (413 otherwise, BodySizeLimit).
CORS stays closed (no Access-Control-Allow-* headers) unless settings.cors_origins names origins;
server.main adds Starlette's CORS middleware for those only.

A client that goes away before its request body is complete (a dropped upload, a killed curl)
is logged in one line, here, where the received bytes are counted; `client_disconnected`
answers the ClientDisconnect that reading the rest of the body raises, so that no traceback
follows it (the 400 goes nowhere: nobody is left to read it).
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("server.guards")

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
YAML_ROUTES = frozenset({("POST", "/experiments")})  # where a spec may come as YAML
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def host_name(host: str) -> str:
    """The host of a Host header, without its port ("[::1]:8000" -> "::1")."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def accepted_types(method: str, path: str) -> tuple[str, ...]:
    yaml = YAML_TYPES if (method, path.rstrip("/") or "/") in YAML_ROUTES else ()
    return JSON_TYPES + yaml


class RequestGuards:
    """400 for an untrusted Host, 415 for a write whose body is not JSON (or YAML)."""

    def __init__(self, app: ASGIApp, trusted_hosts: list[str]) -> None:
        self.app = app
        self.any_host = "*" in trusted_hosts
        self.hosts = {host_name(h) for h in trusted_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.any_host and host_name(host) not in self.hosts:
            response = JSONResponse({"detail": "invalid Host header"}, status_code=400)
            await response(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if method in WRITES:
            refusal = self._content_refusal(method, path, headers)
            if refusal is not None:
                await JSONResponse({"detail": refusal}, status_code=415)(scope, receive, send)
                return
        await self.app(scope, _watched(scope, headers, receive), send)

    @staticmethod
    def _content_refusal(method: str, path: str, headers: dict[bytes, bytes]) -> str | None:
        accepted = accepted_types(method, path)
        raw = headers.get(b"content-type")
        if raw is None:
            length = headers.get(b"content-length", b"0").strip()
            has_body = b"transfer-encoding" in headers or length not in (b"", b"0")
            if not has_body:
                return None
            return f"a request body needs a Content-Type: {', '.join(accepted)}"
        media = media_type(raw.decode("latin-1"))
        if media in accepted or (media.startswith("application/") and media.endswith("+json")):
            return None
        return f"unsupported content type {media[:100]!r}; send {', '.join(accepted)}"


def _announced_body(headers: dict[bytes, bytes]) -> int | None:
    """The body size the request announced: its Content-Length, -1 for a chunked body, None
    for no body."""
    length = headers.get(b"content-length", b"").strip()
    if length.isdigit() and int(length) > 0:
        return int(length)
    return -1 if b"transfer-encoding" in headers else None


def _watched(scope: Scope, headers: dict[bytes, bytes], receive: Receive) -> Receive:
    """`receive`, logging one line when the client disconnects before its body is complete."""
    expected = _announced_body(headers)
    if expected is None:
        return receive
    received, complete = 0, False

    async def watched() -> Message:
        nonlocal received, complete
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            complete = not message.get("more_body", False)
        elif message["type"] == "http.disconnect" and not complete:
            complete = True  # one line, however often the app asks again
            client = scope.get("client") or ("?", 0)
            of = f"{expected} announced" if expected >= 0 else "a chunked body"
            log.warning(
                "client %s:%s disconnected mid-body: %s %s, %d bytes received of %s",
                client[0], client[1], scope["method"], scope["path"], received, of,
            )  # fmt: skip
        return message

    return watched


async def client_disconnected(_request: Request, _exc: Exception) -> Response:
    """The ClientDisconnect a route raises reading a body whose client left: already logged
    by RequestGuards, so no traceback; the response has no reader."""
    return JSONResponse({"detail": "the client disconnected before the body was complete"}, 400)


class BodySizeLimit:
    """413 for request bodies over `max_bytes`: by Content-Length up front, and by counting
    the bytes actually received (chunked bodies carry no length)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _message(self) -> str:
        return f"request body too large: the limit is {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            status = 413 if length.isdigit() else 400
            detail = self._message() if status == 413 else "invalid Content-Length"
            await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # raised inside the route, so FastAPI turns it into the JSON error response
                    raise HTTPException(status_code=413, detail=self._message())
            return message

        await self.app(scope, limited, send)
