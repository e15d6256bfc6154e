"""PuterClient over a real loopback socket: the stream limits that httpx's own transport enforces.

With a client of its own, PuterClient leaves a streamed answer's quiet waits to httpx's read
limit instead of arming a timer for each chunk (see `_LineReader`). `httpx2.MockTransport` never
enforces that limit, so these cases need real sockets: the emulator for Puter's own stalls, and a
scripted server for what the emulator never sends (bytes that never finish a line). Each test is
bounded by `fail_after`: a limit that is not enforced shows as that bound running out.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager

import anyio
import anyio.abc
import pytest

from puter_mcp.emulator import Fault
from puter_mcp.puter.client import PuterClient, Timeouts
from puter_mcp.puter.errors import FailureKind, PuterError
from puter_mcp.puter.wire import ChatMessage, ChatRequest, StreamEvent, TextDelta
from tests.helpers import MODEL, Emulator

pytestmark = pytest.mark.anyio

BOUND = 10.0  # seconds: far above every limit below, far below any stall the servers script


async def collect(client: PuterClient, token: str) -> tuple[PuterError, list[StreamEvent]]:
    """The events a stream gave before it failed, and its error."""
    request = ChatRequest(messages=[ChatMessage(role="user", content="hi")], model=MODEL)
    events: list[StreamEvent] = []

    async def drain() -> None:
        async with aclosing(client.chat_stream(request, token=token)) as stream:
            async for event in stream:
                events.append(event)

    with anyio.fail_after(BOUND), pytest.raises(PuterError) as caught:
        await drain()
    return caught.value, events


async def test_a_stream_gone_silent_ends_with_the_idle_timeout(emulator: Emulator) -> None:
    emulator.state.add_fault(Fault.STALL_MID_STREAM, model=MODEL, times=1, seconds=60.0, after_lines=1)
    # No first-byte limit above the idle one: the stream's read limit is the idle limit.
    timeouts = Timeouts(connect=5, first_byte=0.3, idle=0.3, total=30)
    async with PuterClient(emulator.url, timeouts=timeouts) as client:
        error, events = await collect(client, emulator.paid.token)
    assert error.kind is FailureKind.TRANSPORT
    assert "stayed silent for 0.3 s (idle timeout)" in error.message
    assert events and all(isinstance(event, TextDelta) for event in events)
    assert error.partial_text == "".join(event.text for event in events if isinstance(event, TextDelta))


async def test_headers_that_never_come_end_with_the_first_byte_timeout(emulator: Emulator) -> None:
    # Equal limits: the stream's read limit (the larger of the two) may fire with the
    # first-byte one, and the error must still name the first-byte limit.
    emulator.state.add_fault(Fault.STALL_BEFORE_HEADERS, model=MODEL, times=1, seconds=60.0)
    timeouts = Timeouts(connect=5, first_byte=0.3, idle=0.3, total=30)
    async with PuterClient(emulator.url, timeouts=timeouts) as client:
        error, events = await collect(client, emulator.paid.token)
    assert events == []
    assert "within 0.3 s (first-byte timeout)" in error.message


@asynccontextmanager
async def scripted_server(chunks: Sequence[bytes], pause: float) -> AsyncIterator[str]:
    """A loopback HTTP server that answers every request with an NDJSON stream of `chunks`,
    one chunk every `pause` seconds, then hangs on (never ending the answer)."""

    async def answer(connection: anyio.abc.SocketStream) -> None:
        async with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                received += await connection.receive()
            head, _, body = received.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            while len(body) < length:
                body += await connection.receive()
            await connection.send(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n"
            )
            for chunk in chunks:
                await connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await anyio.sleep(pause)
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 (anyio's, not Django's)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, answer)
        yield f"http://127.0.0.1:{port}"
        group.cancel_scope.cancel()


async def test_bytes_that_never_finish_a_line_end_with_the_idle_timeout() -> None:
    # Each read gets a byte well within the read limit, so httpx never times one out: the
    # reader must see that no line completes.
    async with (
        scripted_server([b" "] * 400, pause=0.05) as url,
        PuterClient(url, timeouts=Timeouts(connect=5, first_byte=0.3, idle=0.3, total=30)) as client,
    ):
        error, events = await collect(client, "token")
    assert events == []
    assert "(idle timeout)" in error.message


async def test_a_stream_that_keeps_talking_ends_with_the_total_timeout() -> None:
    line = b'{"type": "text", "text": "."}\n'
    async with (
        scripted_server([line] * 400, pause=0.05) as url,
        PuterClient(url, timeouts=Timeouts(connect=5, first_byte=5, idle=5, total=0.4)) as client,
    ):
        error, events = await collect(client, "token")
    assert events  # text did arrive...
    assert "(total timeout)" in error.message  # ...but the call as a whole ran too long
    assert error.partial_text == "." * len(events)
