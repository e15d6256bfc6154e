"""The loopback listener of the browser sign-in: waits for Puter to send the browser back with a token.

Puter's official CLI sign-in (docs/puter-protocol.md, "Authentication") opens
``{gui}/?action=authme&redirectURL=http://localhost:PORT/...`` in the user's browser; once the
user approves, Puter redirects the browser to that URL with ``?token=<token>`` added. This
module is the other end of that redirect: a tiny HTTP/1.1 server on ``127.0.0.1`` that

- listens on a free port, behind an unguessable path (`secrets.token_urlsafe`), and puts a
  one-time random ``state`` in the redirect URL that must come back with the token (compared
  with `hmac.compare_digest`), so that another web page or local program that guesses the port
  cannot hand us a token of its choosing (login CSRF): a request without it, or with another,
  gets a short error page and the wait goes on;
- refuses a request to any other path (404) or without a token (400) and keeps waiting, since a
  browser also asks for ``/favicon.ico``, pre-connects, or is pointed at the wrong tab;
- hands each token to a caller-supplied check (serially): the check returns a value (accepted),
  raises `TokenRejected` (tell the browser, keep waiting for another) or raises anything else
  (tell the browser it failed, stop and re-raise to the caller);
- answers the accepted request with a short page and stops listening at once.

It is hand-written over anyio rather than uvicorn because it answers at most a handful of GET
requests and must not touch the process's signal handlers or logging. anyio's listener sets
TCP_NODELAY on accepted sockets, and every answer closes its connection anyway.

Nothing here prints or logs: request targets can carry a token, so they are never shown.
Timeouts of the whole wait are the caller's (cancel `TokenCallback.wait`).
"""

from __future__ import annotations

import contextlib
import hmac
import html
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream

__all__ = [
    "LISTEN_HOST",
    "TokenCallback",
    "TokenRejected",
    "authme_url",
    "listen_for_token",
]

T = TypeVar("T")

LISTEN_HOST = "127.0.0.1"
"""Where the listener binds: loopback only, so nothing off this machine can reach it."""

REDIRECT_HOST = "localhost"
"""The host named in the redirect URL (docs/puter-protocol.md, "Authentication")."""

_MAX_HEAD = 16 * 1024
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_DEFAULT_READ_TIMEOUT = 10.0


class TokenRejected(Exception):
    """Raised by a token check: this token is not usable, but another may still arrive.

    The message is shown on the browser's page; it must not contain the token.
    """


def authme_url(gui_origin: str, redirect_url: str) -> str:
    """The address that asks Puter to sign the user in and send the browser to `redirect_url`."""
    return f"{gui_origin.rstrip('/')}/?action=authme&redirectURL={quote(redirect_url, safe='')}"


# --------------------------------------------------------------------------------------------
# Pages


@dataclass(frozen=True, slots=True)
class _Page:
    status: int
    reason: str
    title: str
    text: str
    # The success page drops the query (the token) from the address bar, so that the token is
    # not left on screen or in the tab's session history entry.
    forget_query: bool = False

    def encode(self) -> bytes:
        script = (
            '<script>history.replaceState(null, "", location.pathname);</script>' if self.forget_query else ""
        )
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>puter-mcp: {html.escape(self.title)}</title>{script}</head>"
            '<body style="font-family: system-ui, sans-serif; max-width: 36em; margin: 4em auto; '
            'padding: 0 1em; line-height: 1.5">'
            f"<h1>{html.escape(self.title)}</h1><p>{html.escape(self.text)}</p></body></html>\n"
        ).encode()
        head = (
            f"HTTP/1.1 {self.status} {self.reason}\r\n"
            "Content-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\n"
            "Referrer-Policy: no-referrer\r\n"
            "X-Content-Type-Options: nosniff\r\n"
            "Connection: close\r\n"
            "\r\n"
        ).encode("ascii")
        return head + body


_SIGNED_IN = _Page(
    200,
    "OK",
    "Signed in",
    "puter-mcp is signed in to Puter. You can close this tab and go back to the terminal.",
    forget_query=True,
)
_NOT_FOUND = _Page(404, "Not Found", "Not found", "This address is not part of the puter-mcp sign-in.")
_NO_TOKEN = _Page(
    400,
    "Bad Request",
    "No token",
    "Puter sent no token with this request. Open the sign-in address printed in the terminal "
    "again; puter-mcp is still waiting.",
)
_WRONG_STATE = _Page(
    400,
    "Bad Request",
    "Sign-in not recognised",
    "This request does not come from the sign-in puter-mcp started (its state is missing or "
    "wrong), so it was ignored. puter-mcp is still waiting: use the sign-in address printed in "
    "the terminal.",
)
_BAD_REQUEST = _Page(400, "Bad Request", "Bad request", "puter-mcp could not understand this request.")
_TOO_LARGE = _Page(
    431, "Request Header Fields Too Large", "Bad request", "This request is too large for the sign-in."
)
_WRONG_METHOD = _Page(405, "Method Not Allowed", "Bad request", "The sign-in accepts GET requests only.")
_FAILED = _Page(
    500,
    "Internal Server Error",
    "Sign-in failed",
    "puter-mcp could not complete the sign-in. The terminal says why and what to do.",
)


def _rejected_page(reason: str) -> _Page:
    return _Page(
        400,
        "Bad Request",
        "Sign-in not accepted",
        f"{reason} puter-mcp is still waiting: open the sign-in address printed in the terminal "
        "again to retry.",
    )


# --------------------------------------------------------------------------------------------
# Requests


class _HeadTooLarge(Exception):
    pass


