"""Answering the stdio lines that are not JSON-RPC messages, instead of dropping them.

The SDK's stdio transport turns a line it cannot parse into an `Exception` on the read stream,
and the server then only logs it: a client that sent such a line waits for ever for its
answer. JSON-RPC 2.0 says what to answer: a parse error (-32700, id null) for text that is not
JSON, an invalid request (-32600, with the request's id when one can be read) for JSON that is
not a message.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import anyio
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
from pydantic import ValidationError

__all__ = ["AnsweringReadStream", "error_for_unreadable_line"]


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
