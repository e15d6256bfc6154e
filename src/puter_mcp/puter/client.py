"""`PuterClient`: the one place that talks HTTP to Puter.

One `httpx2.AsyncClient` per process, shared by every account (the token travels per request
as ``Authorization: Bearer``). Every way a call can fail ends as a `PuterError` whose kind the
router acts on; this module makes no retries (the router does) and never lets a token reach a
log line or an exception message.

Timeouts are enforced with anyio around each wait rather than left to httpx alone, so that each
one can say which limit fired and so that they also hold for transports that never touch a
socket (tests):

- ``connect``: establishing the connection (httpx's own connect timeout);
- ``first_byte``: from sending the request to the response headers;
- ``idle``: the longest time a stream may stay without completing a line (body reads too);
- ``total``: the whole call, from sending to the last byte.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

import anyio
import httpx2
from pydantic import BaseModel, ConfigDict

from puter_mcp import __version__
from puter_mcp.puter.catalogue import Catalogue
from puter_mcp.puter.errors import FailureKind, PuterError
from puter_mcp.puter.tiers import StatedTier, Tier
from puter_mcp.puter.timeouts import DEFAULT_TIMEOUTS, Timeouts
from puter_mcp.puter.wire import (
    ChatRequest,
    ChatResult,
    StreamEvent,
    StreamText,
    UsageEvent,
    error_from_body,
    events_from_result,
    json_body,
    parse_chat_answer,
    parse_stream_line,
)

__all__ = ["DEFAULT_TIMEOUTS", "AccountUsage", "PuterClient", "Timeouts", "WhoAmI"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_MICROCENTS_PER_USD = 100_000_000
_CLOSE_GRACE = 5.0  # seconds allowed to release a connection, even while being cancelled
_READ_LIMIT_SLACK = 0.01  # how much later than due a stream's idle timeout may come (see _LineReader)
_INACTIVE_SUBSCRIPTION = frozenset(
    {"canceled", "cancelled", "expired", "inactive", "incomplete", "incomplete_expired", "unpaid", "ended"}
)


class WhoAmI(BaseModel):
    """Who a token belongs to, and the tier that decides Puter's request limits for it."""

    model_config = ConfigDict(frozen=True)

    username: str
    uuid: str | None = None
    email: str | None = None
    is_temp: bool = False
    tier: StatedTier = Tier.FREE
    email_confirmed: bool = True
    """False only when Puter says so: it then refuses the account's calls (403
    ``email_confirmation_required``) until the address is confirmed."""

    @classmethod
    def from_user(cls, user: Mapping[str, Any]) -> WhoAmI:
        """Read a ``/whoami`` answer (or the ``user`` object of a sign-up answer).

        The tier is "paid" only for an active ``subscription`` object (puter.com adds one for
        paying users), "temp" for a temporary account, else "free": when unsure, the lower
        limits are the safe guess.

        Raises:
            PuterError: TRANSPORT when the answer names no user.
        """
        username = user.get("username")
        if not isinstance(username, str) or not username:
            raise PuterError(FailureKind.TRANSPORT, "Puter's account answer names no user.")
        is_temp = user.get("is_temp") is True
        tier = Tier.FREE
        if _is_active_subscription(user.get("subscription")):
            tier = Tier.PAID
        elif is_temp:
            tier = Tier.TEMP
        uuid = user.get("uuid")
        email = user.get("email")
        return cls(
            username=username,
            uuid=uuid if isinstance(uuid, str) and uuid else None,
            email=email if isinstance(email, str) and email else None,
            is_temp=is_temp,
            tier=tier,
            # Temporary accounts have no address to confirm; Puter still lets them call.
            email_confirmed=is_temp or user.get("email_confirmed") is not False,
        )


def _is_active_subscription(value: Any) -> bool:
    if not isinstance(value, Mapping) or not value:
        return False
    if value.get("active") is False:
        return False
    status = value.get("status")
    return not (isinstance(status, str) and status.lower() in _INACTIVE_SUBSCRIPTION)


