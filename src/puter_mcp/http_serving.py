"""Serving an ASGI app over HTTP safely: the one home of the HTTP rules every face shares.

- **Binding.** Loopback needs no token; any other address needs a bearer token of at least
  `MIN_PUBLIC_TOKEN_LENGTH` characters (`check_binding`).
- **Host and Origin.** A server answers only the Host names it was bound for, and only pages
  of those origins (`HostRules`; `HostOriginCheck` enforces them for an app that does not
  check them itself), so that a web page cannot drive it through DNS rebinding.
- **Bearer auth** (`BearerAuth`), constant-time, with a refusal that says where the token comes
  from.
- **Deadlines.** A request's headers must arrive within `HEADER_TIMEOUT` (else the connection
  is dropped: slowloris) and its body within `BODY_TIMEOUT` of them (else a 408). A kept-alive
  connection may stay idle for `KEEP_ALIVE`, longer than the clients' own pools keep one.
- **Serving** with uvicorn on a socket bound here (`serve_asgi`), a busy port said plainly.

Nothing here knows about MCP or Puter: the MCP server's streamable HTTP and SSE transports and
the gateway share these rules, each wrapping them in its own protocol. docs/http.md describes
them for users.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import json
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "BODY_TIMEOUT",
    "HEADER_TIMEOUT",
    "KEEP_ALIVE",
    "LOOPBACK_HOSTS",
    "MIN_PUBLIC_TOKEN_LENGTH",
    "BearerAuth",
    "HostOriginCheck",
    "HostRules",
    "ServingError",
    "bind_listening_socket",
    "binding_problem",
    "check_binding",
    "serve_asgi",
    "served_url",
]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

MIN_PUBLIC_TOKEN_LENGTH = 32
"""Off loopback a token is all that stands between the network and the user's credits."""

HEADER_TIMEOUT = 10.0
"""Seconds a connection gets to send a request's headers before it is dropped (slowloris)."""

KEEP_ALIVE = 120.0
"""Seconds a kept-alive connection may wait idle for its next request before it is closed.

Longer than any common client keeps an idle connection in its pool (httpx, under the OpenAI,
Anthropic and Ollama SDKs: 5 s; aiohttp: 15 s; Go: 90 s), so that the client always closes
first. When both sides let go at the same moment (uvicorn's default is also 5 s), a request
sent just as the server closes fails with a connection error the client cannot tell from a
real one."""

BODY_TIMEOUT = 60.0
"""Seconds a request's body gets to arrive once its headers have, before a 408: a body sent a
byte at a time would hold a connection and the task reading it for ever. Ample for the largest
body a client sends (a few MB of images) on a slow link."""

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


def check_binding(host: str, auth_token: str | None) -> None:
    """Refuse to serve beyond this machine without a strong bearer token.

    Raises:
        ServingError: `binding_problem` found one; the message says what to do.
    """
    problem = binding_problem(host, auth_token)
    if problem:
        raise ServingError(problem)


