"""PuterClient over httpx2.MockTransport: every line type, every error form, timeouts, cancellation.

No sockets: each test scripts Puter's answer. Timeouts are tiny so the tests stay fast; nothing
asserts how long anything took, only which failure was reported.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import aclosing
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
import pytest

from puter_mcp.puter.client import AccountUsage, PuterClient, Timeouts, WhoAmI
from puter_mcp.puter.errors import FailureKind, PuterError
from puter_mcp.puter.wire import (
    ChatMessage,
    ChatRequest,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from tests.helpers import API, NDJSON, STALL, ScriptedStream, lines

K = FailureKind
TOKEN = "eyJhbGciOi.secret-token-value.sig"
# Generous limits for tests about something else, so that a loaded machine cannot trip them;
# tiny ones for the tests about timeouts.
RELAXED = Timeouts(connect=5, first_byte=5, idle=5, total=30)
TINY = Timeouts(connect=1, first_byte=0.05, idle=0.05, total=5)

pytestmark = pytest.mark.anyio

Handler = (
    Callable[[httpx2.Request], httpx2.Response]
    | Callable[[httpx2.Request], Coroutine[Any, Any, httpx2.Response]]
)


def make_client(handler: Handler, timeouts: Timeouts = RELAXED, **kwargs: Any) -> PuterClient:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return PuterClient(API, http=http, timeouts=timeouts, **kwargs)


def chat_request(model: str = "claude-sonnet-latest") -> ChatRequest:
    return ChatRequest(messages=[ChatMessage(role="user", content="hi")], model=model)


def streaming(stream: ScriptedStream, status: int = 200) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers=NDJSON, stream=stream)

    return handler


def json_answer(status: int, body: Any) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, json=body)

    return handler


async def collect(client: PuterClient, request: ChatRequest | None = None) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    async with aclosing(client.chat_stream(request or chat_request(), token=TOKEN)) as stream:
        async for event in stream:
            events.append(event)
    return events


async def stream_failure(client: PuterClient) -> tuple[PuterError, list[StreamEvent]]:
    """Run a stream that must fail; return the error and the events delivered before it."""
    events: list[StreamEvent] = []

    async def drain() -> None:
        async with aclosing(client.chat_stream(chat_request(), token=TOKEN)) as stream:
            async for event in stream:
                events.append(event)

    with pytest.raises(PuterError) as caught:
        await drain()
    return caught.value, events


USAGE_LINE = {"type": "usage", "usage": {"input_tokens": 3, "output_tokens": 4, "usd_cents": 0.5}}

ANTHROPIC_BODY = {
    "success": True,
    "service": {"name": "ai-chat"},
    "result": {
        "message": {
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "Hello!"}],
            "stop_reason": "end_turn",
        },
        "usage": {"input_tokens": 2, "output_tokens": 3, "usd_cents": 1},
        "finish_reason": "stop",
    },
    "metadata": {"service_used": "claude", "providerUsed": "claude-sonnet-4-5-20250929"},
}


# ------------------------------------------------------------------------------- chat


async def test_chat_sends_the_driver_call_with_the_token() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=ANTHROPIC_BODY)

    request = chat_request()
    async with make_client(handler) as client:
        result = await client.chat(request, token=TOKEN)
    (sent,) = seen
    assert sent.method == "POST"
    assert str(sent.url) == API + "/drivers/call"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == request.to_driver_call(stream=False)
    assert result.text == "Hello!"
    assert result.model == "claude-sonnet-4-5-20250929"
    assert result.provider == "claude"
    assert result.usage == Usage(input_tokens=2, output_tokens=3)
    assert result.cost_usd == 0.01
    assert result.finish_reason == "stop"


V1_OUT_OF_CREDITS = {
    "success": False,
    "error": {
        "code": "insufficient_funds",
        "message": "No usage left for request.",
        "status": 402,
        "delegate": "usage-limited-chat",
        "$": "heyputer:api/APIError",
    },
}
DELEGATE_400 = {
    "success": False,
    "error": {
        "delegate": "usage-limited-chat",
        "message": "Error 400 from delegate `usage-limited-chat`: Permission denied.",
        "code": "error_400_from_delegate",
        "$": "heyputer:api/APIError",
        "status": 400,
    },
}
USAGE_LIMITED_200 = {
    **ANTHROPIC_BODY,
    "metadata": {
        "service_used": "usage-limited-chat",
        "providerUsed": "usage-limited",
        "usage_limited": True,
    },
}
STAND_IN_200 = {
    **ANTHROPIC_BODY,
    "metadata": {"service_used": "fake-chat", "providerUsed": "abuse"},
}


def v2(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": message, "message": message, "code": code, **extra}


# (status, body or raw bytes, content type, expected kind, expected status, expected code)
ERROR_FORMS: list[tuple[str, int, Any, str, FailureKind, int | None, str | None]] = [
    (
        "v2 out of credits",
        402,
        v2("insufficient_funds", "No usage left for request."),
        "",
        K.OUT_OF_CREDITS,
        402,
        "insufficient_funds",
    ),
    (
        "v2 rate limited",
        429,
        v2("too_many_requests", "Too many requests."),
        "",
        K.RATE_LIMITED,
        429,
        "too_many_requests",
    ),
    (
        "v2 unknown model",
        400,
        v2("bad_request", "Model not found: gpt-99"),
        "",
        K.MODEL_UNKNOWN,
        400,
        "bad_request",
    ),
    (
        "v2 subscriber only",
        403,
        v2("permission_denied", "Subscribers only."),
        "",
        K.MODEL_FORBIDDEN,
        403,
        "permission_denied",
    ),
    (
        "v2 providers down",
        400,
        v2("upstream_provider_unavailable", "down"),
        "",
        K.MODEL_DOWN,
        400,
        "upstream_provider_unavailable",
    ),
    (
        "v2 bad token",
        401,
        v2("token_auth_failed", "Authentication failed."),
        "",
        K.AUTH,
        401,
        "token_auth_failed",
    ),
    ("v1 success:false in a 200", 200, V1_OUT_OF_CREDITS, "", K.OUT_OF_CREDITS, 402, "insufficient_funds"),
    (
        "v1 400 from usage-limited delegate",
        400,
        DELEGATE_400,
        "",
        K.OUT_OF_CREDITS,
        400,
        "error_400_from_delegate",
    ),
    ("200 flagged usage-limited", 200, USAGE_LIMITED_200, "", K.OUT_OF_CREDITS, 200, None),
    ("fake/abuse stand-in", 200, STAND_IN_200, "", K.BAD_REQUEST, 200, None),
    ("html error page", 502, b"<html><body>Bad Gateway</body></html>", "text/html", K.TRANSPORT, 502, None),
    ("invalid json in a 200", 200, b'{"success": true, "res', "application/json", K.TRANSPORT, 200, None),
    ("html in a 200", 200, b"<html>login</html>", "text/html", K.TRANSPORT, 200, None),
    ("empty 500", 500, b"", "text/plain", K.TRANSPORT, 500, None),
]
ERROR_IDS = [form[0] for form in ERROR_FORMS]


def error_handler(status: int, body: Any, content_type: str) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if isinstance(body, bytes):
            return httpx2.Response(status, content=body, headers={"content-type": content_type})
        return httpx2.Response(status, json=body)

    return handler


@pytest.mark.parametrize(
    ("name", "status", "body", "ctype", "kind", "err_status", "code"), ERROR_FORMS, ids=ERROR_IDS
)
async def test_chat_error_forms(
    name: str, status: int, body: Any, ctype: str, kind: FailureKind, err_status: int | None, code: str | None
) -> None:
    async with make_client(error_handler(status, body, ctype)) as client:
        with pytest.raises(PuterError) as caught:
            await client.chat(chat_request(), token=TOKEN)
    assert (caught.value.kind, caught.value.status, caught.value.code) == (kind, err_status, code)
    assert caught.value.message


@pytest.mark.parametrize(
    ("name", "status", "body", "ctype", "kind", "err_status", "code"), ERROR_FORMS, ids=ERROR_IDS
)
async def test_stream_error_forms_answered_with_json(
    name: str, status: int, body: Any, ctype: str, kind: FailureKind, err_status: int | None, code: str | None
) -> None:
    """Errors before the stream starts come back as ordinary responses, not NDJSON."""
    async with make_client(error_handler(status, body, ctype)) as client:
        error, events = await stream_failure(client)
    assert events == []
    assert (error.kind, error.status, error.code) == (kind, err_status, code)


@pytest.mark.parametrize(
    "exception",
    [
        httpx2.ConnectError("[Errno 111] Connection refused"),
        httpx2.ReadError("connection reset"),
        httpx2.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
async def test_connection_failures_are_transport(exception: Exception) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise exception

    async with make_client(handler) as client:
        with pytest.raises(PuterError) as caught:
            await client.chat(chat_request(), token=TOKEN)
        assert caught.value.kind is K.TRANSPORT
        assert type(exception).__name__ in caught.value.message
        error, _ = await stream_failure(client)
        assert error.kind is K.TRANSPORT


async def test_connect_timeout_names_itself() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectTimeout("timed out")

    async with make_client(handler, Timeouts(connect=3, first_byte=1, idle=1, total=5)) as client:
        with pytest.raises(PuterError) as caught:
            await client.chat(chat_request(), token=TOKEN)
    assert caught.value.kind is K.TRANSPORT
    assert "connect timeout" in caught.value.message
    assert "3 s" in caught.value.message


async def test_chat_total_timeout() -> None:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    timeouts = Timeouts(connect=1, first_byte=0.01, idle=0.01, total=0.05)
    async with make_client(handler, timeouts) as client:
        with pytest.raises(PuterError) as caught:
            await client.chat(chat_request(), token=TOKEN)
    assert caught.value.kind is K.TRANSPORT
    # A whole answer's headers come only when it is finished: only the total limit applies.
    assert "total timeout" in caught.value.message
    assert "0.05 s" in caught.value.message


async def test_chat_body_that_stalls() -> None:
    stream = ScriptedStream([b'{"success": true, ', STALL])
    async with make_client(streaming(stream), TINY) as client:
        with pytest.raises(PuterError) as caught:
            await client.chat(chat_request(), token=TOKEN)
    assert caught.value.kind is K.TRANSPORT
    assert "idle timeout" in caught.value.message
    assert stream.closed


# ------------------------------------------------------------------------------- the token


async def test_the_token_never_reaches_a_message_or_a_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def echo(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(401, json=v2("token_auth_failed", f"Bad token {TOKEN}"))

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError(f"refused while sending {TOKEN}")

    for handler in (echo, refuse):
        async with make_client(handler) as client:
            with pytest.raises(PuterError) as caught:
                await client.chat(chat_request(), token=TOKEN)
            assert TOKEN not in caught.value.message
            assert TOKEN not in str(caught.value)
            assert TOKEN not in repr(caught.value)
            error, _ = await stream_failure(client)
            assert TOKEN not in error.message
            with pytest.raises(PuterError) as caught:
                await client.whoami(TOKEN)
            assert TOKEN not in caught.value.message
            with pytest.raises(PuterError) as caught:
                await client.usage(TOKEN)
            assert TOKEN not in caught.value.message
    assert caplog.records  # the client does log its calls...
    assert TOKEN not in caplog.text  # ...but never the token


# ------------------------------------------------------------------------------- streaming


FULL_STREAM = [
    {"type": "reasoning", "reasoning": "Thinking."},
    {"type": "text", "text": "Hel"},
    {"type": "extra_content", "extra_content": {"x": 1}},
    {"type": "text", "text": "lo"},
    {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}, "text": ""},
    {"type": "compaction", "summary": "..."},
    {"type": "image", "url": "data:"},
    USAGE_LINE,
]
FULL_EVENTS: list[StreamEvent] = [
    ReasoningDelta("Thinking."),
    TextDelta("Hel"),
    TextDelta("lo"),
    ToolCallEvent(ToolCall(id="t1", name="f", arguments={"a": 1})),
    UsageEvent(Usage(input_tokens=3, output_tokens=4), 0.005, None),
]


async def test_stream_every_line_type() -> None:
    seen: list[httpx2.Request] = []
    stream = ScriptedStream([lines(*FULL_STREAM)])

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, headers=NDJSON, stream=stream)

    request = chat_request()
    async with make_client(handler) as client:
        events = await collect(client, request)
    assert events == FULL_EVENTS
    assert json.loads(seen[0].content) == request.to_driver_call(stream=True)
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert "application/x-ndjson" in seen[0].headers["accept"]
    assert stream.closed


async def test_stream_lines_split_anywhere() -> None:
    body = lines({"type": "text", "text": "é✓ünïcode"}, *FULL_STREAM)
    stream = ScriptedStream([body[i : i + 1] for i in range(len(body))])  # one byte at a time
    async with make_client(streaming(stream)) as client:
        events = await collect(client)
    assert events == [TextDelta("é✓ünïcode"), *FULL_EVENTS]


async def test_an_emoji_sliced_between_two_lines_is_joined() -> None:
    # A JavaScript string sliced in the middle of an emoji: each line carries half of it
    # ("\ud83d" then "\ude00"), which Python reads as two lone surrogates.
    stream = ScriptedStream(
        [
            lines(
                {"type": "reasoning", "reasoning": "hm \ud83e"},
                {"type": "text", "text": "a \ud83d"},
                {"type": "reasoning", "reasoning": "\udd14"},
                {"type": "text", "text": "\ude00 b"},
                USAGE_LINE,
            )
        ]
    )
    async with make_client(streaming(stream)) as client:
        events = await collect(client)
    assert events == [
        ReasoningDelta("hm "),
        TextDelta("a "),
        ReasoningDelta("\U0001f914"),
        TextDelta("\U0001f600 b"),
        UsageEvent(Usage(input_tokens=3, output_tokens=4), 0.005, None),
    ]


async def test_a_lone_half_of_an_emoji_becomes_the_replacement_character() -> None:
    stream = ScriptedStream(
        [lines({"type": "text", "text": "\ude00x \ud83d"}, {"type": "text", "text": "y \ud83d"}, USAGE_LINE)]
    )
    async with make_client(streaming(stream)) as client:
        events = await collect(client)
    assert events[:-1] == [TextDelta("\ufffdx "), TextDelta("\ufffdy "), TextDelta("\ufffd")]
    assert isinstance(events[-1], UsageEvent)


async def test_a_stream_cut_after_half_an_emoji_keeps_it_in_the_partial_text() -> None:
    stream = ScriptedStream([lines({"type": "text", "text": "cut \ud83d"})])
    async with make_client(streaming(stream)) as client:
        error, events = await stream_failure(client)
    assert events == [TextDelta("cut "), TextDelta("\ufffd")]
    assert error.partial_text == "cut \ufffd"


async def test_stream_last_line_without_newline() -> None:
    stream = ScriptedStream([lines({"type": "text", "text": "a"}), json.dumps(USAGE_LINE).encode()])
    async with make_client(streaming(stream)) as client:
        events = await collect(client)
    assert events == [TextDelta("a"), UsageEvent(Usage(input_tokens=3, output_tokens=4), 0.005, None)]


async def test_stream_blank_lines_and_crlf_are_tolerated() -> None:
    body = b'\n{"type":"text","text":"a"}\r\n\n' + json.dumps(USAGE_LINE).encode() + b"\r\n"
    async with make_client(streaming(ScriptedStream([body]))) as client:
        events = await collect(client)
    assert [type(event) for event in events] == [TextDelta, UsageEvent]


async def test_mid_stream_error_line_carries_the_partial_text() -> None:
    error_line = {"type": "error", "message": '529 {"type":"error","error":{"type":"overloaded_error"}}'}
    stream = ScriptedStream(
        [lines({"type": "text", "text": "Par"}, {"type": "text", "text": "tial"}, error_line)]
    )
    async with make_client(streaming(stream)) as client:
        error, events = await stream_failure(client)
    assert events == [TextDelta("Par"), TextDelta("tial")]
    assert (error.kind, error.status, error.partial_text) == (K.MODEL_DOWN, 529, "Partial")
    assert stream.closed


async def test_single_error_line_in_a_200() -> None:
    """Claude models open the stream before calling the vendor: its 429 arrives as one line."""
    line = {"type": "error", "message": '429 {"type":"error","error":{"type":"rate_limit_error"}}'}
    async with make_client(streaming(ScriptedStream([lines(line)]))) as client:
        error, events = await stream_failure(client)
    assert events == []
    assert (error.kind, error.status, error.partial_text) == (K.MODEL_DOWN, 429, "")


async def test_stream_without_usage_line_is_truncated() -> None:
    stream = ScriptedStream([lines({"type": "text", "text": "cut "}, {"type": "text", "text": "short"})])
    async with make_client(streaming(stream)) as client:
        error, events = await stream_failure(client)
    assert len(events) == 2
    assert error.kind is K.TRANSPORT
    assert error.partial_text == "cut short"
    assert "usage line" in error.message


async def test_empty_stream_is_truncated() -> None:
    async with make_client(streaming(ScriptedStream([]))) as client:
        error, events = await stream_failure(client)
    assert events == []
    assert error.kind is K.TRANSPORT


async def test_stream_cut_mid_line() -> None:
    stream = ScriptedStream([lines({"type": "text", "text": "ok"}), b'{"type":"usage","usa'])
    async with make_client(streaming(stream)) as client:
        error, events = await stream_failure(client)
    assert events == [TextDelta("ok")]
    assert error.kind is K.TRANSPORT
    assert "cut" in error.message
    assert error.partial_text == "ok"


async def test_invalid_json_line() -> None:
    stream = ScriptedStream(
        [lines({"type": "text", "text": "ok"}), b"<html>oops</html>\n", lines(USAGE_LINE)]
    )
    async with make_client(streaming(stream)) as client:
        error, _ = await stream_failure(client)
    assert error.kind is K.TRANSPORT
    assert error.partial_text == "ok"
    assert "not JSON" in error.message


async def test_usage_limited_usage_line() -> None:
    usage = {"type": "usage", "usage": {"output_tokens": 1}, "metadata": {"usage_limited": True}}
    stream = ScriptedStream([lines({"type": "text", "text": "You have reached your AI usage limit"}, usage)])
    async with make_client(streaming(stream)) as client:
        error, _ = await stream_failure(client)
    assert error.kind is K.OUT_OF_CREDITS


async def test_broken_connection_mid_stream() -> None:
    class Breaking(ScriptedStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield lines({"type": "text", "text": "so far"})
            raise httpx2.ReadError("connection reset by peer")

    stream = Breaking([])
    async with make_client(streaming(stream)) as client:
        error, _ = await stream_failure(client)
    assert error.kind is K.TRANSPORT
    assert "ReadError" in error.message
    assert error.partial_text == "so far"
    assert stream.closed


async def test_json_success_answering_a_stream_becomes_events() -> None:
    async with make_client(json_answer(200, ANTHROPIC_BODY)) as client:
        events = await collect(client)
    assert events == [TextDelta("Hello!"), UsageEvent(Usage(input_tokens=2, output_tokens=3), 0.01, "stop")]


# ------------------------------------------------------------------------------- stream timeouts


async def test_first_byte_timeout() -> None:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with make_client(handler, TINY) as client:
        error, _ = await stream_failure(client)
    assert error.kind is K.TRANSPORT
    assert "first-byte timeout" in error.message
    assert "0.05 s" in error.message


async def test_idle_timeout_after_some_text() -> None:
    stream = ScriptedStream([lines({"type": "text", "text": "half"}), STALL])
    async with make_client(streaming(stream), TINY) as client:
        error, events = await stream_failure(client)
    assert events == [TextDelta("half")]
    assert error.kind is K.TRANSPORT
    assert "idle timeout" in error.message
    assert error.partial_text == "half"
    assert stream.closed


async def test_bytes_that_never_finish_a_line_count_as_silence() -> None:
    stream = ScriptedStream([step for _ in range(200) for step in (b" ", 0.01)])
    async with make_client(
        streaming(stream), Timeouts(connect=1, first_byte=1, idle=0.05, total=30)
    ) as client:
        error, _ = await stream_failure(client)
    assert error.kind is K.TRANSPORT
    assert "idle timeout" in error.message


async def test_total_timeout_of_a_stream_that_keeps_talking() -> None:
    text = lines({"type": "text", "text": "."})
    stream = ScriptedStream([step for _ in range(500) for step in (text, 0.01)])
    async with make_client(streaming(stream), Timeouts(connect=1, first_byte=1, idle=1, total=0.1)) as client:
        error, events = await stream_failure(client)
    assert events  # text did arrive...
    assert error.kind is K.TRANSPORT
    assert "total timeout" in error.message  # ...but the call as a whole ran too long
    assert error.partial_text == "." * len(events)


async def test_a_slow_consumer_is_not_an_idle_stream() -> None:
    """Time spent by the consumer between events is not Puter's silence."""
    # Separate chunks, so that the client waits for bytes after each pause of the consumer.
    stream = ScriptedStream(
        [lines({"type": "text", "text": "a"}), lines({"type": "text", "text": "b"}), lines(USAGE_LINE)]
    )
    events: list[StreamEvent] = []
    client = make_client(streaming(stream), Timeouts(connect=1, first_byte=1, idle=0.1, total=30))
    async with client, aclosing(client.chat_stream(chat_request(), token=TOKEN)) as stream_events:
        async for event in stream_events:
            events.append(event)
            await anyio.sleep(0.25)  # longer than the idle limit
    assert [type(event) for event in events] == [TextDelta, TextDelta, UsageEvent]


