"""The stdio transport as puter-mcp serves it: fed by the event loop, answering every line.

Two things the SDK's stdio transport (`mcp.server.stdio.stdio_server`) does not do:

- **No worker thread per line.** The SDK reads and writes stdio through anyio's file wrapper,
  so every line read, every write and every flush is a round trip to a worker thread: three
  per tool call, each a thread wake-up and two hand-overs of the GIL, and on a machine that
  idles between calls each costs a cold start (docs/architecture.md, "Serving stdio"). When
  stdin and stdout are pipes or sockets (as every MCP client launches a server) `stdio_streams`
  lets the event loop watch them instead, and hands the SDK's transport a line reader and a
  writer that never leave the loop. Anything else (a regular file, a terminal, Windows, stderr
  on the same pipe as stdout) is served by the SDK's transport unchanged.
- **An answer for every line.** The SDK's transport turns a line it cannot parse into an
  `Exception` on the read stream, and the server then only logs it: a client that sent such a
  line waits for ever for its answer. JSON-RPC 2.0 says what to answer: a parse error (-32700,
  id null) for text that is not JSON, an invalid request (-32600, with the request's id when
  one can be read) for JSON that is not a message. `AnsweringReadStream` answers them.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, cast

import anyio
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

__all__ = ["AnsweringReadStream", "error_for_unreadable_line", "stdio_streams"]

_READ_SIZE = 65536
"""Bytes asked of stdin per read: a pipe holds 64 KiB, so one read empties a full one."""


@dataclass
class _Wire:
    """The client's pipes, on descriptors of our own while fds 0 and 1 point elsewhere."""

    stdin: int
    stdout: int
    blocking: tuple[bool, bool]
    """Each descriptor's blocking mode before we took it, put back on release (the open
    file description may be shared with the process that started us)."""

    def release(self) -> None:
        """Put fds 0 and 1 back on the wire, as they were."""
        for fd, was_blocking in zip((self.stdin, self.stdout), self.blocking, strict=True):
            with suppress(OSError):
                os.set_blocking(fd, was_blocking)
        with suppress(OSError):
            os.dup2(self.stdin, 0)
        with suppress(OSError):
            os.dup2(self.stdout, 1)
        for fd in (self.stdin, self.stdout):
            with suppress(OSError):
                os.close(fd)


def _pipe_or_socket(fd: int, stream: Any) -> bool:
    """Whether `stream` writes to or reads from `fd`, and `fd` is a pipe or a socket (which an
    event loop can watch; a regular file cannot be, and a terminal is nobody's hot path)."""
    try:
        if stream is None or stream.fileno() != fd:
            return False
        mode = os.fstat(fd).st_mode
    except (AttributeError, OSError, ValueError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _same_file(fd: int, other: int) -> bool:
    try:
        first, second = os.fstat(fd), os.fstat(other)
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _point_at_null(fd: int, flags: int) -> None:
    null = os.open(os.devnull, flags)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _claim_wire() -> _Wire | None:
    """Move the client's pipes off fds 0 and 1, or None to leave stdio to the SDK.

    While the server runs, fd 0 reads the null device and fd 1 writes to stderr, as under the
    SDK's transport: a stray ``print`` or a child process cannot reach the wire.
    """
    if sys.platform == "win32" or not (_pipe_or_socket(0, sys.stdin) and _pipe_or_socket(1, sys.stdout)):
        return None
    if _same_file(1, 2):
        # stderr writes to the wire too (``2>&1``): the non-blocking mode would reach stderr,
        # and a full pipe would fail a log line instead of waiting. Leave it as it was.
        return None
    import fcntl  # POSIX only, like everything past the check above

    taken: list[int] = []
    try:
        for fd in (0, 1):
            taken.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3))
        blocking = (os.get_blocking(taken[0]), os.get_blocking(taken[1]))
    except OSError:
        for fd in taken:
            os.close(fd)
        return None
    wire = _Wire(taken[0], taken[1], blocking)
    try:
        _point_at_null(0, os.O_RDONLY)
        try:
            os.dup2(2, 1)
        except OSError:  # no stderr: stray output goes nowhere rather than on the wire
            _point_at_null(1, os.O_WRONLY)
        for fd in taken:
            os.set_blocking(fd, False)
    except OSError:
        wire.release()  # undoes whatever part of the diversion happened
        return None
    return wire


