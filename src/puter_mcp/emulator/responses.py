"""How the emulator puts bytes on the wire: Puter's JSON and error envelopes, NDJSON streams,
and the deliberately broken answers (stalls, dropped connections).

Everything here is an ASGI app (Starlette responses included), so the `/drivers/call`
endpoint can run any of them the same way, under its disconnect watch.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import anyio
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "JSON_CONTENT_TYPE",
    "NDJSON_CONTENT_TYPE",
    "RAW_SEND_KEY",
    "Delayed",
    "DropConnection",
    "json_response",
    "ndjson",
    "ndjson_response",
    "v2_error",
]

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
NDJSON_CONTENT_TYPE = "application/x-ndjson"

RAW_SEND_KEY = "puter_emulator.raw_send"
"""Scope key under which the app keeps the server's own `send` (see `DropConnection`)."""


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON answer with Puter's content type (`application/json; charset=utf-8`)."""
    return Response(
        _dumps(body), status_code=status, headers=dict(headers or {}), media_type=JSON_CONTENT_TYPE
    )


def v2_error(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **fields: Any,
) -> Response:
    """Puter's current error envelope: the real status and `{"error", "message", "code", ...}`.

    402 always carries `X-Needs-Upgrade: true`, as Puter sends it.
    """
    all_headers = dict(headers or {})
    if status == 402:
        all_headers.setdefault("X-Needs-Upgrade", "true")
    return json_response({"error": message, "message": message, "code": code, **fields}, status, all_headers)


def ndjson(obj: Any) -> bytes:
    """One NDJSON line: compact JSON and a newline, no SSE framing."""
    return _dumps(obj) + b"\n"


def ndjson_response(
    chunks: Sequence[bytes],
    *,
    delay: Callable[[], float],
    stall_after: int | None = None,
    stall_seconds: float = 0.0,
) -> StreamingResponse:
    """A chunked `application/x-ndjson` answer sending `chunks` one by one.

    Args:
        delay: read before each chunk but the first: seconds to wait (the state's pace, read
            live so a test can change it).
        stall_after: after this many chunks, go silent for `stall_seconds`.
    """

    async def body() -> AsyncIterator[bytes]:
        for index, chunk in enumerate(chunks):
            if stall_after is not None and index == stall_after:
                await anyio.sleep(stall_seconds)
            if index:
                pause = delay()
                if pause > 0:
                    await anyio.sleep(pause)
            yield chunk

    return StreamingResponse(body(), media_type=NDJSON_CONTENT_TYPE)


class Delayed:
    """Say nothing at all (not even headers) for `seconds`, then answer with `inner`."""

    def __init__(self, seconds: float, inner: ASGIApp) -> None:
        self.seconds = seconds
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep(self.seconds)
        await self.inner(scope, receive, send)


class ConnectionDropped(Exception):
    """Raised when the server gives no transport to close: the response is then aborted."""


class DropConnection:
    """Close the client's connection without sending any HTTP answer.

    ASGI offers no way to do this, and an app that raises before answering gets a 500 from
    uvicorn. So the app keeps uvicorn's own `send` (a bound method of its request cycle,
    which holds the socket's transport) and closes that transport. The endpoint that runs
    this app watches for the disconnect that follows and stops waiting; by then uvicorn knows
    the client is gone and sends nothing. Under another server, the best available stand-in
    is a response aborted right after its headers.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_send = scope.get(RAW_SEND_KEY)
        transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
        if transport is None or not callable(getattr(transport, "close", None)):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise ConnectionDropped("connection dropped on purpose")
        transport.close()
        # Wait to be cancelled by the disconnect watch; the bound only guards a server that
        # never reports the disconnect.
        await anyio.sleep(5)