class AccountUsage(BaseModel):
    """An account's monthly allowance, in US dollars (Puter counts in microcents)."""

    model_config = ConfigDict(frozen=True)

    remaining_usd: float
    allowance_usd: float
    used_usd: float

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> AccountUsage:
        """Read ``/metering/usage``. ``usage.allowanceUsed`` is absent until something was charged.

        Raises:
            PuterError: TRANSPORT when neither the remaining amount nor the allowance is given.
        """
        usage = body.get("usage")
        info = body.get("allowanceInfo")
        usage = usage if isinstance(usage, Mapping) else {}
        info = info if isinstance(info, Mapping) else {}
        used = _microcents(usage.get("allowanceUsed")) or 0
        remaining = _microcents(info.get("remaining"))
        allowance = _microcents(info.get("monthUsageAllowance"))
        if remaining is None and allowance is None:
            raise PuterError(FailureKind.TRANSPORT, "Puter's usage answer gives no allowance.")
        if remaining is None:
            remaining = max((allowance or 0) - used, 0)
        if allowance is None:
            allowance = remaining + used
        return cls(
            remaining_usd=remaining / _MICROCENTS_PER_USD,
            allowance_usd=allowance / _MICROCENTS_PER_USD,
            used_usd=used / _MICROCENTS_PER_USD,
        )


def _microcents(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


# The limits are durations handed to `anyio.move_on_after`, so any monotonic clock can measure
# them; `time.monotonic` is the event loop's own on asyncio, and read directly it saves the
# event-loop lookup of `anyio.current_time` (three calls a read, a few reads a streamed line).
_now = time.monotonic


class _Deadline:
    """The end of a call's total time, shared by all of its waits."""

    def __init__(self, total: float) -> None:
        self.total = total
        self.at = _now() + total

    @property
    def message(self) -> str:
        return f"The call to Puter did not finish within its total limit of {self.total:g} s (total timeout)."


async def _within(awaitable: Awaitable[T], *, seconds: float, message: str, deadline: _Deadline) -> T:
    """Await with a per-phase limit that never outlives the call's total deadline.

    Whichever limit is nearer decides, and the error names it.
    """
    remaining = deadline.at - _now()
    if remaining <= seconds:
        seconds, message = max(remaining, 0.0), deadline.message
    with anyio.move_on_after(seconds):
        return await awaitable
    # Only the timeout leaves the block without returning.
    raise PuterError(FailureKind.TRANSPORT, message)


# --------------------------------------------------------------------------------------------
# Token hygiene
# --------------------------------------------------------------------------------------------


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "[token]") if token and token in text else text


@contextmanager
def _token_free_errors(token: str | None) -> Iterator[None]:
    """Make sure no `PuterError` leaving a call carries the token in its message.

    Puter's messages do not echo tokens today; this keeps it so whatever they say tomorrow.
    The original error is not chained, since its message is the thing being hidden.
    """
    try:
        yield
    except PuterError as exc:
        if not token or token not in exc.message:
            raise
        raise PuterError(
            exc.kind,
            _redact(exc.message, token),
            status=exc.status,
            code=exc.code,
            partial_text=exc.partial_text,
        ) from None


# --------------------------------------------------------------------------------------------
# Bodies
# --------------------------------------------------------------------------------------------