class _LoopLines:
    """Stdin's lines, read when the event loop sees the pipe readable (no worker thread).

    Decoded as the SDK decodes them (UTF-8, undecodable bytes replaced), so every line reaches
    the same parser; a line ends with ``\n`` (a ``\r`` before it is whitespace to JSON).
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self._searched = 0  # bytes of the buffer known to hold no newline

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> str:
        while True:
            end = self._buffer.find(b"\n", self._searched)
            if end >= 0:
                return self._take(end + 1)
            self._searched = len(self._buffer)
            await anyio.wait_readable(self._fd)
            try:
                chunk = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                continue
            if not chunk:
                if not self._buffer:
                    raise StopAsyncIteration
                return self._take(len(self._buffer))  # the last line, without its newline
            self._buffer += chunk

    def _take(self, size: int) -> str:
        line = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._searched = 0
        return line.decode("utf-8", "replace")


class _LoopWriter:
    """Writes to stdout as far as the pipe takes, waiting in the event loop when it is full."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        while data:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                await anyio.wait_writable(self._fd)
                continue
            data = data[written:]

    async def flush(self) -> None:
        """Nothing is buffered here: `write` returns once the pipe holds everything."""


@asynccontextmanager
async def stdio_streams() -> AsyncIterator[
    tuple[ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]]
]:
    """The SDK's stdio transport, reading and writing from the event loop when it can.

    The SDK still turns lines into messages and messages into lines; only the reading and the
    writing change. The SDK documents its `stdin` and `stdout` arguments as anyio files, and
    uses them only as an async iterator of lines and through `write` and `flush`:
    tests/test_stdio_loop.py runs the console script over both paths.
    """
    wire = _claim_wire()
    if wire is None:
        async with stdio_server() as streams:
            yield streams
        return
    try:
        reader = cast("anyio.AsyncFile[str]", _LoopLines(wire.stdin))
        writer = cast("anyio.AsyncFile[str]", _LoopWriter(wire.stdout))
        async with stdio_server(reader, writer) as streams:
            yield streams
    finally:
        wire.release()


def _readable_id(error: ValidationError) -> str | int | None:
    """The id of a message that failed validation, when the JSON held a usable one."""
    for item in error.errors():
        given = item.get("input")
        if isinstance(given, dict):
            found = given.get("id")
            if isinstance(found, str | int) and not isinstance(found, bool):
                return found
    return None


def error_for_unreadable_line(problem: Exception) -> JSONRPCError:
    """The JSON-RPC error answering a line the transport could not turn into a message."""
    if isinstance(problem, ValidationError):
        if any(item["type"] == "json_invalid" for item in problem.errors()):
            detail = problem.errors()[0]["msg"].removeprefix("Invalid JSON: ")
            message = (
                f"Parse error: the line is not valid JSON ({detail}); send one JSON-RPC message per line"
            )
            return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=PARSE_ERROR, message=message))
        return JSONRPCError(
            jsonrpc="2.0",
            id=_readable_id(problem),
            error=ErrorData(
                code=INVALID_REQUEST,
                message='Invalid Request: not a JSON-RPC 2.0 message (an object with "jsonrpc": "2.0" and '
                'a "method", or a response with "result" or "error")',
            ),
        )
    return JSONRPCError(
        jsonrpc="2.0",
        id=None,
        error=ErrorData(code=PARSE_ERROR, message="Parse error: the line could not be read"),
    )


class AnsweringReadStream:
    """A read stream that answers unreadable lines on `answers` and passes on only messages."""

    def __init__(
        self, inner: ReadStream[SessionMessage | Exception], answers: WriteStream[SessionMessage]
    ) -> None:
        self._inner = inner
        self._answers = answers

    @property
    def last_context(self) -> Any:
        # The dispatcher reads the sender's context from here (see the SDK's ReadStream).
        return getattr(self._inner, "last_context", None)

    async def _answered(self, item: SessionMessage | Exception) -> bool:
        if isinstance(item, Exception):
            await self._answers.send(SessionMessage(error_for_unreadable_line(item)))
            return True
        return False

    async def receive(self) -> SessionMessage | Exception:
        while True:
            item = await self._inner.receive()
            if not await self._answered(item):
                return item

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None
