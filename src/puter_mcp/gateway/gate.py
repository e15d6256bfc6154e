"""Headers only after the first content: how every API of the gateway answers a chat.

A streamed answer is sent by `AnswerStream`, an ASGI response that, in the one task that
serves the request:

1. takes the answer's events as `Backend.chat_into` hands them over, in this task, noting
   those before the first content event. Everything before it (a 429, a model down, an
   account refused) is failed over silently by the core, and a request that no candidate can
   answer gets a real status in the API's shape, never a 200 followed by an error;
2. with the first content event, sends the headers (naming the model that answers), then
   the body the API's encoder (`EventEncoder`) makes event by event, each sent as it comes;
3. after content began, lets the encoder end the body with the API's error event when the
   answer breaks off (no replay: the core never starts another model then).

A client that disconnects cancels the request at once (the upstream request is closed and its
pacing slot given back); so does one that leaves while a whole answer (`whole_answer`) is made.

Why not Starlette's StreamingResponse: it reads its body in another task than the one that
decided the status, and it cannot hold the headers back until the first content arrives
(docs/gateway-reference.md, "Streaming").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from puter_mcp.core import (
    CONTENT_EVENTS,
    Answering,
    AttemptStarted,
    Backend,
    BackendError,
    ChatCall,
    ChatEvent,
    ChatOutcome,
    Finished,
    StreamFailed,
)
from puter_mcp.gateway.failures import GatewayError, from_backend_error

if TYPE_CHECKING:
    from puter_mcp.gateway.exchange import Exchange

__all__ = ["AnswerStream", "EventEncoder", "OpenedAnswer", "model_headers", "whole_answer"]


_OPENING = (*CONTENT_EVENTS, Finished, StreamFailed)
"""The events that open an answer: its first content, or its end when it has none."""


class OpenedAnswer:
    """A chat whose first content event has arrived: its headers may go out now.

    Attributes:
        asked: the model the request named (None: the default).
        model: the model that answers.
        account: the account that pays (its name, never its token).
        fallback: why another model answers than the first one tried, or None.
        ttft_ms: from the request's start to the first content event.
        outcome, failure: how the answer ended, once its last event was noted.
    """

    __slots__ = ("account", "asked", "failure", "fallback", "model", "outcome", "ttft_ms")

    def __init__(
        self, *, asked: str | None, answering: Answering | None, fallback: str | None, ttft_ms: float
    ) -> None:
        self.asked = asked
        self.model = answering.model if answering else (asked or "")
        self.account = answering.account if answering else ""
        self.fallback = fallback
        self.ttft_ms = ttft_ms
        self.outcome: ChatOutcome | None = None
        self.failure: BackendError | None = None

    def note(self, event: ChatEvent) -> None:
        """Take in how the answer ended, from its last event (`Finished`, `StreamFailed`)."""
        if isinstance(event, Finished):
            self.outcome = event.outcome
            self.model = event.outcome.model
        elif isinstance(event, StreamFailed):
            self.failure = event.error


class _Opening:
    """What the events before an answer's first content say: the model tried first, why
    attempts failed, who answers; and the events that open the answer."""

    __slots__ = ("answering", "failures", "first", "first_model")

    def __init__(self) -> None:
        self.answering: Answering | None = None
        self.first_model = ""
        self.failures: list[str] = []
        self.first: list[ChatEvent] = []

    def opens(self, event: ChatEvent) -> bool:
        """Note one event before the answer opens; True when it opens it (its first content,
        or its end when it has none)."""
        if isinstance(event, AttemptStarted):
            self.first_model = self.first_model or event.model
            if event.previous_failure:
                self.failures.append(event.previous_failure)
            return False
        if isinstance(event, Answering):
            self.answering = event
            return False
        self.first.append(event)
        return isinstance(event, _OPENING)

    def opened(self, *, asked: str | None, started: float) -> OpenedAnswer:
        answering, failures = self.answering, self.failures
        fallback = None
        if answering is not None and failures and answering.model != self.first_model:
            fallback = f"{self.first_model} failed ({', '.join(dict.fromkeys(failures))})"
        return OpenedAnswer(
            asked=asked,
            answering=answering,
            fallback=fallback,
            ttft_ms=(time.perf_counter() - started) * 1000,
        )


def model_headers(asked: str | None, answered: str, fallback: str | None) -> dict[str, str]:
    """``X-Puter-Model-Answered`` when the model that answered is not the one asked for (a
    virtual model, `auto`, a fallback), and ``X-Puter-Fallback`` with the reason when it fell
    back. Header values are ASCII: anything else is replaced."""
    headers: dict[str, str] = {}
    if answered and (asked is None or answered.casefold() != asked.casefold()):
        headers["X-Puter-Model-Answered"] = _ascii(answered)
    if fallback:
        headers["X-Puter-Fallback"] = _ascii(fallback)
    return headers


def _ascii(value: str) -> str:
    return value.encode("ascii", "replace").decode().replace("\n", " ")[:500]


class EventEncoder(Protocol):
    """Makes an API's response body event by event, as the core hands each one over.

    The answer is read with `Backend.chat_into`, so no task and no channel stand between the
    router and the client (each event handed across a channel costs a few turns of the event
    loop; see bench/README.md), and each event is encoded and sent as it comes.
    """

    def opening(self, opened: OpenedAnswer) -> bytes:
        """What goes out right after the headers (b"" for nothing)."""
        ...

    def encode(self, event: ChatEvent) -> bytes:
        """The bytes for one event, from the first content event on (b"" for none). The last
        event is `Finished` or `StreamFailed`: the API's end of the body, or its error event."""
        ...


