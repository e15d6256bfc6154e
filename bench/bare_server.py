"""The baselines of `overhead.py`: the bare SDK server, as small as an MCP server gets.

Two modes, one tool each, so that what `overhead.py` compares `puter-mcp` against is exactly
"the SDK and nothing else":

- ``bare_server.py`` (cold-start baseline): an `MCPServer` with one trivial tool that echoes
  its argument. Whatever it takes from spawn to ``tools/list`` is the floor any SDK server pays
  (interpreter start, ``import mcp.server``, the handshake).
- ``bare_server.py --forward URL`` (per-call baseline, the one the issue cites): its one tool
  sends the same ``/drivers/call`` body `puter-mcp` sends, streamed, over one shared
  `httpx2.AsyncClient`, reads the NDJSON answer whole and returns the text. The token comes
  from ``PUTER_AUTH_TOKEN``. It has no routing, no state, no pacing: the difference between it
  and `puter-mcp` is the product's own work per call.

Run by `overhead.py` over stdio; not meant to be used on its own.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer


def echo_server() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("bare", log_level="WARNING")

    @server.tool(name="echo")
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    return server


def forwarding_server(api_origin: str, token: str) -> MCPServer[Any]:
    import httpx2

    # WARNING, as puter-mcp runs in the benchmark: httpx2 would otherwise log every request.
    server: MCPServer[Any] = MCPServer("bare-forward", log_level="WARNING")
    # One client for the life of the process, as a well-written server would keep it: the
    # connection to the upstream stays open between calls.
    http = httpx2.AsyncClient(timeout=httpx2.Timeout(60.0))
    url = api_origin.rstrip("/") + "/drivers/call"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/x-ndjson, application/json"}

    @server.tool(name="forward")
    async def forward(message: str, model: str) -> str:
        """Send one chat request upstream and return the answer's text."""
        body = {
            "interface": "puter-chat-completion",
            "driver": "ai-chat",
            "method": "complete",
            "args": {"messages": [{"role": "user", "content": message}], "model": model, "stream": True},
        }
        parts: list[str] = []
        async with http.stream("POST", url, json=body, headers=headers) as response:
            async for line in response.aiter_lines():
                if line:
                    event = json.loads(line)
                    if event.get("type") == "text":
                        parts.append(event["text"])
        return "".join(parts)

    return server


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "--forward":
        server = forwarding_server(argv[1], os.environ["PUTER_AUTH_TOKEN"])
    else:
        server = echo_server()
    server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