# ------------------------------------------------------------------------------- closing


async def test_consumer_stopping_early_closes_the_response() -> None:
    stream = ScriptedStream([lines({"type": "text", "text": "first"}), STALL])
    client = make_client(streaming(stream), Timeouts(connect=1, first_byte=1, idle=30, total=60))
    async with client, aclosing(client.chat_stream(chat_request(), token=TOKEN)) as events:
        async for event in events:
            assert event == TextDelta("first")
            break
    assert stream.closed


async def test_cancelling_the_consumer_closes_the_response() -> None:
    stream = ScriptedStream([lines({"type": "text", "text": "first"}), STALL])
    received: list[StreamEvent] = []
    first = anyio.Event()

    async def consume(client: PuterClient) -> None:
        async for event in client.chat_stream(chat_request(), token=TOKEN):
            received.append(event)
            first.set()

    client = make_client(streaming(stream), Timeouts(connect=1, first_byte=1, idle=30, total=60))
    async with client, anyio.create_task_group() as group:
        group.start_soon(consume, client)
        await first.wait()
        assert not stream.closed
        group.cancel_scope.cancel()
    assert received == [TextDelta("first")]
    assert stream.closed


async def test_cancelling_before_the_headers_leaves_nothing_open() -> None:
    started = anyio.Event()

    async def handler(request: httpx2.Request) -> httpx2.Response:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with make_client(handler, Timeouts(connect=1, first_byte=30, idle=30, total=60)) as client:
        with anyio.CancelScope() as scope:

            async def cancel_when_started() -> None:
                await started.wait()
                scope.cancel()

            async with anyio.create_task_group() as group:
                group.start_soon(cancel_when_started)
                await collect(client)
    assert scope.cancelled_caught


