"""Headers only after the first content: how every API of the gateway answers a chat.

A streamed answer is sent by `AnswerStream`, an ASGI response that, in the one task that
serves the request:

1. reads `Backend.chat_stream` up to its first content event (`open_answer`). Everything
   before it (a 429, a model down, an account refused) is failed over silently by the core,
   and a request that no candidate can answer gets a real status in the API's shape, never
   a 200 followed by an error;
2. sends the headers (naming the model that answers), then the body the API's encoder makes
   from the events, flushed event by event;
3. after content began, lets the encoder end the body with the API's error event when the
   answer breaks off (no replay: the core never starts another model then).

A client that disconnects cancels the request at once (the upstream request is closed and its
pacing slot given back); so does one that leaves while a whole answer (`whole_answer`) is made.

Why one task: the core's event stream holds a task group open across its events, so it must
be read, and closed, by the task that opened it; Starlette's own StreamingResponse reads its
body in another task (docs/gateway.md, "Streaming").
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

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

__all__ = ["AnswerStream", "Encoder", "OpenedAnswer", "model_headers", "open_answer", "whole_answer"]


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
        outcome, failure: how the answer ended, once `events` is exhausted.
    """

    def __init__(
        self,
        stream: AsyncGenerator[ChatEvent, None],
        first: list[ChatEvent],
        *,
        asked: str | None,
        answering: Answering | None,
        fallback: str | None,
        ttft_ms: float,
    ) -> None:
        self._stream = stream
        self._first = first
        self.asked = asked
        self.model = answering.model if answering else (asked or "")
        self.account = answering.account if answering else ""
        self.fallback = fallback
        self.ttft_ms = ttft_ms
        self.outcome: ChatOutcome | None = None
        self.failure: BackendError | None = None
        self._events: AsyncGenerator[ChatEvent, None] | None = None

    def events(self) -> AsyncIterator[ChatEvent]:
        """The content events from the first on, then `UsageUpdate` when Puter sends it, then
        exactly one `Finished` or `StreamFailed`. One iterator per answer: `aclose` closes it,
        so an encoder may stop reading at any point."""
        if self._events is None:
            self._events = self._read()
        return self._events

    async def _read(self) -> AsyncGenerator[ChatEvent, None]:
        for event in self._first:
            self._note(event)
            yield event
        self._first = []
        async for event in self._stream:
            if isinstance(event, Finished | StreamFailed):
                self._note(event)
            yield event

    def _note(self, event: ChatEvent) -> None:
        if isinstance(event, Finished):
            self.outcome = event.outcome
            self.model = event.outcome.model
        elif isinstance(event, StreamFailed):
            self.failure = event.error

    async def aclose(self) -> None:
        """Release the upstream request (at once, when the answer is not finished). Called by
        the task that opened the answer: the core's stream must be closed by that task."""
        if self._events is not None:
            await self._events.aclose()
        await self._stream.aclose()


async def open_answer(backend: Backend, call: ChatCall, *, started: float | None = None) -> OpenedAnswer:
    """Read the call's events up to its first content event (or its end, for an empty answer).

    Args:
        started: `time.perf_counter()` when the request began (for the time to first token).

    Raises:
        GatewayError: no candidate can answer (the core's error, mapped to a status).
    """
    started = time.perf_counter() if started is None else started
    stream = backend.chat_stream(call)
    first: list[ChatEvent] = []
    answering: Answering | None = None
    first_model = ""
    failures: list[str] = []
    try:
        async for event in stream:
            if isinstance(event, AttemptStarted):
                first_model = first_model or event.model
                if event.previous_failure:
                    failures.append(event.previous_failure)
                continue
            if isinstance(event, Answering):
                answering = event
                continue
            first.append(event)
            if isinstance(event, _OPENING):
                break
    except BackendError as exc:
        raise from_backend_error(exc, now=time.time()) from exc
    except BaseException:
        await stream.aclose()
        raise
    fallback = None
    if answering is not None and failures and answering.model != first_model:
        fallback = f"{first_model} failed ({', '.join(dict.fromkeys(failures))})"
    return OpenedAnswer(
        stream,
        first,
        asked=call.model,
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


Encoder = Callable[[OpenedAnswer], AsyncIterator[bytes]]
"""Makes an API's response body from an opened answer: its events in that API's framing,
ending with the API's error event when `StreamFailed` comes."""


class AnswerStream(Response):
    """The streamed answer to one chat request (see the module docstring).

    Args:
        backend, call: what to answer.
        encoder: the API's body from the events.
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
        encoder: Encoder,
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
        exchange = self.exchange
        exchange.stream = True
        try:
            opened = await open_answer(self.backend, self.call, started=exchange.started)
        except GatewayError as error:
            exchange.refused(error)
            await self.error_response(error)(scope, receive, send)
            return
        exchange.answering(opened)
        headers = {
            "cache-control": "no-cache",
            # Proxies (nginx) must not buffer a stream: each event goes out as it is made.
            "x-accel-buffering": "no",
            **model_headers(opened.asked, opened.model, opened.fallback),
            **self.extra_headers,
        }
        self.init_headers(headers)  # with the content type, from `media_type`
        sending = anyio.Lock()
        last_sent = [time.monotonic()]

        async def send_body(chunk: bytes, more: bool = True) -> None:
            async with sending:
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                last_sent[0] = time.monotonic()

        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            exchange.status = 200
            if self.ping is not None:
                group.start_soon(self._keep_alive, send_body, last_sent)
            body = self.encoder(opened)
            try:
                async for chunk in body:
                    await send_body(chunk)
            finally:
                # Closed here, in this task, like everything that reads the core's stream.
                closing = getattr(body, "aclose", None)
                if closing is not None:
                    with anyio.CancelScope(shield=True):
                        await closing()
            await send_body(b"", more=False)
        finally:
            with anyio.CancelScope(shield=True):
                await opened.aclose()
            exchange.ended(opened)

    async def _keep_alive(
        self, send_body: Callable[[bytes], Awaitable[None]], last_sent: list[float]
    ) -> None:
        assert self.ping is not None
        while True:
            await anyio.sleep(max(0.05, last_sent[0] + self.ping_every - time.monotonic()))
            if time.monotonic() - last_sent[0] >= self.ping_every:
                await send_body(self.ping)


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
