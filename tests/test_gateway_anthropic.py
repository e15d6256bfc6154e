"""The gateway's Anthropic face, driven by the official `anthropic` client against the emulator.

What reached Puter is read from the emulator's request log; the raw SSE is read with httpx
where the client would hide the framing (block indexes, event order, the error event).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest

from puter_mcp.emulator import Fault
from puter_mcp.gateway import anthropic as anthropic_face
from puter_mcp.gateway.anthropic import decode_signature, encode_signature
from puter_mcp.gateway.keystore import KeyLimits, KeySpec, SQLiteKeyStore, key_store_file
from tests.helpers import Emulator, RunningGateway, running_gateway

CLAUDE = "claude-sonnet-4-5"
CLAUDE_ID = "claude-sonnet-4-5-20250929"  # the id the emulator's catalogue resolves CLAUDE to
GPT = "gpt-5-nano"
GPT_ID = "gpt-5-nano-2025-08-07"
PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER: Any = {
    "name": "weather",
    "description": "Today's weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def served(emulator: Emulator, home: Path) -> Iterator[RunningGateway]:
    with running_gateway(emulator, home, emulator.paid, emulator.free) as gateway:
        emulator.state.clear_requests()
        yield gateway


@pytest.fixture
def client(served: RunningGateway) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=served.url, api_key="sk-ant-unused", max_retries=0) as made:
        yield made


def user(content: Any) -> Any:
    return {"role": "user", "content": content}


def sse(url: str, body: dict[str, Any]) -> tuple[httpx2.Response, list[tuple[str, dict[str, Any]]]]:
    """POST a streamed request; the response and its (event, data) pairs, each checked to be
    framed as Anthropic frames them (an ``event:`` line naming the data's ``type``)."""
    with httpx2.Client(timeout=30) as http:
        response = http.post(f"{url}/v1/messages", json={**body, "stream": True}, headers={"x-api-key": "k"})
        raw = response.text
    events: list[tuple[str, dict[str, Any]]] = []
    if not response.headers["content-type"].startswith("text/event-stream"):
        return response, events
    for chunk in raw.split("\n\n"):
        if not chunk.strip():
            continue
        lines = chunk.split("\n")
        assert len(lines) == 2, chunk
        name = lines[0].removeprefix("event: ")
        data = json.loads(lines[1].removeprefix("data: "))
        assert data["type"] == name
        events.append((name, data))
    return response, events


# --------------------------------------------------------------------------------------------
# Whole messages


def test_a_message_with_a_system_prompt_names_the_model_that_answered(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    message = client.messages.create(
        model=CLAUDE,
        max_tokens=200,
        system=[{"type": "text", "text": "You are terse."}],
        messages=[user("hello there")],
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == CLAUDE_ID
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith(f'[{CLAUDE_ID}] You said: "hello there"')
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_read_input_tokens == 0
    (sent,) = emulator.chat_requests()
    assert sent.messages[0] == {"role": "system", "content": "You are terse."}


def test_headers_name_the_model_that_answered_when_it_is_not_the_name_asked(
    client: anthropic.Anthropic,
) -> None:
    raw = client.messages.with_raw_response.create(model=CLAUDE, max_tokens=50, messages=[user("hi")])
    assert raw.headers["x-puter-model-answered"] == CLAUDE_ID
    assert raw.headers["request-id"].startswith("req_")
    with client.messages.stream(model=CLAUDE, max_tokens=50, messages=[user("hi")]) as stream:
        stream.until_done()
        assert stream.response.headers["x-puter-model-answered"] == CLAUDE_ID
    exact = client.messages.with_raw_response.create(model=CLAUDE_ID, max_tokens=50, messages=[user("hi")])
    assert "x-puter-model-answered" not in exact.headers


def test_an_image_block_reaches_puter_as_an_image_part(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    message = client.messages.create(
        model=CLAUDE,
        max_tokens=200,
        messages=[
            user(
                [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX},
                    },
                    {"type": "text", "text": "what is this?"},
                ]
            )
        ],
    )
    assert message.content[0].type == "text"
    assert "(with 1 image)" in message.content[0].text
    (sent,) = emulator.chat_requests()
    assert sent.messages[-1]["content"][0] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"},
    }


def test_stop_sequences_temperature_and_tool_choice_reach_puter(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    client.messages.create(
        model=CLAUDE,
        max_tokens=100,
        stop_sequences=["END"],
        metadata={"user_id": "someone"},
        # Fields this client version no longer has, as older clients send them.
        extra_body={"temperature": 0.3, "top_k": 5},
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "weather"},
        messages=[user("hi")],
    )
    (sent,) = emulator.chat_requests()
    assert sent.args is not None
    assert (sent.args["stop"], sent.args["temperature"], sent.args["max_tokens"]) == (["END"], 0.3, 100)
    assert sent.args["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert "top_k" not in sent.args and "metadata" not in sent.args


def test_a_tool_use_round_trip(client: anthropic.Anthropic, emulator: Emulator) -> None:
    asked = user('call tool weather with {"city": "Paris"}')
    first = client.messages.create(model=CLAUDE, max_tokens=200, tools=[WEATHER], messages=[asked])
    assert first.stop_reason == "tool_use"
    tool_use = next(block for block in first.content if block.type == "tool_use")
    assert tool_use.name == "weather" and tool_use.input == {"city": "Paris"}

    second = client.messages.create(
        model=CLAUDE,
        max_tokens=200,
        tools=[WEATHER],
        messages=[
            asked,
            {"role": "assistant", "content": first.content},
            user([{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny, 24 C"}]),
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text"
    assert 'The tool returned: "sunny, 24 C"' in second.content[0].text
    sent = emulator.chat_requests()[-1].messages
    assert [message["role"] for message in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["id"] == tool_use.id
    assert sent[2]["tool_call_id"] == tool_use.id


def test_a_thinking_budget_reaches_puter_as_an_effort_and_the_thinking_block_comes_first(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    message = client.messages.create(
        model=CLAUDE,
        max_tokens=8000,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=[user("think about it")],
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.type == "thinking"
    # The emulator reasons aloud about the effort it was asked for: 2048 tokens is medium.
    assert "Reasoning with medium effort" in thinking.thinking
    assert decode_signature(thinking.signature) == (CLAUDE_ID, None)
    (sent,) = emulator.chat_requests()
    assert sent.args is not None
    assert sent.args["reasoning"] == {"effort": "medium"}
    assert "thinking" not in sent.args  # one effort, never a budget beside it


def test_a_signed_thinking_block_goes_back_to_its_own_model_only(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    # A block signed with what the emulator's Claude accepts back (its vendor signature).
    signature = encode_signature(CLAUDE_ID, f"emulator-signature:{CLAUDE_ID}")

    def conversation() -> Any:
        return [
            user("first question"),
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "earlier thoughts", "signature": signature},
                    {"type": "text", "text": "first answer"},
                ],
            },
            user("second question"),
        ]

    client.messages.create(model=CLAUDE, max_tokens=200, messages=conversation())
    to_claude = emulator.chat_requests()[-1].messages[1]["content"]
    assert {
        "type": "thinking",
        "thinking": "earlier thoughts",
        "signature": f"emulator-signature:{CLAUDE_ID}",
    } in (to_claude)

    answered = client.messages.create(model=GPT, max_tokens=200, messages=conversation())
    assert answered.model == GPT_ID
    to_gpt = emulator.chat_requests()[-1].messages[1]["content"]
    assert to_gpt == [{"type": "text", "text": "first answer"}]


def test_a_thinking_block_signed_elsewhere_is_dropped_not_refused(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    message = client.messages.create(
        model=CLAUDE,
        max_tokens=200,
        messages=[
            user("first"),
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "alien", "signature": "EqQBCkYIBxgCKkBforeign"},
                    {"type": "text", "text": "ok"},
                ],
            },
            user("second"),
        ],
    )
    assert message.stop_reason == "end_turn"
    assert emulator.chat_requests()[-1].messages[1]["content"] == [{"type": "text", "text": "ok"}]


def test_count_tokens_answers_an_estimate_without_asking_puter(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    small = client.messages.count_tokens(model=CLAUDE, messages=[user("hi")])
    larger = client.messages.count_tokens(
        model=CLAUDE,
        system="x" * 400,
        tools=[WEATHER],
        messages=[user("hi")],
    )
    assert small.input_tokens > 0
    assert larger.input_tokens >= small.input_tokens + 100
    assert emulator.chat_requests() == []


# --------------------------------------------------------------------------------------------
# Streams


def test_the_stream_helper_accumulates_the_final_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=CLAUDE,
        max_tokens=8000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[user("stream this")],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        headers = stream.response.headers
    assert text.startswith(f'[{CLAUDE_ID}] You said: "stream this"')
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[1].type == "text" and final.content[1].text == text
    assert final.content[0].type == "thinking"
    assert "Reasoning with low effort" in final.content[0].thinking
    assert decode_signature(final.content[0].signature) == (CLAUDE_ID, None)
    assert final.model == CLAUDE_ID
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    assert headers["x-puter-usage"] == "estimated-input"


def test_a_streamed_tool_call_is_a_tool_use_block_with_its_input(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=CLAUDE,
        max_tokens=200,
        tools=[WEATHER],
        messages=[user('call tool weather with {"city": "Rome"}')],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    tool_use = final.content[-1]
    assert tool_use.type == "tool_use"
    assert (tool_use.name, tool_use.input) == ("weather", {"city": "Rome"})


def test_the_raw_stream_is_a_state_machine_with_increasing_block_indexes(served: RunningGateway) -> None:
    response, events = sse(
        served.url,
        {
            "model": CLAUDE,
            "max_tokens": 8000,
            "thinking": {"type": "enabled", "budget_tokens": 5000},
            "tools": [WEATHER],
            "messages": [user('call tool weather with {"city": "Oslo"}')],
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    names = [name for name, _ in events if name != "ping"]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["usage"]["input_tokens"] > 0 and start["content"] == []
    blocks: list[str] = []
    open_index: int | None = None
    delta_types = {"thinking": {"thinking_delta", "signature_delta"}, "text": {"text_delta"}}
    delta_types["tool_use"] = {"input_json_delta"}
    for name, data in events[1:-2]:
        if name == "content_block_start":
            assert open_index is None and data["index"] == len(blocks)
            open_index = data["index"]
            blocks.append(data["content_block"]["type"])
        elif name == "content_block_delta":
            assert data["index"] == open_index
            assert data["delta"]["type"] in delta_types[blocks[-1]]
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
    assert open_index is None
    assert blocks == ["thinking", "text", "tool_use"]
    thinking_deltas = [
        data["delta"]["type"]
        for name, data in events
        if data.get("index") == 0 and name == "content_block_delta"
    ]
    assert thinking_deltas[-1] == "signature_delta"
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"]["output_tokens"] > 0


def test_pings_fill_a_silence_between_events_and_the_message_stays_whole(
    served: RunningGateway, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 1.5 s silence after the first line, against pings every 0.2 s.
    monkeypatch.setattr(anthropic_face, "PING_INTERVAL_S", 0.2)
    emulator.state.add_fault(Fault.STALL_MID_STREAM, model=CLAUDE, after_lines=1, seconds=1.5)
    response, events = sse(served.url, {"model": CLAUDE, "max_tokens": 200, "messages": [user("wait")]})
    assert response.status_code == 200
    names = [name for name, _ in events]
    assert "ping" in names
    first_ping = names.index("ping")
    assert names.index("content_block_start") < first_ping < names.index("content_block_stop")
    assert names[-2:] == ["message_delta", "message_stop"]
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text.startswith(f'[{CLAUDE_ID}] You said: "wait"') and text.endswith("Puter emulator.")


def test_failover_before_the_first_byte_gives_exactly_one_answer(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, model=CLAUDE, account=emulator.paid.username)
    with client.messages.stream(model=CLAUDE, max_tokens=200, messages=[user("once")]) as stream:
        final = stream.get_final_message()
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].type == "text"
    assert final.content[0].text.count("You said") == 1
    assert [(r.username, r.status) for r in emulator.chat_requests()] == [
        (emulator.paid.username, 429),
        (emulator.free.username, 200),
    ]


def test_a_failure_after_the_first_byte_ends_with_an_error_event_and_no_second_request(
    served: RunningGateway, emulator: Emulator
) -> None:
    emulator.state.add_fault(
        Fault.STREAM_ERROR_AFTER_TEXT, model=CLAUDE, times=None, text_lines=2, message="reset by peer"
    )
    response, events = sse(served.url, {"model": CLAUDE, "max_tokens": 200, "messages": [user("break")]})
    assert response.status_code == 200
    names = [name for name, _ in events if name != "ping"]
    assert names[0] == "message_start"
    assert names[-1] == "error"
    assert "message_stop" not in names and "message_delta" not in names
    texts = [data["delta"]["text"] for name, data in events if name == "content_block_delta"]
    assert texts  # the text sent before the failure stands
    error = events[-1][1]["error"]
    assert error["type"] == "overloaded_error"  # a broken stream: the model failed, not the caller
    assert error["message"]
    assert len(emulator.chat_requests()) == 1


def test_the_sdk_raises_the_error_event_of_a_broken_stream(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    emulator.state.add_fault(Fault.STREAM_ERROR_AFTER_TEXT, model=CLAUDE, times=None, text_lines=2)
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model=CLAUDE, max_tokens=200, messages=[user("break")]) as stream,
    ):
        for _ in stream.text_stream:
            pass


def test_a_client_that_disconnects_cancels_the_upstream_request(
    served: RunningGateway, emulator: Emulator
) -> None:
    emulator.state.add_fault(Fault.STALL_MID_STREAM, model=CLAUDE, times=None)
    body = {"model": CLAUDE, "max_tokens": 100, "stream": True, "messages": [user("hi")]}
    with (
        httpx2.Client(timeout=20) as http,
        http.stream("POST", served.url + "/v1/messages", json=body) as response,
    ):
        assert response.status_code == 200
        # Held in a name: a dropped line iterator would close the response at once, and the
        # gateway could cancel the upstream request before the count below is read.
        lines = response.iter_lines()
        next(lines)  # the answer began
        assert emulator.state.in_flight(emulator.paid.username) == 1
    # Closed without reading on: the gateway closes the upstream request.
    assert emulator.all_released(emulator.paid), "the upstream request is still open"


# --------------------------------------------------------------------------------------------
# Errors


def test_an_unknown_model_is_a_404_not_found_error(client: anthropic.Anthropic, emulator: Emulator) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="claude-sonet-4-5", max_tokens=10, messages=[user("hi")])
    assert caught.value.status_code == 404
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert "claude-sonnet-4-5" in body["error"]["message"]
    assert caught.value.response.headers["request-id"].startswith("req_")
    assert emulator.chat_requests() == []


def test_a_missing_max_tokens_is_a_400_invalid_request_error(served: RunningGateway) -> None:
    with httpx2.Client(timeout=30) as http:
        response = http.post(f"{served.url}/v1/messages", json={"model": CLAUDE, "messages": [user("hi")]})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]


def test_a_body_that_is_not_json_is_refused_in_anthropics_shape(served: RunningGateway) -> None:
    with httpx2.Client(timeout=30) as http:
        response = http.post(
            f"{served.url}/v1/messages", content=b"{not json", headers={"anthropic-version": "2099-01-01"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_nobody_left_to_answer_is_a_real_status_before_any_stream(
    served: RunningGateway, emulator: Emulator
) -> None:
    emulator.state.add_fault(Fault.UPSTREAM_PROVIDER_UNAVAILABLE, times=None)  # every model is down
    response, events = sse(served.url, {"model": CLAUDE, "max_tokens": 50, "messages": [user("hi")]})
    assert response.status_code == 503, response.text
    assert events == []
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "overloaded_error"


def test_server_tools_are_refused_naming_them(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model=CLAUDE,
            max_tokens=10,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            messages=[user("search")],
        )
    assert "web_search" in str(caught.value)


def test_keys_go_as_x_api_key_or_bearer_and_refusals_are_in_anthropics_shape(
    emulator: Emulator, home: Path
) -> None:
    with running_gateway(emulator, home, emulator.paid, gateway={"require_keys": True}) as keyed:
        store = SQLiteKeyStore(key_store_file(keyed.paths))
        try:
            _, narrow = store.create_now(KeySpec("narrow", models=(CLAUDE,)), now=time.time())
            _, limited = store.create_now(KeySpec("limited", limits=KeyLimits(rpm=2)), now=time.time())
        finally:
            store.close()
        hello = [user("hi")]
        with anthropic.Anthropic(base_url=keyed.url, api_key=narrow, max_retries=0) as client:
            assert client.messages.create(model=CLAUDE, max_tokens=20, messages=hello).model == CLAUDE_ID
            with pytest.raises(anthropic.PermissionDeniedError) as forbidden:
                client.messages.create(model=GPT, max_tokens=20, messages=hello)
        with anthropic.Anthropic(base_url=keyed.url, auth_token=limited, max_retries=0) as bearer:
            # Counting tokens needs a valid key but spends none of its limit (Claude Code
            # counts before every turn).
            for _ in range(3):
                assert bearer.messages.count_tokens(model=CLAUDE, messages=hello).input_tokens > 0
            assert bearer.messages.create(model=GPT, max_tokens=20, messages=hello).model == GPT_ID
            assert bearer.messages.create(model=CLAUDE, max_tokens=20, messages=hello).model == CLAUDE_ID
            with pytest.raises(anthropic.RateLimitError) as over:
                bearer.messages.create(model=CLAUDE, max_tokens=20, messages=hello)
        # Without a key, a body that is wrong in every way learns only that a key is missing.
        missing = httpx2.post(keyed.url + "/v1/messages", json={"model": 5, "messages": "no"})
    assert forbidden.value.status_code == 403
    assert forbidden.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    assert over.value.status_code == 429
    assert over.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert int(over.value.response.headers["retry-after"]) >= 1
    assert missing.status_code == 401
    assert missing.json()["type"] == "error"
    assert missing.json()["error"]["type"] == "authentication_error"