# ------------------------------------------------------------------------------- catalogue and account


async def test_models_without_auth() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(
            200,
            json={
                "models": [
                    {
                        "id": "gpt-5-nano",
                        "provider": "openai-completion",
                        "aliases": ["openai/gpt-5-nano"],
                        "input_cost_key": "prompt_tokens",
                        "output_cost_key": "completion_tokens",
                        "costs": {"tokens": 1000000, "prompt_tokens": 5, "completion_tokens": 40},
                    },
                    {"name": "entry without id"},
                ]
            },
        )

    async with make_client(handler) as client:
        catalogue = await client.models()
    assert str(seen[0].url) == API + "/puterai/chat/models/details"
    assert seen[0].method == "GET"
    assert "authorization" not in seen[0].headers
    assert [model.id for model in catalogue] == ["gpt-5-nano"]
    found = catalogue.find("OPENAI/GPT-5-NANO")
    assert found is not None
    assert found.output_usd_per_mtok == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [(200, {"nothing": []}, K.TRANSPORT), (503, None, K.TRANSPORT), (500, {"message": "boom"}, K.MODEL_DOWN)],
)
async def test_models_failures(status: int, body: Any, kind: FailureKind) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if body is None:
            return httpx2.Response(status, text="<html>", headers={"content-type": "text/html"})
        return httpx2.Response(status, json=body)

    async with make_client(handler) as client:
        with pytest.raises(PuterError) as caught:
            await client.models()
    assert caught.value.kind is kind


