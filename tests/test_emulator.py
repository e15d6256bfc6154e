"""The Puter emulator, seen on the wire: routes, answer shapes, streams, auth, credits, accounts,
the request log, the control routes and the runners. Faults and rate limits have their own files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from puter_mcp.core import Backend, ChatCall
from puter_mcp.emulator import EmulatorState, EmulatorThread, Tier, serve_emulator
from puter_mcp.emulator.answers import count_tokens, text_pieces
from puter_mcp.emulator.catalogue import PROVIDERS, Catalogue, default_catalogue
from puter_mcp.emulator.state import MICROCENTS_PER_USD
from puter_mcp.emulator.testing import ManualClock, chat_body, driver_body
from puter_mcp.emulator.tokens import is_current_format

pytestmark = pytest.mark.anyio

ANTHROPIC_USAGE = {
    "input_tokens",
    "ephemeral_5m_input_tokens",
    "ephemeral_1h_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
    "thinking_tokens",
    "usd_cents",
}
OPENAI_USAGE = {"prompt_tokens", "completion_tokens", "cached_tokens", "usd_cents"}
OPENROUTER_USAGE = {"prompt", "completion", "input_cache_read", "request", "usd_cents"}
FREE_OPENROUTER = "openrouter:meta-llama/llama-3.3-70b-instruct:free"


@pytest.fixture
def state() -> EmulatorState:
    emulator = EmulatorState(clock=ManualClock(), seed=7)
    emulator.seed_default_accounts()
    return emulator


def auth(state: EmulatorState, username: str = "paid_user") -> dict[str, str]:
    return {"Authorization": f"Bearer {state.accounts[username].token}"}


def ndjson_lines(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.text.endswith("\n")
    return [json.loads(line) for line in response.text.splitlines()]


async def chat(
    client: httpx2.AsyncClient, state: EmulatorState, model: str, username: str = "paid_user", **kwargs: Any
) -> httpx2.Response:
    content = kwargs.pop("content", "hello emulator")
    stream = kwargs.pop("stream", False)
    return await client.post(
        "/drivers/call",
        json=chat_body(model, content, stream=stream, **kwargs),
        headers=auth(state, username),
    )


# --- the catalogue ---------------------------------------------------------------------


def test_catalogue_has_every_feature_a_client_must_handle() -> None:
    catalogue = default_catalogue()
    public = catalogue.public()
    assert len(public) >= 30
    providers = {m.provider for m in public}
    assert {
        "claude",
        "openai-completion",
        "gemini",
        "deepseek",
        "xai",
        "mistral",
        "groq",
        "openrouter",
    } <= providers
    assert "togetherai" in providers
    free = [m for m in public if m.id.startswith("openrouter:") and m.id.endswith(":free")]
    assert len(free) >= 3
    assert all(m.input_cost == m.output_cost == 0 for m in free)
    assert any(m.subscriber_only for m in public)
    for stable in ("claude-sonnet-latest", "claude-opus-latest", "claude-haiku-latest", "gpt-5-nano",
                   "gemini-flash-latest", "deepseek-chat"):  # fmt: skip
        found = catalogue.find(stable)
        assert found is not None
        assert found.id != stable
    assert {m.id for m in catalogue if m.hidden} == {"fake", "costly", "abuse"}


def test_catalogue_refuses_ambiguous_names() -> None:
    sonnet = default_catalogue().find("claude-sonnet-5")
    haiku = default_catalogue().find("claude-haiku-latest")
    assert sonnet is not None
    assert haiku is not None
    with pytest.raises(ValueError, match="belongs to both"):
        Catalogue([sonnet, dataclasses.replace(haiku, aliases=("CLAUDE-SONNET-5",))])


def test_text_pieces_rejoin_exactly_and_tokens_are_a_quarter_of_the_length() -> None:
    text = '[m] You said: "a  b". This deterministic answer comes from the Puter emulator.'
    pieces = text_pieces(text)
    assert len(pieces) >= 3
    assert "".join(pieces) == text
    assert (count_tokens(""), count_tokens("abcd"), count_tokens("abcde")) == (1, 1, 2)


def test_tokens_look_like_jwts_and_differ_per_account(state: EmulatorState) -> None:
    tokens = [a.token for a in state.accounts.values()]
    assert len(set(tokens)) == 3
    assert all(is_current_format(t) for t in tokens)
    assert not is_current_format("not-a-token")
    assert not is_current_format("a.b.c")
    again = EmulatorState(seed=7)
    again.seed_default_accounts()
    assert [a.token for a in again.accounts.values()] == tokens  # seeded: repeatable


async def test_public_model_list_is_sorted_puter_ids_without_test_models(client: httpx2.AsyncClient) -> None:
    response = await client.get("/puterai/chat/models")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    models = response.json()["models"]
    assert models == sorted(models)
    assert "anthropic:anthropic/claude-sonnet-5" in models
    assert FREE_OPENROUTER in models  # no puterId: its id
    assert not {"fake", "costly", "abuse"} & set(models)


async def test_model_details_spell_costs_per_provider(client: httpx2.AsyncClient) -> None:
    models = (await client.get("/puterai/chat/models/details")).json()["models"]
    assert [(m["provider"], m["id"]) for m in models] == sorted((m["provider"], m["id"]) for m in models)
    assert not {"fake", "costly", "abuse"} & {m["id"] for m in models}
    expected_keys = {
        "claude": ("input_tokens", "output_tokens"),
        "openai-completion": ("prompt_tokens", "completion_tokens"),
        "groq": ("prompt_tokens", "completion_tokens"),
        "openrouter": ("prompt", "completion"),
        "togetherai": ("input", "output"),
    }
    for model in models:
        assert model["costs_currency"] == "usd-cents"
        assert model["costs"]["tokens"] == 1_000_000
        assert set(model["costs"]) == {"tokens", model["input_cost_key"], model["output_cost_key"]}
        if model["provider"] in expected_keys:
            assert (model["input_cost_key"], model["output_cost_key"]) == expected_keys[model["provider"]]
        if model["provider"] == "openrouter":
            assert not {"puterId", "modalities", "tool_call"} & set(model)
        else:
            assert model["puterId"] in model["aliases"]
            assert set(model["modalities"]) == {"input", "output"}
            assert "tool_call" in model
    sonnet = next(m for m in models if m["id"] == "claude-sonnet-5")
    assert {"anthropic/claude-sonnet-5", "claude-sonnet-latest"} <= set(sonnet["aliases"])
    assert any(m.get("subscriberOnly") is True for m in models)


async def test_driver_methods_models_and_list_include_test_models(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    response = await client.post("/drivers/call", json=driver_body("models"), headers=auth(state))
    body = response.json()
    assert body["success"] is True
    assert body["service"] == {"name": "ai-chat"}
    fake = next(m for m in body["result"] if m["id"] == "fake")
    assert fake["provider"] == "fake-chat"
    assert (fake["input_cost_key"], fake["output_cost_key"]) == ("input-tokens", "output-tokens")
    listed = (await client.post("/drivers/call", json=driver_body("list"), headers=auth(state))).json()[
        "result"
    ]
    assert {"fake", "costly", "abuse", "anthropic:anthropic/claude-sonnet-5"} <= set(listed)


# --- answers ---------------------------------------------------------------------------


async def test_openai_shape_answers_with_canonical_model_and_no_total(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    response = await chat(client, state, "GPT-5-NANO", content="what is 2+2?")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["success"] is True
    assert body["service"] == {"name": "ai-chat"}
    assert body["metadata"] == {"service_used": "openai-completion", "providerUsed": "gpt-5-nano-2025-08-07"}
    result = body["result"]
    assert result["index"] == 0
    assert result["finish_reason"] == "stop"
    assert result["message"]["role"] == "assistant"
    assert result["message"]["content"].startswith('[gpt-5-nano-2025-08-07] You said: "what is 2+2?"')
    assert "tool_calls" not in result["message"]
    assert "reasoning" not in result["message"]
    assert set(result["usage"]) == OPENAI_USAGE
    assert result["usage"]["usd_cents"] > 0


async def test_anthropic_shape_for_claude(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    body = (await chat(client, state, "claude-haiku-latest")).json()
    assert body["metadata"] == {"service_used": "claude", "providerUsed": "claude-haiku-4-5-20251001"}
    result = body["result"]
    assert result["finish_reason"] == "stop"
    assert result["via_ai_chat_service"] is True
    message = result["message"]
    assert (message["type"], message["role"], message["model"]) == (
        "message",
        "assistant",
        "claude-haiku-4-5-20251001",
    )
    assert message["stop_reason"] == "end_turn"
    assert [block["type"] for block in message["content"]] == ["text"]
    assert message["content"][0]["text"].startswith("[claude-haiku-4-5-20251001] You said:")
    assert set(result["usage"]) == ANTHROPIC_USAGE


async def test_openrouter_usage_spelling_and_free_models_cost_zero(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    result = (await chat(client, state, FREE_OPENROUTER.upper())).json()["result"]
    assert set(result["usage"]) == OPENROUTER_USAGE
    assert result["usage"]["usd_cents"] == 0


async def test_test_models_answer_anthropic_shape_and_are_never_charged(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    before = state.accounts["free_user"].credits_microcents
    body = (await chat(client, state, "fake", "free_user")).json()
    assert body["metadata"]["providerUsed"] == "fake"
    assert body["result"]["message"]["type"] == "message"
    assert body["result"]["usage"]["usd_cents"] is None
    assert state.accounts["free_user"].credits_microcents == before
    assert state.accounts["free_user"].usage == {}


@pytest.mark.parametrize(
    ("model", "stop_key", "stop_value"),
    [("claude-sonnet-5", "stop_reason", "tool_use"), ("gpt-5-mini", "finish_reason", "tool_calls")],
)
async def test_tool_calls_in_both_shapes(
    client: httpx2.AsyncClient, state: EmulatorState, model: str, stop_key: str, stop_value: str
) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "w", "parameters": {}}}]
    content = 'Please call tool get_weather with {"city": "Paris"}'
    result = (await chat(client, state, model, content=content, tools=tools)).json()["result"]
    if stop_key == "stop_reason":
        assert result["message"]["stop_reason"] == stop_value
        use = next(b for b in result["message"]["content"] if b["type"] == "tool_use")
        assert (use["name"], use["input"]) == ("get_weather", {"city": "Paris"})
    else:
        assert result["finish_reason"] == stop_value
        assert result["message"]["content"] is None
        call = result["message"]["tool_calls"][0]
        assert call["type"] == "function"
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    lines = ndjson_lines(await chat(client, state, model, content=content, tools=tools, stream=True))
    tool_lines = [line for line in lines if line["type"] == "tool_use"]
    assert tool_lines == [
        {
            "type": "tool_use",
            "id": tool_lines[0]["id"],
            "name": "get_weather",
            "input": {"city": "Paris"},
            "text": "",
        }
    ]
    # A tool not offered is not called; a tool result gets a text answer.
    plain = (await chat(client, state, model, content="call tool nope", tools=tools)).json()["result"]
    assert "tool_calls" not in plain["message"]
    assert plain.get("finish_reason") != "tool_calls"


async def test_tool_result_is_answered_with_text(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    messages = [
        {"role": "user", "content": "call tool get_weather"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    body = driver_body(
        "complete", {"messages": messages, "model": "gpt-5-nano", "tools": [{"name": "get_weather"}]}
    )
    result = (await client.post("/drivers/call", json=body, headers=auth(state))).json()["result"]
    assert 'The tool returned: "sunny, 21 C"' in result["message"]["content"]


async def test_reasoning_is_added_when_an_effort_is_asked(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    openai = (await chat(client, state, "o4-mini", reasoning_effort="high")).json()["result"]
    assert "high effort" in openai["message"]["reasoning"]
    claude = (await chat(client, state, "claude-sonnet-5", reasoning={"effort": "low"})).json()["result"]
    assert [b["type"] for b in claude["message"]["content"]] == ["thinking", "text"]
    assert claude["usage"]["thinking_tokens"] > 0
    # Anthropic's `thinking` budget is silently ignored, as Puter does.
    ignored = (await chat(client, state, "claude-sonnet-5", thinking={"budget_tokens": 2048})).json()[
        "result"
    ]
    assert [b["type"] for b in ignored["message"]["content"]] == ["text"]
    bad = await chat(client, state, "claude-sonnet-5", reasoning_effort="extreme")
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_request")


async def test_max_tokens_truncates_with_the_providers_reason(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    openai = (await chat(client, state, "gpt-5-nano", max_tokens=3)).json()["result"]
    assert openai["finish_reason"] == "length"
    assert openai["usage"]["completion_tokens"] == 3
    assert len(openai["message"]["content"]) == 12
    claude = (await chat(client, state, "claude-sonnet-5", max_tokens=2)).json()["result"]
    assert claude["message"]["stop_reason"] == "max_tokens"
    assert claude["finish_reason"] == "stop"
    assert claude["usage"]["output_tokens"] == 2


async def test_stream_sends_text_pieces_reasoning_and_usage_last(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    whole = (await chat(client, state, "claude-sonnet-5", content="stream me")).json()["result"]["message"]
    lines = ndjson_lines(await chat(client, state, "claude-sonnet-5", content="stream me", stream=True))
    texts = [line["text"] for line in lines if line["type"] == "text"]
    assert len(texts) >= 3
    assert "".join(texts) == whole["content"][0]["text"]
    assert lines[-1]["type"] == "usage"
    assert set(lines[-1]["usage"]) == ANTHROPIC_USAGE
    assert [line["type"] for line in lines].count("usage") == 1
    reasoned = ndjson_lines(await chat(client, state, "gpt-5-nano", stream=True, reasoning_effort="medium"))
    assert reasoned[0]["type"] == "reasoning"
    assert "medium effort" in reasoned[0]["reasoning"]
    assert set(reasoned[-1]["usage"]) == OPENAI_USAGE


async def test_stream_is_paced_by_stream_delay(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.stream_delay = 30.0
    body = chat_body("gpt-5-nano", stream=True)
    async with client.stream(
        "POST", "/drivers/call", json=body, headers=auth(state), timeout=0.3
    ) as response:
        lines = response.aiter_lines()
        first = json.loads(await anext(lines))
        assert first["type"] == "text"
        with pytest.raises(httpx2.ReadTimeout):  # the next line is 30 s away
            await anext(lines)


# --- authentication and request errors ---------------------------------------------------


async def test_three_kinds_of_refused_token(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    body = chat_body("gpt-5-nano")
    missing = await client.post("/drivers/call", json=body)
    assert (missing.status_code, missing.json()["code"]) == (401, "token_missing")
    garbage = await client.post("/drivers/call", json=body, headers={"Authorization": "Bearer garbage"})
    assert (garbage.status_code, garbage.json()["code"]) == (401, "reauth_required")
    assert garbage.json()["reason"]
    stranger = EmulatorState(seed=99).add_account("stranger").token
    unknown = await client.post("/drivers/call", json=body, headers={"Authorization": f"Bearer {stranger}"})
    assert (unknown.status_code, unknown.json()["code"]) == (401, "token_auth_failed")
    for response in (missing, garbage, unknown):
        error = response.json()
        assert error["error"] == error["message"]
        assert error["message"]
    who = await client.get("/whoami", headers={"Authorization": "Bearer garbage"})
    assert (who.status_code, who.json()["code"]) == (401, "reauth_required")


async def test_token_also_accepted_as_api_key_or_in_the_body(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    token = state.accounts["free_user"].token
    by_key = await client.post("/drivers/call", json=chat_body("gpt-5-nano"), headers={"x-api-key": token})
    in_body = await client.post("/drivers/call", json={**chat_body("gpt-5-nano"), "auth_token": token})
    assert by_key.status_code == in_body.status_code == 200
    assert [r.username for r in state.requests[-2:]] == ["free_user", "free_user"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "client_bad_json"),
        ({"interface": "puter-chat-completion", "driver": "ai-chat"}, 400, "bad_request"),
        ({"method": "complete", "driver": "ai-chat"}, 400, "bad_request"),
        (driver_body("complete", interface="puter-image-generation"), 404, "not_found"),
        (driver_body("complete", driver="openai"), 404, "not_found"),
        (driver_body("summon"), 404, "not_found"),
        (driver_body("complete", {"messages": "hi"}), 400, "bad_request"),
    ],
)
async def test_malformed_calls(
    client: httpx2.AsyncClient, state: EmulatorState, body: Any, status: int, code: str
) -> None:
    if isinstance(body, bytes):
        response = await client.post("/drivers/call", content=body, headers=auth(state))
    else:
        response = await client.post("/drivers/call", json=body, headers=auth(state))
    assert (response.status_code, response.json()["code"]) == (status, code)


async def test_unknown_model(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    response = await chat(client, state, "gpt-99-ultra")
    assert response.status_code == 400
    assert response.json() == {"error": "Model not found: gpt-99-ultra", "message": "Model not found: gpt-99-ultra",
                               "code": "bad_request"}  # fmt: skip


async def test_subscriber_only_models_need_a_paid_account(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    for username in ("free_user", "temp_user"):
        refused = await chat(client, state, "claude-opus-latest", username)
        assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    assert (await chat(client, state, "claude-opus-latest", "paid_user")).status_code == 200


# --- credits and metering ----------------------------------------------------------------


async def test_credits_are_spent_then_every_model_gets_402(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    free = state.accounts["free_user"]
    usage = (await client.get("/metering/usage", headers=auth(state, "free_user"))).json()
    assert usage["usage"] == {"total": 0}
    assert "allowanceUsed" not in usage["usage"]
    assert usage["allowanceInfo"] == {
        "remaining": 50_000_000,
        "monthUsageAllowance": 50_000_000,
        "addons": {},
    }

    first = (await chat(client, state, "gpt-5-nano", "free_user")).json()["result"]["usage"]
    spent = 50_000_000 - free.credits_microcents
    assert spent == first["prompt_tokens"] * 5 + first["completion_tokens"] * 40
    assert first["usd_cents"] == pytest.approx(spent / 1_000_000)
    usage = (await client.get("/metering/usage", headers=auth(state, "free_user"))).json()
    assert usage["usage"]["allowanceUsed"] == usage["usage"]["total"] == spent
    assert usage["usage"]["openai-completion:gpt-5-nano-2025-08-07:prompt_tokens"] == {
        "units": first["prompt_tokens"], "cost": first["prompt_tokens"] * 5, "count": 1}  # fmt: skip
    assert usage["allowanceInfo"]["remaining"] == 50_000_000 - spent

    await chat(client, state, FREE_OPENROUTER, "free_user")
    usage = (await client.get("/metering/usage", headers=auth(state, "free_user"))).json()["usage"]
    assert usage[f"{FREE_OPENROUTER}:prompt"]["cost"] == 0

    state.set_credits("free_user", 0)
    for model in ("gpt-5-nano", FREE_OPENROUTER, "fake"):
        refused = await chat(client, state, model, "free_user")
        assert refused.status_code == 402
        assert refused.headers["x-needs-upgrade"] == "true"
        assert refused.json() == {"error": "No usage left for request.", "message": "No usage left for request.",
                                  "code": "insufficient_funds"}  # fmt: skip


async def test_a_small_balance_lowers_max_tokens_and_goes_negative_then_402(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    state.add_account("poor", tier=Tier.FREE, credits_usd=4_000 / MICROCENTS_PER_USD)  # 4000 microcents
    result = (await chat(client, state, "claude-sonnet-5", "poor")).json()[
        "result"
    ]  # 1500 microcents/out token
    assert result["message"]["stop_reason"] == "max_tokens"
    assert result["usage"]["output_tokens"] == 2
    assert state.accounts["poor"].credits_microcents <= 1_000
    state.set_credits("poor", -0.01)
    assert (await chat(client, state, "claude-sonnet-5", "poor")).status_code == 402


async def test_whoami_by_tier(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    paid = (await client.get("/whoami", headers=auth(state, "paid_user"))).json()
    assert paid["username"] == "paid_user"
    assert paid["is_temp"] is False
    assert paid["email_confirmed"] is True
    assert paid["subscription"]["active"] is True
    assert {"username", "uuid", "email", "email_confirmed", "is_temp"} <= set(paid)
    free = (await client.get("/whoami", headers=auth(state, "free_user"))).json()
    assert "subscription" not in free
    assert free["is_temp"] is False
    temp = (await client.get("/whoami", headers=auth(state, "temp_user"))).json()
    assert temp["is_temp"] is True
    assert temp["email"] is None


# --- GUI host: signup and authme ---------------------------------------------------------


async def test_temporary_signup(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    body = (await client.post("/signup", json={"is_temp": True})).json()
    assert (body["proceed"], body["next_step"], body["user"]["is_temp"]) == (True, "complete", True)
    account = state.account_by_token(body["token"])
    assert account is not None
    assert account.tier is Tier.TEMP
    assert account.credits_microcents == 25_000_000
    who = (await client.get("/whoami", headers={"Authorization": f"Bearer {body['token']}"})).json()
    assert who["username"] == body["user"]["username"] == account.username


async def test_signup_refused_when_a_captcha_is_required(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    state.signup_captcha_required = True
    accounts_before = len(state.accounts)
    response = await client.post("/signup", json={"is_temp": True})
    assert (response.status_code, response.json()["code"]) == (400, "captcha_required")
    assert len(state.accounts) == accounts_before


async def test_authme_redirects_with_a_token(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    params = {"action": "authme", "redirectURL": "http://localhost:5123/?state=abc"}
    response = await client.get("/", params=params)
    assert response.status_code == 302
    assert (
        response.headers["location"]
        == f"http://localhost:5123/?state=abc&token={state.accounts['paid_user'].token}"
    )
    state.authme_account = "temp_user"
    response = await client.get("/", params={"action": "authme", "redirectURL": "http://localhost:5123"})
    assert response.headers["location"] == f"http://localhost:5123?token={state.accounts['temp_user'].token}"
    assert (await client.get("/")).status_code == 200


# --- request log and control routes -------------------------------------------------------


async def test_every_request_is_logged_but_control_routes(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    await chat(client, state, "gpt-5-nano", stream=True)
    await client.get("/puterai/chat/models")
    await client.get("/no/such/route")
    await client.get("/__emulator/requests")
    await client.post("/drivers/call", content=b"junk")
    records = state.requests
    assert [(r.method, r.path, r.status) for r in records] == [
        ("POST", "/drivers/call", 200),
        ("GET", "/puterai/chat/models", 200),
        ("GET", "/no/such/route", 404),
        ("POST", "/drivers/call", 400),
    ]
    first = records[0]
    assert (first.username, first.model, first.model_used, first.stream, first.fault) == (
        "paid_user", "gpt-5-nano", "gpt-5-nano-2025-08-07", True, None)  # fmt: skip
    assert first.driver_method == "complete"
    assert first.time == 1_000.0
    assert records[1].username is None
    state.clear_requests()
    assert state.requests == []


async def test_control_routes(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    created = (await client.post("/__emulator/accounts", json={"username": "bob", "tier": "temporary",
                                                               "credits_usd": 1.5})).json()  # fmt: skip
    assert created["tier"] == "temp"
    assert created["credits_usd"] == 1.5
    bob = {"Authorization": f"Bearer {created['token']}"}
    assert (await client.get("/whoami", headers=bob)).json()["is_temp"] is True
    duplicate = await client.post("/__emulator/accounts", json={"username": "bob"})
    assert duplicate.status_code == 400

    rule = (await client.post("/__emulator/faults", json={"fault": "insufficient_funds", "account": "bob",
                                                          "times": None})).json()  # fmt: skip
    assert rule["fault"] == "insufficient_funds"
    assert rule["times"] is None
    assert len((await client.get("/__emulator/faults")).json()["faults"]) == 1
    for _ in range(2):
        response = await client.post("/drivers/call", json=chat_body("gpt-5-nano"), headers=bob)
        assert response.status_code == 402
    assert (
        await client.post("/drivers/call", json=chat_body("gpt-5-nano"), headers=auth(state))
    ).status_code == 200
    assert (await client.delete("/__emulator/faults")).json() == {"cleared": 1}
    assert (await client.post("/drivers/call", json=chat_body("gpt-5-nano"), headers=bob)).status_code == 200
    bad = await client.post("/__emulator/faults", json={"fault": "meteor_strike"})
    assert bad.status_code == 400
    assert "drop_connection" in bad.json()["error"]

    logged = (await client.get("/__emulator/requests")).json()["requests"]
    assert [(r["username"], r["status"], r["fault"]) for r in logged] == [
        ("bob", 200, None), ("bob", 402, "insufficient_funds"), ("bob", 402, "insufficient_funds"),
        ("paid_user", 200, None), ("bob", 200, None)]  # fmt: skip
    assert (await client.delete("/__emulator/requests")).json() == {"cleared": 5}

    config = (await client.post("/__emulator/config", json={"stream_delay": 0.25, "signup_captcha_required": True,
                                                            "authme_account": "bob"})).json()  # fmt: skip
    assert config == {"stream_delay": 0.25, "signup_captcha_required": True, "authme_account": "bob"}
    assert (state.stream_delay, state.signup_captcha_required, state.authme_account) == (0.25, True, "bob")
    assert (await client.post("/__emulator/config", json={"stream_delay": -1})).status_code == 400


# --- runners -----------------------------------------------------------------------------


def test_emulator_thread_serves_synchronous_clients() -> None:
    state = EmulatorState(seed=1)
    paid = state.seed_default_accounts()[0]
    with EmulatorThread(state) as base_url, httpx2.Client(base_url=base_url, timeout=5) as http:
        assert base_url.startswith("http://127.0.0.1:")
        response = http.get("/whoami", headers={"Authorization": f"Bearer {paid.token}"})
        assert response.json()["username"] == "paid_user"
        # A second server on the same port cannot start, and says so.
        port = int(base_url.rsplit(":", 1)[1])
        with pytest.raises(RuntimeError, match="could not start"):
            EmulatorThread(state, port=port).start()
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{base_url}/puterai/chat/models", timeout=2)


async def test_serve_emulator_reraises_the_callers_own_exception(state: EmulatorState) -> None:
    with pytest.raises(KeyError, match="mine"):
        async with serve_emulator(state):
            raise KeyError("mine")


@contextlib.contextmanager
def emulator_command(*options: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """`python -m puter_mcp.emulator --port 0 --seed 5 OPTIONS`, and the four lines it printed
    (its URL and three tokens); killed on the way out if the test did not stop it."""
    command = [sys.executable, "-m", "puter_mcp.emulator", "--port", "0", "--seed", "5", *options]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            yield proc, dict(proc.stdout.readline().strip().split("=", 1) for _ in range(4))
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.slow
def test_command_prints_url_and_tokens_and_stops_on_ctrl_c() -> None:
    with emulator_command("--seed-credits", "2") as (proc, printed):
        assert set(printed) == {"PUTER_EMULATOR_URL", "PUTER_EMULATOR_TOKEN_PAID", "PUTER_EMULATOR_TOKEN_FREE",
                                "PUTER_EMULATOR_TOKEN_TEMP"}  # fmt: skip
        headers = {"Authorization": f"Bearer {printed['PUTER_EMULATOR_TOKEN_PAID']}"}
        who = httpx2.get(f"{printed['PUTER_EMULATOR_URL']}/whoami", headers=headers, timeout=5).json()
        assert who["username"] == "paid_user"
        assert who["subscription"]["active"] is True
        usage = httpx2.get(
            f"{printed['PUTER_EMULATOR_URL']}/metering/usage", headers=headers, timeout=5
        ).json()
        assert usage["allowanceInfo"]["remaining"] == 2 * MICROCENTS_PER_USD
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


@pytest.mark.slow
def test_the_fast_command_streams_answers_with_httptools_and_uvloop() -> None:
    with emulator_command("--fast") as (proc, printed):
        headers = {"Authorization": f"Bearer {printed['PUTER_EMULATOR_TOKEN_PAID']}"}
        with httpx2.stream(
            "POST",
            f"{printed['PUTER_EMULATOR_URL']}/drivers/call",
            json=chat_body("gpt-5-nano", stream=True),
            headers=headers,
            timeout=5,
        ) as answer:
            assert answer.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in answer.iter_lines() if line]
        assert any(line.get("type") == "text" for line in lines)
        assert lines[-1].get("type") == "usage" or "usage" in lines[-1]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert "--fast needs" not in proc.stderr.read()  # the test extra installs both


def test_providers_cover_both_answer_shapes() -> None:
    assert {spec.shape for spec in PROVIDERS.values()} == {"anthropic", "openai"}
    assert PROVIDERS["fake-chat"].input_cost_key == "input-tokens"


@pytest.mark.parametrize("model", ["gpt-5-nano", "claude-sonnet-4-5"], ids=["openai", "anthropic"])
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_an_answer_cut_by_max_tokens_finishes_with_length(
    backend: Backend, model: str, stream: bool
) -> None:
    long_question = "tell me a long story about otters " * 4
    whole = await backend.chat(ChatCall.build(message=long_question, model=model))
    call = ChatCall.build(message=long_question, model=model, max_tokens=5).model_copy(
        update={"stream": stream}
    )
    cut = await backend.chat(call)
    assert cut.usage.output_tokens == 5
    assert whole.text.startswith(cut.text) and len(cut.text) < len(whole.text)
    assert (whole.finish_reason, cut.finish_reason) == ("stop", "length")