class AnswerStream(Response):
    """The streamed answer to one chat request (see the module docstring).

    Args:
        backend, call: what to answer.
        encoder: the API's body from the events (`EventEncoder`).
        error_response: the API's refusal, for a request no candidate can answer.
        exchange: the request's record, filled as the answer goes.
        media_type: ``text/event-stream`` or ``application/x-ndjson``.
        ping: bytes to send whenever the body has been silent for `ping_every` seconds after
            the headers (Anthropic's ``ping`` event), or None.
    """

    def __init__(
        self,
        backend: Backend,
        call: ChatCall,
        *,
        encoder: EventEncoder,
        error_response: Callable[[GatewayError], Response],
        exchange: Exchange,
        media_type: str,
        headers: Mapping[str, str] | None = None,
        ping: bytes | None = None,
        ping_every: float = 10.0,
    ) -> None:
        self.backend, self.call, self.encoder = backend, call, encoder
        self.error_response, self.exchange = error_response, exchange
        self.media_type = media_type
        self.extra_headers = dict(headers or {})
        self.ping, self.ping_every = ping, ping_every
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
            try:
                await self._answer(scope, receive, send, group)
            except Exception as exc:
                # Raised outside the group, which would otherwise wrap it in an exception group.
                failure = exc
            finally:
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _answer(self, scope: Scope, receive: Receive, send: Send, group: anyio.abc.TaskGroup) -> None:
        """Each event encoded and sent as the core hands it over, the headers with the first
        content."""
        exchange = self.exchange
        exchange.stream = True
        body = _Body(send, locked=self.ping is not None)
        delivery = _Delivery(self, self.encoder, send, body, group)
        try:
            await self.backend.chat_into(self.call, delivery)
        except BackendError as exc:
            # Raised only before any content, so before the headers.
            error = from_backend_error(exc, now=time.time())
            exchange.refused(error)
            await self.error_response(error)(scope, receive, send)
            return
        finally:
            if delivery.opened is not None:
                exchange.ended(delivery.opened)
        await body.send(b"", more=False)

    async def start(self, opened: OpenedAnswer, send: Send, body: _Body, group: anyio.abc.TaskGroup) -> None:
        """Send the headers of an opened answer (and start the pings), once."""
        self.exchange.answering(opened)
        headers = {
            "cache-control": "no-cache",
            # Proxies (nginx) must not buffer a stream: each event goes out as it is made.
            "x-accel-buffering": "no",
            **model_headers(opened.asked, opened.model, opened.fallback),
            **self.extra_headers,
        }
        self.init_headers(headers)  # with the content type, from `media_type`
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        self.exchange.status = 200
        body.last_sent = time.monotonic()
        if self.ping is not None:
            group.start_soon(self._keep_alive, body)

    async def _keep_alive(self, body: _Body) -> None:
        assert self.ping is not None
        while True:
            await anyio.sleep(max(0.05, body.last_sent + self.ping_every - time.monotonic()))
            if time.monotonic() - body.last_sent >= self.ping_every:
                await body.send(self.ping)


class _Body:
    """Sends the parts of a response body; with `locked`, one at a time (the pings are sent by
    a task of their own)."""

    __slots__ = ("_lock", "_send", "last_sent")

    def __init__(self, send: Send, *, locked: bool) -> None:
        self._send = send
        self._lock = anyio.Lock() if locked else None
        self.last_sent = time.monotonic()

    async def send(self, chunk: bytes, more: bool = True) -> None:
        if self._lock is None:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": more})
            return
        async with self._lock:
            await self._send({"type": "http.response.body", "body": chunk, "more_body": more})
            self.last_sent = time.monotonic()


class _Delivery:
    """Where `Backend.chat_into` hands the events of an answer with an `EventEncoder`: noted
    until the first content, which sends the headers; then each event encoded and sent."""

    __slots__ = ("_body", "_encoder", "_group", "_http_send", "_opening", "_stream", "opened")

    def __init__(
        self, stream: AnswerStream, encoder: EventEncoder, send: Send, body: _Body, group: anyio.abc.TaskGroup
    ) -> None:
        self._stream, self._encoder, self._http_send = stream, encoder, send
        self._body, self._group = body, group
        self._opening = _Opening()
        self.opened: OpenedAnswer | None = None

    async def send(self, event: ChatEvent, /) -> None:
        opened = self.opened
        if opened is None:
            opening = self._opening
            if not opening.opens(event):
                return
            stream = self._stream
            opened = opening.opened(asked=stream.call.model, started=stream.exchange.started)
            self.opened = opened
            await stream.start(opened, self._http_send, self._body, self._group)
            head = self._encoder.opening(opened)
            if head:
                await self._body.send(head)
            events, opening.first = opening.first, []
        else:
            events = (event,)
        for each in events:
            opened.note(each)
            chunk = self._encoder.encode(each)
            if chunk:
                await self._body.send(chunk)


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Cancel `scope` when the client goes away (the body was read before; what comes now
    can only be the disconnect)."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


async def whole_answer(backend: Backend, call: ChatCall, request: Request) -> ChatOutcome:
    """Answer a non-streamed request whole. Nothing is sent before the end, so an answer that
    breaks off starts again on the next candidate; a client that leaves cancels it.

    Raises:
        GatewayError: no candidate can answer.
    """
    outcome: ChatOutcome | None = None
    failure: BackendError | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(_cancel_on_disconnect, request.receive, group.cancel_scope)
        try:
            outcome = await backend.chat(call)
        except BackendError as exc:
            # Raised outside the group, which would otherwise wrap it in an exception group.
            failure = exc
        finally:
            group.cancel_scope.cancel()
    if failure is not None:
        raise from_backend_error(failure, now=time.time()) from failure
    if outcome is None:  # the client left: nobody reads what is sent now
        raise GatewayError(499, "the client closed the connection")
    return outcome