@pytest.mark.parametrize(
    ("user", "tier"),
    [
        ({"username": "ann", "uuid": "u1", "email": "a@x", "is_temp": False}, "free"),
        ({"username": "tmp", "uuid": "u2", "email": None, "is_temp": True}, "temp"),
        (
            {
                "username": "pay",
                "uuid": "u3",
                "is_temp": False,
                "subscription": {"active": True, "plan": "pro"},
            },
            "paid",
        ),
        ({"username": "pay2", "is_temp": False, "subscription": {"status": "active"}}, "paid"),
        ({"username": "lapsed", "is_temp": False, "subscription": {"status": "canceled"}}, "free"),
        ({"username": "off", "is_temp": False, "subscription": {"active": False}}, "free"),
        ({"username": "odd", "is_temp": False, "subscription": None}, "free"),
        ({"username": "odd2", "is_temp": False, "subscription": {}}, "free"),
    ],
)
async def test_whoami_tiers(user: dict[str, Any], tier: str) -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={**user, "email_confirmed": True})

    async with make_client(handler) as client:
        who = await client.whoami(TOKEN)
    assert str(seen[0].url) == API + "/whoami"
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert who.username == user["username"]
    assert who.uuid == user.get("uuid")
    assert who.is_temp is user["is_temp"]
    assert who.tier == tier