async def _read_head(stream: SocketStream) -> bytes:
    """The request line and headers (the body of a GET is ignored)."""
    data = bytearray()
    while True:
        found = _HEAD_END.search(data)
        if found is not None:
            return bytes(data[: found.start()])
        if len(data) > _MAX_HEAD:
            raise _HeadTooLarge
        data += await stream.receive(4096)


def _request_target(head: bytes) -> tuple[str, str] | None:
    """(method, target) from the request line, or None when it is not HTTP/1.x."""
    line = head.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    return parts[0], parts[1]


def _param_of(query: str, name: str) -> str | None:
    """The first non-blank value of `name` in a query string."""
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == name and value.strip():
            return value.strip()
    return None


# --------------------------------------------------------------------------------------------
# The listener


class TokenCallback:
    """A listening callback endpoint; get one from `listen_for_token`.

    Attributes:
        port: the port it listens on (127.0.0.1).
        path: the secret path Puter must send the browser back to.
        state: the one-time value the redirect must carry back (``?state=...``).
    """

    def __init__(self, listener: SocketListener, *, path: str, state: str, read_timeout: float) -> None:
        self._listener = listener
        self.port: int = listener.extra(SocketAttribute.local_port)  # noqa: S610 (anyio, not Django)
        self.path = path
        self.state = state
        self._read_timeout = read_timeout
        self._check_lock = anyio.Lock()
        self._closed = False
        self._used = False

    @property
    def redirect_url(self) -> str:
        """Where Puter sends the browser back to (``http://localhost:PORT/<secret path>?state=<state>``);
        Puter keeps the query and adds ``token``."""
        return f"http://{REDIRECT_HOST}:{self.port}{self.path}?{urlencode({'state': self.state})}"

    @property
    def listening(self) -> bool:
        return not self._closed

    async def aclose(self) -> None:
        """Stop listening (idempotent)."""
        if not self._closed:
            self._closed = True
            await self._listener.aclose()

    async def wait(self, check: Callable[[str], Awaitable[T]]) -> T:
        """Serve requests until `check` accepts a token; return what it returned.

        `check` runs for one token at a time. `TokenRejected` from it keeps the wait going;
        any other exception ends it and is re-raised here (after the browser is told). The
        listener is closed before this returns or raises, whatever the reason (cancellation
        included). May be called once.
        """
        if self._used:
            raise RuntimeError("TokenCallback.wait may be called only once")
        self._used = True
        outcome: list[T] = []
        failure: list[Exception] = []
        try:
            async with anyio.create_task_group() as group:

                async def handle(stream: SocketStream) -> None:
                    async with stream:
                        page = await self._answer_one(stream, check, outcome, failure)
                        if page is not None:
                            # A browser that went away gets nothing; its next request is served anew.
                            with (
                                anyio.move_on_after(self._read_timeout),
                                contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError),
                            ):
                                await stream.send(page.encode())
                    if outcome or failure:
                        group.cancel_scope.cancel()

                # Ends only by cancellation: a token accepted, a failure, or the caller's timeout.
                while True:
                    stream = await self._listener.accept()
                    group.start_soon(handle, stream)
        finally:
            with anyio.CancelScope(shield=True):
                await self.aclose()
        if failure:
            raise failure[0]
        return outcome[0]

    async def _answer_one(
        self,
        stream: SocketStream,
        check: Callable[[str], Awaitable[T]],
        outcome: list[T],
        failure: list[Exception],
    ) -> _Page | None:
        """Read one request and decide the page that answers it (None: just close)."""
        try:
            with anyio.fail_after(self._read_timeout):
                head = await _read_head(stream)
        except _HeadTooLarge:
            return _TOO_LARGE
        except (TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            # A pre-connect that never sends anything, or a client that hung up.
            return None
        request = _request_target(head)
        if request is None:
            return _BAD_REQUEST
        method, target = request
        if method != "GET":
            return _WRONG_METHOD
        parts = urlsplit(target)
        if not secrets.compare_digest(parts.path.encode("latin-1"), self.path.encode("latin-1")):
            return _NOT_FOUND
        state = _param_of(parts.query, "state")
        if state is None or not hmac.compare_digest(state.encode(), self.state.encode()):
            return _WRONG_STATE
        token = _param_of(parts.query, "token")
        if token is None:
            return _NO_TOKEN
        async with self._check_lock:
            if outcome:
                return _SIGNED_IN  # a second request raced the accepted one: nothing more to do
            if failure:
                return _FAILED
            try:
                value = await check(token)
            except TokenRejected as rejected:
                return _rejected_page(str(rejected))
            except Exception as exc:
                # Kept and re-raised by `wait` (not swallowed): the caller reports it.
                failure.append(exc)
                return _FAILED
            # Recorded before any other await, so that a cancellation arriving now cannot lose
            # a token the check has already saved.
            outcome.append(value)
            return _SIGNED_IN


@asynccontextmanager
async def listen_for_token(*, read_timeout: float = _DEFAULT_READ_TIMEOUT) -> AsyncIterator[TokenCallback]:
    """Listen on 127.0.0.1, on a free port, behind a fresh secret path, for the block's duration.

    `read_timeout` bounds how long one connection may take to send its request, so that an
    idle pre-connect from the browser cannot hold anything up.
    """
    listener = await anyio.create_tcp_listener(local_host=LISTEN_HOST, local_port=0)
    # One address was asked for, so one socket listens; keep that one.
    (socket_listener,) = listener.listeners
    if not isinstance(socket_listener, SocketListener):  # pragma: no cover - anyio's contract
        raise TypeError(f"unexpected listener {socket_listener!r}")
    callback = TokenCallback(
        socket_listener,
        path="/" + secrets.token_urlsafe(24),
        state=secrets.token_urlsafe(24),
        read_timeout=read_timeout,
    )
    try:
        yield callback
    finally:
        with anyio.CancelScope(shield=True):
            await callback.aclose()
