"""The three tools through the SDK's in-memory `Client`, in both protocol eras, against the emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import TextContent

from puter_mcp.core import Backend
from puter_mcp.core.wiring import engine_of
from puter_mcp.emulator import EmulatorState, EmulatorThread, Fault
from puter_mcp.server import build_server
from puter_mcp.settings import load_settings, resolve_paths
from tests.helpers import Emulator, save_accounts, settings_for

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "auto"]  # the 2025 initialize handshake, and the 2026 discover era


def _text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


@pytest.mark.parametrize("mode", ERAS)
async def test_tools_are_listed_in_order_with_schemas_and_annotations(backend: Backend, mode: str) -> None:
    async with Client(build_server(backend), mode=mode) as client:
        tools = (await client.list_tools()).tools
    assert [tool.name for tool in tools] == ["puter-chat", "puter-models", "puter-account"]
    by_name = {tool.name: tool for tool in tools}
    for tool in tools:
        assert tool.title
        assert tool.description
        assert tool.output_schema is not None
        assert tool.annotations is not None and tool.annotations.open_world_hint is True
    for name in ("puter-models", "puter-account"):
        annotations = by_name[name].annotations
        assert annotations is not None
        assert annotations.read_only_hint is True
        assert annotations.idempotent_hint is True
    chat = by_name["puter-chat"]
    assert chat.annotations is not None and chat.annotations.read_only_hint is False
    properties = chat.input_schema["properties"]
    for argument in (
        "message",
        "messages",
        "model",
        "system",
        "temperature",
        "max_tokens",
        "reasoning_effort",
    ):
        assert properties[argument].get("description") or any(
            "description" in option for option in properties[argument].get("anyOf", [])
        ), argument
    assert {"model", "model_requested", "usage", "cost_usd", "finish_reason"} <= set(
        chat.output_schema["properties"]  # type: ignore[index]
    )


@pytest.mark.parametrize("mode", ERAS)
async def test_chat_answers_with_metadata(backend: Backend, emulator: Emulator, mode: str) -> None:
    async with Client(build_server(backend), mode=mode) as client:
        result = await client.call_tool(
            "puter-chat", {"message": "Say hello to the tests", "model": "gpt-5-nano"}
        )
    assert not result.is_error, _text(result)
    text = _text(result)
    assert "Say hello to the tests" in text
    meta = result.structured_content
    assert meta is not None
    assert meta["model_requested"] == "gpt-5-nano"
    assert meta["model"].startswith("gpt-5-nano")
    assert meta["account"] == emulator.paid.username
    assert meta["usage"]["total_tokens"] == meta["usage"]["input_tokens"] + meta["usage"]["output_tokens"] > 0
    assert meta["cost_usd"] is not None and meta["cost_usd"] > 0
    assert meta["finish_reason"] == "stop"
    assert meta["fallback"] is None
    assert "text" not in meta  # the answer is the text content, not repeated in the metadata
    assert len(emulator.chat_requests()) == 1


async def test_chat_sends_text_with_half_an_emoji(backend: Backend, emulator: Emulator) -> None:
    # JSON's "\ud83d" (an emoji cut by a client) decodes to a lone surrogate, which UTF-8 cannot
    # carry: it reaches Puter as U+FFFD, and the call is answered.
    async with Client(build_server(backend)) as client:
        result = await client.call_tool("puter-chat", {"message": "cut \ud83d here", "model": "gpt-5-nano"})
    assert not result.is_error, _text(result)
    (sent,) = emulator.chat_requests()
    assert sent.messages == [{"role": "user", "content": "cut \ufffd here"}]


async def test_chat_takes_a_conversation_and_a_system_prompt(backend: Backend, emulator: Emulator) -> None:
    messages = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    async with Client(build_server(backend)) as client:
        result = await client.call_tool(
            "puter-chat",
            {"messages": messages, "system": "be brief", "model": "claude-sonnet-latest", "max_tokens": 200},
        )
    assert not result.is_error, _text(result)
    assert "second question" in _text(result)
    assert result.structured_content is not None
    assert result.structured_content["model"].startswith("claude-sonnet")


async def test_progress_notifications_arrive_during_a_slow_answer(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home, progress_interval=0.05)
    save_accounts(paths, emulator.paid)
    emulator.state.stream_delay = 0.05
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with Backend.create(settings, paths, env={}) as backend, Client(build_server(backend)) as client:
        result = await client.call_tool(
            "puter-chat",
            {"message": "tell me a long story " * 5, "model": "gpt-5-nano"},
            progress_callback=on_progress,
        )
    assert not result.is_error, _text(result)
    assert len(seen) >= 2
    assert all(message and len(message) < 200 for _, message in seen)
    assert any("tokens received" in (message or "") for _, message in seen)
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)  # token counts only grow


async def test_out_of_credits_is_an_error_result_that_says_what_to_do(
    backend: Backend, emulator: Emulator
) -> None:
    emulator.state.add_fault(Fault.INSUFFICIENT_FUNDS, account=emulator.paid.username, times=None)
    async with Client(build_server(backend)) as client:
        result = await client.call_tool(
            "puter-chat", {"message": "hello", "model": "gpt-5-nano", "fallback": False}
        )
    assert result.is_error
    text = _text(result)
    assert "out of credits" in text.lower()
    assert "puter-mcp login" in text
    assert emulator.paid.token not in text


async def test_not_signed_in(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)
    async with Backend.create(settings, paths, env={}) as backend, Client(build_server(backend)) as client:
        result = await client.call_tool("puter-chat", {"message": "hello"})
    assert result.is_error
    assert "not signed in: run `puter-mcp login`" in _text(result)
    assert emulator.chat_requests() == []


async def test_unknown_model_names_close_matches(backend: Backend, emulator: Emulator) -> None:
    async with Client(build_server(backend)) as client:
        result = await client.call_tool("puter-chat", {"message": "hello", "model": "gpt-5-nanoo"})
    assert result.is_error
    text = _text(result)
    assert "'gpt-5-nanoo' not found" in text
    assert "closest:" in text and "gpt-5-nano" in text
    assert emulator.chat_requests() == []


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "nothing to ask"),
        ({"message": "a", "messages": [{"role": "user", "content": "b"}]}, "not both"),
        ({"messages": [{"role": "assistant", "content": "b"}]}, "role `user`"),
        ({"message": "a", "reasoning_effort": "low", "thinking_budget": 2000}, "reasoning"),
        ({"message": "a", "temperature": 7}, "temperature"),
    ],
)
async def test_bad_arguments_are_refused_clearly(
    backend: Backend, emulator: Emulator, arguments: dict[str, Any], expected: str
) -> None:
    async with Client(build_server(backend)) as client:
        result = await client.call_tool("puter-chat", arguments)
    assert result.is_error
    assert expected in _text(result)
    assert emulator.chat_requests() == []


async def test_cancelling_a_call_cancels_the_upstream_request(backend: Backend, emulator: Emulator) -> None:
    emulator.state.stream_delay = 0.2
    username = emulator.paid.username
    async with Client(build_server(backend)) as client:
        with anyio.move_on_after(0.6):
            await client.call_tool("puter-chat", {"message": "a long story " * 40, "model": "gpt-5-nano"})
            pytest.fail("the call should still have been streaming")
        # The emulator sees its client go away: its in-flight count drops back to zero long
        # before the stream would have ended on its own.
        with anyio.fail_after(3):
            while emulator.state.in_flight(username) != 0:  # noqa: ASYNC110 (polling another thread)
                await anyio.sleep(0.02)
    assert len(emulator.chat_requests()) == 1


@pytest.mark.parametrize("mode", ERAS)
async def test_models_filters_and_pages(backend: Backend, mode: str) -> None:
    async with Client(build_server(backend), mode=mode) as client:
        first = await client.call_tool("puter-models", {"query": "claude", "limit": 2})
        second = await client.call_tool("puter-models", {"query": "claude", "limit": 2, "offset": 2})
        free = await client.call_tool("puter-models", {"free": True, "limit": 50})
    for result in (first, second, free):
        assert not result.is_error, _text(result)
    page = first.structured_content
    assert page is not None and page["total"] > 2 and len(page["models"]) == 2
    assert all(
        "claude" in (m["id"] + " ".join(m["aliases"]) + (m["name"] or "")).lower() for m in page["models"]
    )
    assert second.structured_content is not None
    assert {m["id"] for m in page["models"]}.isdisjoint(m["id"] for m in second.structured_content["models"])
    assert "offset=2" in _text(first)
    free_page = free.structured_content
    assert free_page is not None and free_page["total"] >= 1
    assert all(m["free"] and m["input_usd_per_mtok"] == 0 for m in free_page["models"])
    record = page["models"][0]
    assert {"id", "provider", "context", "max_output", "input_usd_per_mtok", "output_usd_per_mtok"} <= set(
        record
    )


async def test_models_lists_virtual_models(backend: Backend) -> None:
    async with Client(build_server(backend)) as client:
        result = await client.call_tool("puter-models", {"virtual": True})
    assert not result.is_error
    page = result.structured_content
    assert page is not None
    names = [v["name"] for v in page["virtual_models"]]
    assert {"coding-elite", "coding-fast", "chat-smart", "chat-fast"} <= set(names)
    assert all(v["members"] for v in page["virtual_models"])
    assert "auto" in _text(result)


async def test_models_cache_serves_a_new_process(home: Path) -> None:
    state = EmulatorState()
    thread = EmulatorThread(state)
    url = thread.start()
    settings, paths = load_settings(
        paths=resolve_paths({"PUTER_MCP_HOME": str(home)}), env={"PUTER_API_ORIGIN": url}
    )
    try:
        async with Backend.create(settings, paths, env={}) as backend:
            await engine_of(backend).catalogue()
    finally:
        thread.stop()
    assert paths.models_cache.exists()
    fetches = len([r for r in state.requests if r.path.startswith("/puterai/chat/models")])
    assert fetches == 1

    # A new process within the TTL does not wait for Puter at all (it is gone now anyway).
    async with Backend.create(settings, paths, env={}) as backend, Client(build_server(backend)) as client:
        fresh = await client.call_tool("puter-models", {"query": "gpt"})
    assert not fresh.is_error, _text(fresh)
    assert fresh.structured_content is not None and fresh.structured_content["stale"] is False

    # Past the TTL, with Puter unreachable, the cached list is still served, marked stale.
    expired = settings.model_copy(update={"models_cache_ttl": 0.0})
    async with Backend.create(expired, paths, env={}) as backend, Client(build_server(backend)) as client:
        stale = await client.call_tool("puter-models", {"query": "gpt"})
    assert not stale.is_error, _text(stale)
    assert stale.structured_content is not None and stale.structured_content["stale"] is True
    assert "out of date" in _text(stale)


async def test_models_without_puter_or_cache_is_a_clear_error(home: Path, emulator: Emulator) -> None:
    settings, paths = settings_for(emulator, home)
    offline = settings.model_copy(update={"api_origin": "http://127.0.0.1:9"})
    async with Backend.create(offline, paths, env={}) as backend, Client(build_server(backend)) as client:
        result = await client.call_tool("puter-models", {})
    assert result.is_error
    assert "cannot reach Puter" in _text(result)


async def test_account_shows_credits_and_masks_tokens(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid, emulator.temp)
    async with Backend.create(settings, paths, env={}) as backend, Client(build_server(backend)) as client:
        result = await client.call_tool("puter-account", {})
    assert not result.is_error, _text(result)
    overview = result.structured_content
    assert overview is not None
    accounts = {a["name"]: a for a in overview["accounts"]}
    assert set(accounts) == {emulator.paid.username, emulator.temp.username}
    paid = accounts[emulator.paid.username]
    assert paid["default"] is True
    assert paid["credits"]["remaining_usd"] > 0
    assert paid["tier"] == "paid"
    temp = accounts[emulator.temp.username]
    assert temp["is_temp"] is True
    assert temp["credits"]["allowance_usd"] == pytest.approx(0.25)
    text = _text(result)
    for account in (emulator.paid, emulator.temp):
        assert account.token not in text
        assert account.token not in str(overview)
    assert "…" in paid["token"]


async def test_account_shows_why_an_account_is_out_of_rotation(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid, emulator.free)
    emulator.state.set_credits(emulator.paid.username, 0)  # a 402 from an account with credit is not enough
    emulator.state.add_fault(
        Fault.UPSTREAM_PROVIDER_UNAVAILABLE, model="gpt-5-nano", account=emulator.free.username
    )
    async with Backend.create(settings, paths, env={}) as backend, Client(build_server(backend)) as client:
        answer = await client.call_tool("puter-chat", {"message": "hello", "model": "gpt-5-nano"})
        overview = await client.call_tool("puter-account", {})
    assert not answer.is_error, _text(answer)
    assert _text(answer).startswith("[answered by ")  # gpt-5-nano went down: a free model answered
    data = overview.structured_content
    assert data is not None
    states = {a["name"]: a["state"] for a in data["accounts"]}
    assert states == {emulator.paid.username: "out-of-credits", emulator.free.username: "active"}
    assert [(c["kind"], c["model"]) for c in data["model_cooldowns"]] == [
        ("model_down", "gpt-5-nano-2025-08-07")
    ]
    text = _text(overview)
    assert "out-of-credits" in text and "Model cooldowns:" in text and "model_down until" in text


async def test_the_environment_account_takes_its_tier_from_the_config(emulator: Emulator, home: Path) -> None:
    from puter_mcp.routing.pacing import Tier, limits_for

    settings, paths = settings_for(emulator, home, account_tiers={"env": "paid"})
    async with Backend.create(settings, paths, env={"PUTER_AUTH_TOKEN": emulator.paid.token}) as backend:
        (account,) = engine_of(backend).routable_accounts()
    assert account.name == "env"
    assert account.limits == limits_for(Tier.PAID)


def test_a_bad_user_chain_stops_start_up_without_building_the_engine(emulator: Emulator, home: Path) -> None:
    from puter_mcp.core import BackendError

    bad = {"review": {"models": "gpt-5-nano"}}
    settings, paths = settings_for(emulator, home, chains=bad)
    with pytest.raises(BackendError, match=r"\[chains\.review\]: models: expected a non-empty list"):
        Backend.create(settings, paths, env={})
    good, _ = settings_for(emulator, home, chains={"review": {"models": ["gpt-5-nano"]}})
    assert Backend.create(good, paths, env={})._engine is None  # checked, yet nothing opened