async def test_whoami_failures() -> None:
    async with make_client(json_answer(200, {"uuid": "no-name"})) as client:
        with pytest.raises(PuterError) as caught:
            await client.whoami(TOKEN)
    assert caught.value.kind is K.TRANSPORT
    async with make_client(
        json_answer(401, v2("reauth_required", "Sign in again.", reason="legacy"))
    ) as client:
        with pytest.raises(PuterError) as caught:
            await client.whoami(TOKEN)
    assert (caught.value.kind, caught.value.status) == (K.AUTH, 401)


async def test_usage_in_dollars() -> None:
    body = {
        "usage": {
            "total": 12_500_000,
            "claude:claude-x:input_tokens": {"units": 10, "cost": 1, "count": 1},
            "allowanceUsed": 12_500_000,
        },
        "appTotals": {},
        "allowanceInfo": {"remaining": 37_500_000, "monthUsageAllowance": 50_000_000, "addons": {}},
    }
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=body)

    async with make_client(handler) as client:
        usage = await client.usage(TOKEN)
    assert str(seen[0].url) == API + "/metering/usage"
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert usage == AccountUsage(remaining_usd=0.375, allowance_usd=0.5, used_usd=0.125)


async def test_usage_before_anything_was_charged() -> None:
    body = {
        "usage": {"total": 0},
        "allowanceInfo": {"remaining": 25_000_000, "monthUsageAllowance": 25_000_000},
    }
    async with make_client(json_answer(200, body)) as client:
        usage = await client.usage(TOKEN)
    assert usage == AccountUsage(remaining_usd=0.25, allowance_usd=0.25, used_usd=0.0)


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        (
            {"monthUsageAllowance": 50_000_000},
            AccountUsage(remaining_usd=0.4, allowance_usd=0.5, used_usd=0.1),
        ),
        ({"remaining": 40_000_000}, AccountUsage(remaining_usd=0.4, allowance_usd=0.5, used_usd=0.1)),
    ],
)
async def test_usage_with_half_the_allowance_info(info: dict[str, Any], expected: AccountUsage) -> None:
    body = {"usage": {"allowanceUsed": 10_000_000}, "allowanceInfo": info}
    async with make_client(json_answer(200, body)) as client:
        assert await client.usage(TOKEN) == expected


