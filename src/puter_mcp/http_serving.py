"""Serving an ASGI app over HTTP safely: bearer auth, binding rules, header deadline, busy ports.

Nothing here knows about MCP or Puter, so every HTTP front end of the project (the MCP server's
streamable HTTP and SSE transports, and the gateway) shares one set of rules. docs/http.md
describes them for users.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import json
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "HEADER_TIMEOUT",
    "LOOPBACK_HOSTS",
    "MIN_PUBLIC_TOKEN_LENGTH",
    "BearerAuth",
    "ServingError",
    "bind_listening_socket",
    "binding_problem",
    "serve_asgi",
]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

MIN_PUBLIC_TOKEN_LENGTH = 32
"""Off loopback a token is all that stands between the network and the user's credits."""

HEADER_TIMEOUT = 10.0
"""Seconds a connection gets to send a request's headers before it is dropped (slowloris)."""

DEFAULT_SETUP_HINT = (
    "the server's token is set with PUTER_MCP_AUTH_TOKEN, --auth-token "
    "or `auth_token` under [http] in its config"
)

# Paths where OAuth clients look for an authorization server. This server has none; a quick
# 404 makes them give up instead of trying dynamic client registration against it.
_OAUTH_DISCOVERY_PREFIXES = (
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
)
_OAUTH_ENDPOINTS = frozenset({"/register", "/authorize", "/token"})


class ServingError(Exception):
    """The server cannot start; the message says why and what to do."""


def binding_problem(host: str, auth_token: str | None) -> str | None:
    """Why serving on `host` with this token would be unsafe, or None when it is fine."""
    if host in LOOPBACK_HOSTS:
        return None
    if not auth_token:
        return (
            f"refusing to listen on {host} without a bearer token: anyone who can reach it could spend "
            "your credits. Pass --auth-token (or set PUTER_MCP_AUTH_TOKEN), or bind 127.0.0.1."
        )
    if len(auth_token) < MIN_PUBLIC_TOKEN_LENGTH:
        return (
            f"refusing to listen on {host} with a {len(auth_token)}-character bearer token: off loopback "
            f"it must have at least {MIN_PUBLIC_TOKEN_LENGTH} characters. Make one with "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`, or bind 127.0.0.1."
        )
    return None


def _is_oauth_discovery(path: str) -> bool:
    # Also the path-suffixed forms (`/.well-known/oauth-protected-resource/mcp`) and the
    # path-inserted one some clients try (`/mcp/.well-known/openid-configuration`).
    return path in _OAUTH_ENDPOINTS or any(prefix in path for prefix in _OAUTH_DISCOVERY_PREFIXES)


async def _send_json(
    send: Send, status: int, body: dict[str, object], headers: list[tuple[bytes, bytes]]
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _oauth_style_refusal(description: str) -> dict[str, object]:
    """The body RFC 6750 suggests for a refused bearer token."""
    return {"error": "invalid_token", "error_description": description}


def jsonrpc_refusal(description: str) -> dict[str, object]:
    """A refused bearer token as a JSON-RPC error: MCP clients show its message to the person,
    where any other body becomes "Server returned an error response"."""
    return {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32001, "message": description, "data": _oauth_style_refusal(description)},
    }


class BearerAuth:
    """ASGI middleware: every request must carry ``Authorization: Bearer <token>``.

    The comparison is constant-time and the scheme is case-insensitive (RFC 7235). A missing or
    wrong token gets a 401 whose JSON body and ``WWW-Authenticate`` header say a static bearer
    token is wanted and where it comes from. OAuth discovery paths get a plain 404: a bare
    ``WWW-Authenticate: Bearer`` would send MCP clients looking for an OAuth server that is not
    there, and they would report that failure instead of the missing token.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        *,
        setup_hint: str = DEFAULT_SETUP_HINT,
        refusal_body: Callable[[str], dict[str, object]] | None = None,
    ) -> None:
        self.app = app
        self._expected = token.encode()
        self._setup_hint = setup_hint
        # Each protocol served behind this says "refused" in its own shape (MCP: a JSON-RPC
        # error, which clients show; an HTTP API: its own error body).
        self._refusal_body = refusal_body or _oauth_style_refusal

    def _authorized(self, scope: Scope) -> bool | None:
        """True for the right token, False for a wrong one, None when none was sent."""
        given = b""
        for name, value in scope.get("headers") or []:
            if name.lower() == b"authorization":
                given = value
                break
        if not given:
            return None
        scheme, _, credentials = given.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(credentials.strip(), self._expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _is_oauth_discovery(scope.get("path", "")):
            await _send_json(
                send,
                404,
                {
                    "error": "not_found",
                    "error_description": "this server does not use OAuth: send its static bearer token "
                    f"in the header `Authorization: Bearer <token>` ({self._setup_hint})",
                },
                [],
            )
            return
        verdict = self._authorized(scope)
        if verdict:
            await self.app(scope, receive, send)
            return
        what = "a bearer token is required" if verdict is None else "the bearer token is wrong"
        description = (
            f"{what}: send the header `Authorization: Bearer <token>` with the server's token "
            f"({self._setup_hint})"
        )
        # A quoted-string header value cannot hold double quotes or backslashes.
        quoted = description.replace("\\", "").replace('"', "'")
        challenge = f'Bearer error="invalid_token", error_description="{quoted}"'.encode()
        await _send_json(
            send,
            401,
            self._refusal_body(description),
            [(b"www-authenticate", challenge)],
        )


class _HeaderDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, dropping a connection whose request headers are too slow.

    uvicorn only times out idle keep-alive connections; a client that trickles a header line
    every few seconds (slowloris) would hold a connection open for ever. The deadline runs from
    the moment the connection (or its next keep-alive request) is waited for until h11 has
    seen the whole request head.
    """

    header_timeout: float = HEADER_TIMEOUT
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def _protocol_with_header_timeout(seconds: float) -> type[H11Protocol]:
    return type("HeaderDeadlineH11Protocol", (_HeaderDeadlineH11Protocol,), {"header_timeout": seconds})


def bind_listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or a `ServingError` saying plainly why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServingError(f"cannot listen on {host}: {exc.strerror}; check --host") from exc
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServingError(
                f"port {port} is in use on {host}; pick another with --port (0 picks a free one)"
            ) from exc
        raise ServingError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


async def serve_asgi(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    on_ready: Callable[[int], None] | None = None,
    header_timeout: float = HEADER_TIMEOUT,
) -> None:
    """Serve `app` with uvicorn on host:port until cancelled; `on_ready` gets the bound port."""
    import uvicorn

    sock = bind_listening_socket(host, port)
    bound_port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", http=_protocol_with_header_timeout(header_timeout)
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await anyio.sleep(0.02)
        if on_ready:
            on_ready(bound_port)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(announce)
            await server.serve(sockets=[sock])
            group.cancel_scope.cancel()
    finally:
        sock.close()
