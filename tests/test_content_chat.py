"""Tools, tool calls, images and reasoning through `Backend` against the emulator on loopback.

What reached Puter is read from the emulator's request log (each complete call's messages)."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from puter_mcp.core import BadRequest, ChatCall, ToolCallDelta, UpstreamRefused
from puter_mcp.emulator import Fault
from tests.helpers import Emulator, backend_for

pytestmark = pytest.mark.anyio

PNG_DATA_URL = "data:image/png;base64,iVBORw0KGgo="
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def tool_call(model: str, *, stream: bool = True) -> ChatCall:
    return ChatCall.parse(
        {
            "model": model,
            "messages": [{"role": "user", "content": 'call tool get_weather with {"city": "Oslo"}'}],
            "tools": [WEATHER],
            "fallback": False,
            "stream": stream,
        }
    )


@pytest.mark.parametrize("model", ["claude-sonnet-5", "gpt-5-mini"])  # Anthropic's shape, OpenAI's
@pytest.mark.parametrize("stream", [True, False])
async def test_a_tool_call_comes_back_parsed_and_raw(
    emulator: Emulator, home: Path, model: str, stream: bool
) -> None:
    async with backend_for(emulator, home, emulator.paid) as (backend, _):
        outcome = await backend.chat(tool_call(model, stream=stream))
    assert outcome.finish_reason == "tool_calls"
    [made] = outcome.tool_calls
    assert (made.name, made.arguments) == ("get_weather", {"city": "Oslo"})
    assert made.id.startswith("toolu" if model.startswith("claude") else "call")
    assert made.arguments_json.replace(" ", "") == '{"city":"Oslo"}'
    [sent] = emulator.chat_requests()
    assert sent.tools == [{"type": "function", "function": WEATHER}]


async def test_a_streamed_tool_call_arrives_as_one_delta(emulator: Emulator, home: Path) -> None:
    async with (
        backend_for(emulator, home, emulator.paid) as (backend, _),
        aclosing(backend.chat_stream(tool_call("gpt-5-mini"))) as events,
    ):
        deltas = [event async for event in events if isinstance(event, ToolCallDelta)]
    assert len(deltas) == 1
    assert (deltas[0].index, deltas[0].name) == (0, "get_weather")
    assert deltas[0].id
    assert deltas[0].arguments.replace(" ", "") == '{"city":"Oslo"}'


async def test_a_tool_result_goes_back_and_is_answered(emulator: Emulator, home: Path) -> None:
    call = ChatCall.parse(
        {
            "model": "gpt-5-mini",
            "messages": [
                {"role": "user", "content": "weather in Oslo?"},
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "call_7", "name": "get_weather", "arguments": "{}"}],
                },
                {"role": "tool", "tool_call_id": "call_7", "content": "sunny, 21 C"},
            ],
            "tools": [WEATHER],
        }
    )
    async with backend_for(emulator, home, emulator.paid) as (backend, _):
        outcome = await backend.chat(call)
    assert 'The tool returned: "sunny, 21 C"' in outcome.text
    assert outcome.tool_calls == []
    sent: list[dict[str, Any]] = emulator.chat_requests()[0].messages
    assert sent[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": "{}"}
    assert sent[2] == {"role": "tool", "content": "sunny, 21 C", "tool_call_id": "call_7"}


async def test_a_model_that_cannot_call_tools_is_never_asked(emulator: Emulator, home: Path) -> None:
    async with backend_for(emulator, home, emulator.paid) as (backend, _):
        with pytest.raises(BadRequest, match=r"'deepseek-reasoner' .*cannot call tools"):
            await backend.chat(tool_call("deepseek-reasoner"))
    assert emulator.chat_requests() == []


async def test_an_image_reaches_a_model_that_takes_images(emulator: Emulator, home: Path) -> None:
    call = ChatCall.parse(
        {
            "model": "claude-haiku-latest",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image", "url": PNG_DATA_URL},
                    ],
                }
            ],
        }
    )
    async with backend_for(emulator, home, emulator.paid) as (backend, _):
        outcome = await backend.chat(call)
    assert 'You said: "what is this?" (with 1 image)' in outcome.text
    [sent] = emulator.chat_requests()
    assert sent.messages[0]["content"][1] == {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}


async def test_the_emulator_refuses_an_image_for_a_model_that_takes_none(
    emulator: Emulator, home: Path
) -> None:
    """What Puter would answer if routing did not know better: the request fails outright."""
    import httpx2

    from puter_mcp.emulator.testing import driver_body

    content = [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]
    body = driver_body(
        "complete", {"messages": [{"role": "user", "content": content}], "model": "deepseek-chat"}
    )
    async with httpx2.AsyncClient(base_url=emulator.url) as http:
        answer = await http.post(
            "/drivers/call", json=body, headers={"Authorization": f"Bearer {emulator.paid.token}"}
        )
    assert answer.status_code == 400
    assert "does not support image input" in answer.json()["message"]


async def test_reasoning_from_another_model_is_dropped_when_the_call_falls_back(
    emulator: Emulator, home: Path
) -> None:
    signature = "emulator-signature:claude-sonnet-5"
    call = ChatCall.parse(
        {
            "model": "chat-smart",  # claude-sonnet-latest first, then gpt-latest
            "messages": [
                {"role": "user", "content": "think about it"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "reasoning",
                            "text": "pondering",
                            "model": "claude-sonnet-5",
                            "signature": signature,
                        },
                        {"type": "text", "text": "I thought."},
                    ],
                },
                {"role": "user", "content": "and now?"},
            ],
        }
    )
    emulator.state.add_fault(Fault.UPSTREAM_PROVIDER_UNAVAILABLE, model="claude-sonnet-5")
    async with backend_for(emulator, home, emulator.paid) as (backend, _):
        outcome = await backend.chat(call)
    first, second = emulator.chat_requests()
    assert (first.model_used, first.status) == (None, 400)  # the fault, before the block was looked at
    assert first.messages[1]["content"][0] == {
        "type": "thinking",
        "thinking": "pondering",
        "signature": signature,
    }
    assert second.messages[1]["content"] == [{"type": "text", "text": "I thought."}]
    assert outcome.model == second.model_used == "gpt-5.2-2025-12-11"


async def test_a_foreign_thinking_block_fails_the_request_upstream(emulator: Emulator, home: Path) -> None:
    """Why the block is dropped: a block another model signed (here recorded under the wrong
    model, so it is sent) makes Puter refuse the request."""
    call = ChatCall.parse(
        {
            "model": "claude-haiku-latest",
            "messages": [
                {"role": "user", "content": "think"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "reasoning",
                            "text": "hmm",
                            "model": "claude-haiku-4-5-20251001",
                            "signature": "emulator-signature:claude-sonnet-5",
                        }
                    ],
                },
                {"role": "user", "content": "go on"},
            ],
            "fallback": False,
        }
    )
    async with backend_for(emulator, home, emulator.paid) as (backend, _):
        with pytest.raises(UpstreamRefused, match="Invalid `signature`"):
            await backend.chat(call)