def _loads(raw: bytes) -> Any:
    """The decoded JSON body, or None when it is not JSON (an HTML error page, garbage)."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _checked_json(response: httpx2.Response, raw: bytes, what: str) -> Any:
    """A successful JSON body, or the `PuterError` its status and envelope describe."""
    body = _loads(raw)
    status = response.status_code
    if 300 <= status < 400:
        raise _redirect_error(response)
    if not 200 <= status < 300:
        raise error_from_body(status, body)
    if body is None:
        content_type = response.headers.get("content-type", "no content type")
        raise PuterError(
            FailureKind.TRANSPORT,
            f"Puter answered {what} with HTTP {status} but a body that is not JSON ({content_type}).",
            status=status,
        )
    if isinstance(body, Mapping) and body.get("success") is False:
        raise error_from_body(200, body)
    return body


def _redirect_error(response: httpx2.Response) -> PuterError:
    """Puter's API never redirects; a web site does (a wrong `api_origin` sends every path to
    its home page), so say what the origin looks like rather than "HTTP 302"."""
    status = response.status_code
    location = response.headers.get("location", "")
    target = urlsplit(urljoin(str(response.request.url), location)) if location else None
    where = f" (it redirects to {target.path or '/'})" if target is not None else ""
    return PuterError(
        FailureKind.TRANSPORT,
        f"{response.request.url.scheme}://{response.request.url.netloc.decode()} does not look like "
        f"a Puter API{where}; check `api_origin`.",
        status=status,
    )


def _is_ndjson(response: httpx2.Response) -> bool:
    return "ndjson" in response.headers.get("content-type", "").lower()


def _default_gui_origin(api_origin: str) -> str:
    """``https://api.puter.com`` -> ``https://puter.com`` (and the same for self-hosted hosts);
    an origin without the ``api.`` prefix serves both (the emulator)."""
    parts = urlsplit(api_origin)
    netloc = parts.netloc[4:] if parts.netloc.lower().startswith("api.") else parts.netloc
    return urlunsplit((parts.scheme, netloc, "", "", "")).rstrip("/")


class _LineReader:
    """Splits a streamed body into NDJSON lines, enforcing the idle and total limits.

    Silence is measured only while waiting for bytes, not while the consumer handles an
    event, and it resets when a line completes: a stream that keeps trickling bytes without
    ever finishing a line is as stuck as a silent one.

    A wait that the transport itself bounds closely enough (`read_limit`: httpx's limit on each
    read of the socket, when it is enforced) needs no timer of this reader's own; only a wait
    that must end sooner (a line already slow to complete, the total limit near) gets one.
    This is the usual case of every chunk of a stream, and a timer costs each chunk a cancel
    scope (~5 µs, and as many system calls).
    """

    def __init__(
        self, response: httpx2.Response, *, idle: float, deadline: _Deadline, read_limit: float | None
    ) -> None:
        self._chunks: AsyncGenerator[bytes, None] = response.aiter_bytes()
        self._idle = idle
        self._deadline = deadline
        # A wait of `seconds` may be left to the transport when its limit ends it at most this
        # much later (so an idle timeout comes within 1% of its time).
        self._untimed_from = math.inf if read_limit is None else read_limit * (1 - _READ_LIMIT_SLACK)
        self._buffer = bytearray()
        self._ended = False
        self._quiet = 0.0

    async def next_line(self) -> bytes | None:
        """The next complete line (without its newline), or None at the end of the stream.

        Raises:
            PuterError: TRANSPORT on a timeout, a broken connection, or a last line cut short.
        """
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                self._quiet = 0.0
                return line
            if self._ended:
                return self._tail()
            # `_within`, written out: this runs for every chunk (Puter sends a line a chunk),
            # so it saves a coroutine and the wording of a message that is rarely needed.
            started = _now()
            seconds = self._idle - self._quiet
            total_decides = self._deadline.at - started <= seconds
            if total_decides:
                seconds = max(self._deadline.at - started, 0.0)
            chunk: bytes | None = None
            try:
                if seconds >= self._untimed_from:
                    chunk = await anext(self._chunks)
                else:
                    with anyio.move_on_after(seconds):
                        chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
                continue
            except httpx2.ReadTimeout:
                pass  # the transport's own limit on a silent read (see `read_limit`)
            except httpx2.HTTPError as exc:
                raise PuterError(
                    FailureKind.TRANSPORT, f"Puter's stream broke: {type(exc).__name__}: {exc}"
                ) from exc
            if chunk is not None:
                self._quiet += _now() - started
                self._buffer += chunk
                continue
            if total_decides:
                raise PuterError(FailureKind.TRANSPORT, self._deadline.message)
            raise PuterError(
                FailureKind.TRANSPORT, f"Puter's stream stayed silent for {self._idle:g} s (idle timeout)."
            )

    def _tail(self) -> bytes | None:
        """What is left after the last newline: nothing, or a last line sent without one.

        A JSON object cannot be a proper prefix of another, so a tail that decodes as an object
        is a whole line; anything else is a line cut by a broken stream.
        """
        if not self._buffer.strip():
            return None
        tail = bytes(self._buffer)
        self._buffer.clear()
        if isinstance(_loads(tail), dict):
            return tail
        raise PuterError(FailureKind.TRANSPORT, "Puter's stream was cut in the middle of a line.", status=200)

    async def aclose(self) -> None:
        await self._chunks.aclose()


def _httpx_timeout(timeouts: Timeouts, *, read: float | None) -> httpx2.Timeout:
    return httpx2.Timeout(
        connect=timeouts.connect, read=read, write=timeouts.first_byte, pool=timeouts.connect
    )


async def _release(response: httpx2.Response, reader: _LineReader | None = None) -> None:
    """Close the response even while the caller is being cancelled (shielded, bounded)."""
    if response.is_closed:
        return  # read to its end: httpx closed it then (and its reader's iterator is done)
    with anyio.move_on_after(_CLOSE_GRACE, shield=True):
        if reader is not None:
            await reader.aclose()
        await response.aclose()


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class PuterClient:
    """Puter's HTTP API: chat (whole or streamed), the model catalogue, and account facts.

    Args:
        api_origin: e.g. ``https://api.puter.com`` (scheme and host, no path).
        http: an existing client to use (tests pass one over `httpx2.MockTransport`); when
            omitted, one is created and `aclose` closes it.
        timeouts: the limits applied to every call.
        gui_origin: where sign-up lives; derived from ``api_origin`` when omitted.
    """

    def __init__(
        self,
        api_origin: str,
        *,
        http: httpx2.AsyncClient | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        gui_origin: str | None = None,
    ) -> None:
        self._api = api_origin.rstrip("/")
        self._gui = (gui_origin or _default_gui_origin(self._api)).rstrip("/")
        self._timeouts = timeouts
        # Read waits are enforced by anyio (see _within); httpx only bounds connecting,
        # writing the request and waiting for a pooled connection. A streamed answer's reads
        # are bounded by httpx too, no sooner than the first-byte and idle limits: so that the
        # stream's reader needs no timer of its own for each chunk (see _LineReader). Only
        # httpx's own transport is known to enforce that bound (its mock transport does not).
        self._stream_read_limit = max(timeouts.first_byte, timeouts.idle)
        self._httpx_timeout = _httpx_timeout(timeouts, read=None)
        self._stream_timeout = _httpx_timeout(timeouts, read=self._stream_read_limit)
        self._owns_http = http is None
        self._http = http or httpx2.AsyncClient(
            timeout=self._httpx_timeout,
            headers={"User-Agent": f"puter-mcp/{__version__}"},
            follow_redirects=False,
        )

    @property
    def api_origin(self) -> str:
        return self._api

    @property
    def gui_origin(self) -> str:
        return self._gui

    async def aclose(self) -> None:
        """Close the HTTP client, only if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> PuterClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- plumbing -------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        body: Any = None,
        accept: str,
        streamed: bool = False,
    ) -> httpx2.Request:
        headers = {"Accept": accept}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        content: bytes | None = None
        if body is not None:
            content = json_body(body)  # not httpx's `json=`: see `wire.json_body`
            headers["Content-Type"] = "application/json"
        timeout = self._stream_timeout if streamed else self._httpx_timeout
        return self._http.build_request(method, url, content=content, headers=headers, timeout=timeout)

    async def _send(
        self, request: httpx2.Request, *, deadline: _Deadline, header_limit: float
    ) -> httpx2.Response:
        """Send and wait for the response headers; the body is left to read (or stream)."""
        first_byte = f"Puter did not start answering within {header_limit:g} s (first-byte timeout)."
        try:
            response = await _within(
                self._http.send(request, stream=True),
                seconds=header_limit,
                message=first_byte,
                deadline=deadline,
            )
        except httpx2.ReadTimeout as exc:
            # A streamed request's read limit, no shorter than `header_limit` (see __init__):
            # it may come first when the two are equal.
            raise PuterError(FailureKind.TRANSPORT, first_byte) from exc
        except httpx2.ConnectTimeout as exc:
            raise PuterError(
                FailureKind.TRANSPORT,
                f"Could not connect to Puter at {request.url.host} within "
                f"{self._timeouts.connect:g} s (connect timeout).",
            ) from exc
        except httpx2.TimeoutException as exc:
            raise PuterError(
                FailureKind.TRANSPORT, f"Talking to Puter timed out ({type(exc).__name__}): {exc}"
            ) from exc
        except httpx2.HTTPError as exc:
            raise PuterError(
                FailureKind.TRANSPORT,
                f"Could not reach Puter at {request.url.host}: {type(exc).__name__}: {exc}",
            ) from exc
        logger.debug("%s %s -> HTTP %d", request.method, request.url.path, response.status_code)
        return response

    async def _read_body(self, response: httpx2.Response, *, deadline: _Deadline) -> bytes:
        idle = self._timeouts.idle
        try:
            return await _within(
                response.aread(),
                seconds=idle,
                message=f"Puter stopped sending its answer for {idle:g} s (idle timeout).",
                deadline=deadline,
            )
        except httpx2.HTTPError as exc:
            raise PuterError(
                FailureKind.TRANSPORT,
                f"Puter's answer broke off: {type(exc).__name__}: {exc}",
                status=response.status_code,
            ) from exc

    async def _fetch(self, request: httpx2.Request, *, header_limit: float) -> tuple[httpx2.Response, bytes]:
        """Send a request and read its whole body, within the total limit; always released."""
        deadline = _Deadline(self._timeouts.total)
        response = await self._send(request, deadline=deadline, header_limit=header_limit)
        try:
            raw = await self._read_body(response, deadline=deadline)
        finally:
            await _release(response)
        return response, raw

    async def _get_json(self, path: str, *, token: str | None, what: str) -> Any:
        request = self._request("GET", self._api + path, token=token, accept="application/json")
        response, raw = await self._fetch(request, header_limit=self._timeouts.first_byte)
        return _checked_json(response, raw, what)

    def _chat_request(self, request: ChatRequest, token: str, *, stream: bool) -> httpx2.Request:
        accept = "application/x-ndjson, application/json" if stream else "application/json"
        return self._request(
            "POST",
            self._api + "/drivers/call",
            token=token,
            body=request.to_driver_call(stream=stream),
            accept=accept,
            streamed=stream,
        )

    @staticmethod
    def _chat_answer(response: httpx2.Response, raw: bytes, requested_model: str) -> ChatResult:
        return parse_chat_answer(_checked_json(response, raw, "a chat call"), requested_model=requested_model)

    # -- chat -----------------------------------------------------------------------------

    async def chat(self, request: ChatRequest, *, token: str) -> ChatResult:
        """One chat completion, answered whole.

        A non-streamed answer's headers come only once the model has finished, so the
        first-byte limit would cut long answers: here the wait for headers is bounded by the
        total limit alone. `chat_stream` detects stalls much sooner, and should be preferred
        for anything long; this call's strength is that the answer names the model that
        answered.

        Raises:
            PuterError: for every failure (see `errors.FailureKind`).
        """
        with _token_free_errors(token):
            http_request = self._chat_request(request, token, stream=False)
            response, raw = await self._fetch(http_request, header_limit=math.inf)
            return self._chat_answer(response, raw, request.model)

    async def chat_stream(self, request: ChatRequest, *, token: str) -> AsyncGenerator[StreamEvent, None]:
        """One chat completion, as events while the lines arrive.

        Use it under ``contextlib.aclosing`` (or exhaust it): the response is closed as soon as
        the consumer stops, fails or is cancelled. Streams do not name the model that answered.

        Raises (while iterating):
            PuterError: a failure before the stream (its real status and code), an ``error``
                line, a stream that ends without its usage line (truncated) or cuts a line,
                a line that is not JSON, a timeout. Errors raised once text has arrived carry
                it as ``partial_text``.
        """
        with _token_free_errors(token):
            deadline = _Deadline(self._timeouts.total)
            http_request = self._chat_request(request, token, stream=True)
            response = await self._send(
                http_request, deadline=deadline, header_limit=self._timeouts.first_byte
            )
            reader: _LineReader | None = None
            try:
                if not (200 <= response.status_code < 300 and _is_ndjson(response)):
                    # An error before the stream began, or an older deployment's JSON answer
                    # (possibly a success:false envelope or a usage-limited answer).
                    raw = await self._read_body(response, deadline=deadline)
                    for event in events_from_result(self._chat_answer(response, raw, request.model)):
                        yield event
                    return
                reader = _LineReader(
                    response,
                    idle=self._timeouts.idle,
                    deadline=deadline,
                    read_limit=self._stream_read_limit if self._owns_http else None,
                )
                text = StreamText()
                usage_seen = False
                try:
                    while (line := await reader.next_line()) is not None:
                        parsed = parse_stream_line(line)
                        if parsed is None:
                            continue
                        usage_seen = usage_seen or isinstance(parsed, UsageEvent)
                        for event in text.take(parsed):
                            yield event
                    for event in text.rest():
                        yield event
                except PuterError as exc:
                    if not exc.partial_text:
                        exc.partial_text = text.received()
                    raise
                if not usage_seen:
                    raise PuterError(
                        FailureKind.TRANSPORT,
                        "Puter's stream ended without its usage line: the answer was cut short.",
                        status=response.status_code,
                        partial_text=text.received(),
                    )
            finally:
                await _release(response, reader)

    # -- catalogue and account ------------------------------------------------------------

    async def models(self, token: str | None = None) -> Catalogue:
        """The live model catalogue (``/puterai/chat/models/details``, no sign-in needed).

        With a `token`, the chat driver's own `models` method is asked too: it also names the
        models the list leaves out (a self-hosted Puter without vendor keys answers only its
        test models, which only the driver names). If that request fails, the list alone is
        returned: it is the part that matters on puter.com.
        """
        body = await self._get_json("/puterai/chat/models/details", token=None, what="the model list")
        entries = body.get("models") if isinstance(body, Mapping) else body
        if not isinstance(entries, list):
            raise PuterError(FailureKind.TRANSPORT, "Puter's model list has no models.", status=200)
        unlisted: list[Any] = []
        if token:
            try:
                unlisted = await self.driver_models(token)
            except PuterError as exc:
                logger.info("the chat driver did not list its models: %s", exc.message)
        return Catalogue.from_details(entries, unlisted)

    async def driver_models(self, token: str) -> list[Any]:
        """The chat driver's `models` method (``/drivers/call``, signed in): every model it
        answers, test models included."""
        with _token_free_errors(token):
            request = self._request(
                "POST",
                self._api + "/drivers/call",
                token=token,
                body={"interface": "puter-chat-completion", "method": "models", "args": {}},
                accept="application/json",
            )
            response, raw = await self._fetch(request, header_limit=self._timeouts.first_byte)
            body = _checked_json(response, raw, "the chat driver's model list")
            result = body.get("result") if isinstance(body, Mapping) else None
            if not isinstance(result, list):
                raise PuterError(
                    FailureKind.TRANSPORT, "The chat driver's model list is not a list.", status=200
                )
            return result

    async def whoami(self, token: str) -> WhoAmI:
        """The account behind ``token`` (``/whoami``)."""
        with _token_free_errors(token):
            body = await self._get_json("/whoami", token=token, what="/whoami")
            if not isinstance(body, Mapping):
                raise PuterError(
                    FailureKind.TRANSPORT, "Puter's /whoami answer is not an object.", status=200
                )
            return WhoAmI.from_user(body)

    async def usage(self, token: str) -> AccountUsage:
        """The account's allowance and what is left of it (``/metering/usage``)."""
        with _token_free_errors(token):
            body = await self._get_json("/metering/usage", token=token, what="/metering/usage")
            if not isinstance(body, Mapping):
                raise PuterError(FailureKind.TRANSPORT, "Puter's usage answer is not an object.", status=200)
            return AccountUsage.from_body(body)

    async def signup_temp(self) -> tuple[str, WhoAmI]:
        """Create a temporary account (``POST {gui_origin}/signup``) and return its token.

        puter.com guards this with a captcha, so it may be refused there; self-hosted Puter
        and the emulator allow it.
        """
        request = self._request(
            "POST", self._gui + "/signup", body={"is_temp": True}, accept="application/json"
        )
        response, raw = await self._fetch(request, header_limit=self._timeouts.first_byte)
        body = _checked_json(response, raw, "the sign-up")
        token = body.get("token") if isinstance(body, Mapping) else None
        user = body.get("user") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token or not isinstance(user, Mapping):
            said = body.get("message") if isinstance(body, Mapping) else None
            detail = f": {said}" if isinstance(said, str) and said else " (puter.com may require a captcha)."
            raise PuterError(
                FailureKind.BAD_REQUEST,
                f"Puter did not create a temporary account{detail}",
                status=response.status_code,
            )
        with _token_free_errors(token):
            return token, WhoAmI.from_user(user)