def served_url(host: str, port: int, path: str = "") -> str:
    """The URL a client uses to reach a server bound to host:port (an IPv6 host in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


def _matches(value: str, patterns: Sequence[str]) -> bool:
    """`value` is one of `patterns`, where ``name:*`` stands for that name with any port and
    ``*`` for anything (only ever from the user's own configuration: CORS for any origin)."""
    return any(
        value == pattern or pattern == "*" or (pattern.endswith(":*") and value.startswith(pattern[:-1]))
        for pattern in patterns
    )


@dataclass(frozen=True)
class HostRules:
    """The Host and Origin header values a server accepts (``name:*``: any port of that name).

    Build it with `HostRules.for_binding`. A browser page may send requests to any address,
    DNS rebinding makes its own name point at 127.0.0.1, so a server that answered every Host
    would let any web page drive it: only the names it was bound for are answered, and only
    requests from pages of those names (or without an Origin: not from a browser page).
    """

    hosts: tuple[str, ...]
    origins: tuple[str, ...]

    @classmethod
    def for_binding(cls, host: str, allowed_hosts: Sequence[str] = ()) -> HostRules:
        """The rules for a server bound to `host`.

        On loopback: the loopback names with any port. Elsewhere: the names the user listed
        (``[http] allowed_hosts``; by default the bound address), each with any port unless it
        names one.
        """
        if host in LOOPBACK_HOSTS:
            hosts = ("127.0.0.1:*", "localhost:*", "[::1]:*")
            return cls(hosts, tuple(f"http://{entry}" for entry in hosts))
        names = list(allowed_hosts) or [host]
        hosts = tuple(entry for name in names for entry in ((name,) if ":" in name else (name, f"{name}:*")))
        return cls(hosts, tuple(f"{scheme}://{entry}" for entry in hosts for scheme in ("http", "https")))

    def allows_host(self, host: str | None) -> bool:
        return bool(host) and _matches(host or "", self.hosts)

    def allows_origin(self, origin: str | None) -> bool:
        return not origin or _matches(origin, self.origins)


class HostOriginCheck:
    """ASGI middleware: refuse a request whose Host (421) or Origin (403) `HostRules` refuse.

    For an app that does not check them itself (the MCP SDK's transports do, from the same
    `HostRules`).
    """

    def __init__(self, app: ASGIApp, rules: HostRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers") or []}
        host = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin", b"").decode("latin-1")
        if not self.rules.allows_host(host):
            description = (
                "this server does not answer to that Host name: use the address it serves at, "
                "or add the name to `allowed_hosts` under [http] in its config"
            )
            await _send_json(
                send, 421, {"error": "misdirected_request", "error_description": description}, []
            )
        elif not self.rules.allows_origin(origin):
            description = "requests from web pages of other sites are refused"
            await _send_json(send, 403, {"error": "forbidden_origin", "error_description": description}, [])
        else:
            await self.app(scope, receive, send)


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


class _DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, holding each request to a deadline for its head and its body.

    uvicorn only times out idle keep-alive connections; a client that trickles a header line
    every few seconds (slowloris), or its body a byte at a time, would hold a connection (and,
    for the body, the task reading it) for ever. The header deadline runs from the moment a
    request head is waited for on a new connection, or from the first byte of the next head on
    a kept-alive one (until then the connection is idle, which `keep_alive` bounds), until h11
    has seen the whole head; a head too slow drops the connection, since no request was made
    to answer. The body deadline runs from the end of the head to the end of the
    body; a body too slow is answered 408 (when the app has not answered yet) and the app sees
    the client disconnect.
    """

    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    keep_alive: float = KEEP_ALIVE
    _header_deadline: asyncio.TimerHandle | None = None
    _body_deadline: asyncio.TimerHandle | None = None
    _answered = False  # a response was sent: the connection is a kept-alive one now

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.timeout_keep_alive = self.keep_alive  # uvicorn's own idle timer (its Config says int)
        super().connection_made(transport)
        self._follow_request()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        self._answered = True
        super().on_response_complete()
        self._follow_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_deadline = _cancelled(self._header_deadline)
        self._body_deadline = _cancelled(self._body_deadline)
        super().connection_lost(exc)

    def _follow_request(self) -> None:
        """Arm or disarm each deadline by where the client's request stands."""
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:  # waiting for a head (the deadline is not restarted by a part)
            head_begun = not self._answered or self.conn.trailing_data[0]
            if self._header_deadline is None and head_begun:
                self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)
            return
        self._header_deadline = _cancelled(self._header_deadline)
        if state is h11.SEND_BODY:
            if self._body_deadline is None:
                self._body_deadline = self.loop.call_later(self.body_timeout, self._body_too_slow)
        else:
            self._body_deadline = _cancelled(self._body_deadline)

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _body_too_slow(self) -> None:
        self._body_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        if self.flow.read_paused:
            # We stopped reading (the app has not taken what came): the client is not the slow one.
            self._body_deadline = self.loop.call_later(self.body_timeout, self._body_too_slow)
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_started and self.conn.our_state is h11.SEND_RESPONSE:
            cycle.response_started = True  # the app's own answer, if it comes, is not sent
            self._send_timeout_response()
        if cycle is not None:
            cycle.disconnected = True  # the app's next receive() says so
            cycle.message_event.set()
        self.transport.close()

    def _send_timeout_response(self) -> None:
        payload = json.dumps(
            {
                "error": "request_timeout",
                "error_description": f"the request body did not arrive within {self.body_timeout:g} s "
                "of its headers; send it again, in one go",
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"),
        ]
        response = h11.Response(status_code=408, headers=headers, reason=b"Request Timeout")
        for event in (response, h11.Data(data=payload), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event) or b"")


def _cancelled(deadline: asyncio.TimerHandle | None) -> None:
    if deadline is not None:
        deadline.cancel()


def _protocol_with_deadlines(
    header_timeout: float, body_timeout: float, keep_alive: float
) -> type[H11Protocol]:
    return type(
        "DeadlineH11Protocol",
        (_DeadlineH11Protocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout, "keep_alive": keep_alive},
    )


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
    body_timeout: float = BODY_TIMEOUT,
    keep_alive: float = KEEP_ALIVE,
    stop: anyio.Event | None = None,
) -> None:
    """Serve `app` with uvicorn on host:port until cancelled, or until `stop` is set (a
    graceful end: open requests finish, the app's lifespan ends); `on_ready` gets the bound
    port.

    Each request is held to `header_timeout` for its head and `body_timeout` for its body, and
    an idle kept-alive connection is closed after `keep_alive` (see the module docstring). The
    binding is not checked here: call `check_binding` first, before anything costly is started.

    Raises:
        ServingError: the address cannot be bound (a busy port, an unknown host).
    """
    import uvicorn

    sock = bind_listening_socket(host, port)
    bound_port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        http=_protocol_with_deadlines(header_timeout, body_timeout, keep_alive),
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await anyio.sleep(0.02)
        if on_ready:
            on_ready(bound_port)

    async def stop_when_asked(event: anyio.Event) -> None:
        await event.wait()
        server.should_exit = True

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(announce)
            if stop is not None:
                group.start_soon(stop_when_asked, stop)
            await server.serve(sockets=[sock])
            group.cancel_scope.cancel()
    finally:
        sock.close()
