"""Tool arguments through a real in-memory `Client`: unknown ones refused, bad ones worded for a person."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import TextContent

from puter_mcp.core import Backend
from puter_mcp.server import build_server
from tests.helpers import Emulator, save_accounts, settings_for

pytestmark = pytest.mark.anyio


def _text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


@pytest.mark.parametrize(
    ("tool", "arguments", "named", "suggested"),
    [
        ("puter-chat", {"message": "hi", "temprature": 0.5}, "temprature", "temperature"),
        ("puter-models", {"qurey": "claude"}, "qurey", "query"),
        ("puter-account", {"verbose": True}, "verbose", None),
    ],
)
async def test_unknown_arguments_are_refused_with_the_closest_known_one(
    backend: Backend,
    emulator: Emulator,
    tool: str,
    arguments: dict[str, Any],
    named: str,
    suggested: str | None,
) -> None:
    async with Client(build_server(backend)) as client:
        result = await client.call_tool(tool, arguments)
    text = _text(result)
    assert result.is_error, text
    assert f"`{named}`" in text
    if suggested:
        assert f"did you mean `{suggested}`?" in text
    assert emulator.chat_requests() == []  # refused before anything was asked upstream


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        (
            "puter-chat",
            {"message": "hi", "temperature": 9},
            "bad chat argument `temperature`: must be at most 2",
        ),
        (
            "puter-chat",
            {"message": "hi", "max_tokens": 0},
            "bad chat argument `max_tokens`: must be at least 1",
        ),
        (
            "puter-chat",
            {"message": "hi", "max_tokens": True},
            "bad chat argument `max_tokens`: must be a whole",
        ),
        (
            "puter-chat",
            {"message": "hi", "max_tokens": 1e38},
            "bad chat argument `max_tokens`: must be a whole",
        ),
        (
            "puter-chat",
            {"message": "hi", "max_tokens": 12.0},
            "bad chat argument `max_tokens`: must be a whole",
        ),
        ("puter-chat", {"message": "hi", "reasoning_effort": "max"}, "bad chat argument `reasoning_effort`"),
        ("puter-models", {"limit": 1000}, "bad models argument `limit`: must be at most 100"),
        ("puter-models", {"offset": "2"}, "bad models argument `offset`: must be a whole"),
    ],
)
async def test_bad_arguments_are_worded_like_the_cli(
    backend: Backend, emulator: Emulator, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    async with Client(build_server(backend)) as client:
        result = await client.call_tool(tool, arguments)
    text = _text(result)
    assert result.is_error
    assert text.startswith(expected), text
    assert "pydantic" not in text and "validation error" not in text
    assert emulator.chat_requests() == []


async def test_tool_descriptions_carry_no_source_indentation(backend: Backend) -> None:
    async with Client(build_server(backend)) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        assert tool.description
        for line in tool.description.splitlines():
            assert line == line.strip(), (tool.name, line)


async def test_sandbox_models_and_account_are_marked_like_chat(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid)
    async with (
        Backend.create(settings, paths, env={}, sandbox=True) as backend,
        Client(build_server(backend)) as client,
    ):
        chat = await client.call_tool("puter-chat", {"message": "hi", "model": "gpt-5-nano"})
        models = await client.call_tool("puter-models", {"query": "claude"})
        virtual = await client.call_tool("puter-models", {"virtual": True})
        account = await client.call_tool("puter-account", {})
    for result in (chat, models, virtual, account):
        assert not result.is_error, _text(result)
        assert _text(result).startswith("[SANDBOX"), _text(result)
        assert result.structured_content is not None and result.structured_content["sandbox"] is True


async def test_real_models_are_not_marked(backend: Backend) -> None:
    async with Client(build_server(backend)) as client:
        models = await client.call_tool("puter-models", {"query": "claude"})
    assert not _text(models).startswith("[SANDBOX")
    assert models.structured_content is not None and models.structured_content["sandbox"] is False