async def test_usage_without_allowance_info() -> None:
    async with make_client(json_answer(200, {"usage": {}})) as client:
        with pytest.raises(PuterError) as caught:
            await client.usage(TOKEN)
    assert caught.value.kind is K.TRANSPORT


async def test_signup_temp_on_the_gui_host() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(
            200,
            json={
                "proceed": True,
                "next_step": "complete",
                "token": "new-temp-token",
                "user": {"username": "sun_moon_123", "uuid": "u9", "is_temp": True, "email": None},
            },
        )

    async with make_client(handler) as client:
        assert client.gui_origin == "http://puter.localhost:4100"
        token, who = await client.signup_temp()
    assert str(seen[0].url) == "http://puter.localhost:4100/signup"
    assert seen[0].method == "POST"
    assert json.loads(seen[0].content) == {"is_temp": True}
    assert "authorization" not in seen[0].headers
    assert token == "new-temp-token"
    assert who == WhoAmI(username="sun_moon_123", uuid="u9", email=None, is_temp=True, tier="temp")


async def test_signup_temp_refused() -> None:
    async with make_client(
        json_answer(400, v2("captcha_required", "Captcha verification required"))
    ) as client:
        with pytest.raises(PuterError) as caught:
            await client.signup_temp()
    assert caught.value.kind is K.BAD_REQUEST
    assert "Captcha" in caught.value.message
    async with make_client(json_answer(200, {"proceed": False, "message": "Try later."})) as client:
        with pytest.raises(PuterError) as caught:
            await client.signup_temp()
    assert caught.value.kind is K.BAD_REQUEST
    assert "Try later." in caught.value.message


@pytest.mark.parametrize(
    ("api", "gui", "expected"),
    [
        ("https://api.puter.com", None, "https://puter.com"),
        ("http://api.puter.localhost:4100/", None, "http://puter.localhost:4100"),
        ("http://127.0.0.1:8765", None, "http://127.0.0.1:8765"),
        ("https://api.puter.com", "https://puter.example/", "https://puter.example"),
    ],
)
def test_gui_origin(api: str, gui: str | None, expected: str) -> None:
    client = PuterClient(
        api, http=httpx2.AsyncClient(transport=httpx2.MockTransport(json_answer(200, {}))), gui_origin=gui
    )
    assert client.gui_origin == expected
    assert client.api_origin == api.rstrip("/")


# ------------------------------------------------------------------------------- lifecycle


async def test_aclose_leaves_a_borrowed_http_client_open() -> None:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(json_answer(200, ANTHROPIC_BODY)))
    client = PuterClient(API, http=http)
    await client.aclose()
    assert not http.is_closed
    await http.aclose()


async def test_aclose_closes_its_own_http_client() -> None:
    client = PuterClient(API)
    http = client._http  # the one it made itself
    assert not http.is_closed
    await client.aclose()
    assert http.is_closed
