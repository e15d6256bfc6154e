"""The engine's use of a streamed answer: the response is closed however the consumer stops."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from puter_mcp.core import Backend, ChatCall
from puter_mcp.core.results import StreamProgress
from puter_mcp.emulator.catalogue import default_catalogue
from puter_mcp.puter.client import PuterClient
from puter_mcp.routing.state import MemoryStateStore
from puter_mcp.settings import load_settings, resolve_paths
from tests.helpers import API, NDJSON, STALL, ScriptedStream, lines


@pytest.mark.anyio
async def test_a_failing_progress_callback_closes_the_stream_at_once(tmp_path: Path) -> None:
    # The body never ends on its own: only closing it ends the request.
    stream = ScriptedStream([lines({"type": "text", "text": "first words"}), STALL])

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/puterai/chat/models/details":
            return httpx2.Response(200, json={"models": default_catalogue().details()})
        if request.url.path == "/whoami":
            return httpx2.Response(200, json={"username": "env", "is_temp": False})
        if b'"method":"models"' in request.content.replace(b" ", b""):
            return httpx2.Response(200, json={"success": True, "result": default_catalogue().details()})
        return httpx2.Response(200, headers=NDJSON, stream=stream)

    client = PuterClient(API, http=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    settings, paths = load_settings(paths=resolve_paths({"PUTER_MCP_HOME": str(tmp_path)}), env={})
    backend = Backend(settings, paths, client=client, store=MemoryStateStore(), env_token="env-token-1234")

    def on_progress(progress: StreamProgress) -> None:
        if progress.delta:
            raise BrokenPipeError("the terminal went away")  # what printing to a closed pipe raises

    async with backend:
        with pytest.raises(BrokenPipeError):
            await backend.chat(ChatCall.build(message="hi", model="gpt-5-nano"), on_progress)
        # Closed before the error reached us, not whenever the abandoned generator is collected.
        assert stream.closed


@pytest.mark.anyio
async def test_a_slow_whoami_does_not_hold_the_call_and_is_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("puter_mcp.core.accounts_view.TIER_WAIT", 0.05)
    whoami_asked = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal whoami_asked
        if request.url.path == "/puterai/chat/models/details":
            return httpx2.Response(200, json={"models": default_catalogue().details()})
        if request.url.path == "/whoami":
            whoami_asked += 1
            return httpx2.Response(
                200, headers={"content-type": "application/json"}, stream=ScriptedStream([STALL])
            )
        if b'"method":"models"' in request.content.replace(b" ", b""):
            return httpx2.Response(200, json={"success": True, "result": default_catalogue().details()})
        return httpx2.Response(
            200, headers=NDJSON, content=lines({"type": "text", "text": "hi"}, {"type": "usage", "usage": {}})
        )

    client = PuterClient(API, http=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    settings, paths = load_settings(paths=resolve_paths({"PUTER_MCP_HOME": str(tmp_path)}), env={})
    backend = Backend(settings, paths, client=client, store=MemoryStateStore(), env_token="env-token-1234")
    async with backend:
        first = await backend.chat(ChatCall.build(message="hi", model="gpt-5-nano"))
        second = await backend.chat(ChatCall.build(message="hi", model="gpt-5-nano"))
    # Both calls answered, at the cautious tier, and the tier that never came is asked for again.
    assert first.text == second.text == "hi"
    assert whoami_asked == 2
