"""The baseline of `gateway.py`: a bare Starlette app that forwards a chat request upstream.

``POST /v1/chat/completions`` takes an OpenAI Chat Completions body, sends the same
``/drivers/call`` body `puter-mcp gateway` sends (the messages and the model as given, streamed)
to the Puter API at ``--upstream`` over one shared `httpx2.AsyncClient`, and answers:

- streamed (``"stream": true``): each NDJSON text line of the upstream answer as one OpenAI
  ``chat.completion.chunk`` SSE event, then ``data: [DONE]``;
- whole: one ``chat.completion`` JSON object with the text.

It has no routing, no state, no pacing, no checks beyond what a proxy needs to build the
upstream request: what any proxy pays for HTTP in, HTTP out and the API's framing. The
difference between it and `puter-mcp gateway` is the gateway's own work per request.

The tokens come from ``PUTER_AUTH_TOKENS`` (comma-separated), used in turn, so that a load of
50 concurrent requests stays under the emulator's per-account limits as the product's does.
Served by uvicorn with its h11 protocol on asyncio, as the product is. Prints
``BARE_GATEWAY_URL=http://127.0.0.1:PORT`` on stdout once it listens.

Run by `gateway.py`; not meant to be used on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def forwarding_app(upstream: str, tokens: list[str]) -> Starlette:
    # One client for the life of the process, as a well-written proxy keeps it: the
    # connections to the upstream stay open between requests.
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(60.0), limits=httpx2.Limits(max_connections=200))
    url = upstream.rstrip("/") + "/drivers/call"
    headers = [
        {"Authorization": f"Bearer {token}", "Accept": "application/x-ndjson, application/json"}
        for token in tokens
    ]
    turns = itertools.cycle(headers)

    async def chat_completions(request: Request) -> Response:
        body = json.loads(await request.body())
        upstream_body = {
            "interface": "puter-chat-completion",
            "driver": "ai-chat",
            "method": "complete",
            "args": {"messages": body["messages"], "model": body["model"], "stream": True},
        }
        model = body["model"]
        created = int(time.time())
        sent = http.build_request("POST", url, json=upstream_body, headers=next(turns))
        answer = await http.send(sent, stream=True)
        if answer.status_code != 200:
            text = (await answer.aread()).decode(errors="replace")
            await answer.aclose()
            return JSONResponse({"error": {"message": text}}, status_code=answer.status_code)

        async def texts() -> AsyncIterator[str]:
            try:
                async for line in answer.aiter_lines():
                    if line:
                        event = json.loads(line)
                        if event.get("type") == "text":
                            yield event["text"]
            finally:
                await answer.aclose()

        if not body.get("stream"):
            text = "".join([piece async for piece in texts()])
            return JSONResponse(
                {
                    "id": "chatcmpl-bare",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                }
            )

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return (
                b"data: "
                + _dumps(
                    {
                        "id": "chatcmpl-bare",
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                )
                + b"\n\n"
            )

        async def sse() -> AsyncIterator[bytes]:
            yield chunk({"role": "assistant", "content": ""})
            async for piece in texts():
                yield chunk({"content": piece})
            yield chunk({}, "stop")
            yield b"data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])


async def serve(upstream: str, tokens: list[str], port: int) -> None:
    # IPPROTO_TCP stated, not left 0: asyncio sets TCP_NODELAY only on sockets whose `proto`
    # says TCP, and without it Nagle's algorithm holds each response's second write until the
    # client's delayed ACK (40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        forwarding_app(upstream, tokens), log_level="warning", http="h11", loop="asyncio", lifespan="off"
    )
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.02)
        print(f"BARE_GATEWAY_URL=http://127.0.0.1:{sock.getsockname()[1]}", flush=True)

    announcing = asyncio.create_task(announce())
    await server.serve(sockets=[sock])
    await announcing


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True, help="the Puter API origin (the emulator's URL)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    tokens = [token for token in os.environ["PUTER_AUTH_TOKENS"].split(",") if token]
    asyncio.run(serve(args.upstream, tokens, args.port))


if __name__ == "__main__":
    main(sys.argv[1:])
