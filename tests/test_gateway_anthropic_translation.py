"""The Anthropic face's translation, without a server: requests into calls, events into SSE.

The same code is driven end to end with the official client in tests/test_gateway_anthropic.py;
here each rule is pinned where it is decided.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from anthropic._models import construct_type
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent

from puter_mcp.core import (
    BadRequest,
    ChatOutcome,
    ImagePart,
    ReasoningDelta,
    ReasoningPart,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallRecord,
    UsageInfo,
    UsageUpdate,
)
from puter_mcp.gateway.anthropic import (
    MessageStream,
    decode_signature,
    encode_signature,
    error_type,
    message_body,
    parse_messages_request,
)

PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": list(messages), **extra}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def refused(request: dict[str, Any], **options: bool) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_messages_request(request, **options)
    return caught.value


# --------------------------------------------------------------------------------------------
# Requests


def test_system_blocks_become_one_system_turn_before_the_conversation() -> None:
    parsed = parse_messages_request(
        body(user("hi"), system=[{"type": "text", "text": "one"}, {"type": "text", "text": "two"}])
    )
    assert [(turn.role, turn.text) for turn in parsed.call.messages] == [
        ("system", "one\n\ntwo"),
        ("user", "hi"),
    ]
    assert parsed.call.max_tokens == 64
    assert parsed.stream is False


def test_image_blocks_become_image_parts_by_data_url_or_https_url() -> None:
    parsed = parse_messages_request(
        body(
            user(
                [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                    {"type": "text", "text": "what is this?"},
                ]
            )
        )
    )
    turn = parsed.call.messages[0]
    assert turn.parts == [
        ImagePart(url=f"data:image/png;base64,{PNG_1PX}"),
        ImagePart(url="https://example.com/cat.png"),
        TextPart(text="what is this?"),
    ]


def test_tool_results_become_tool_turns_right_after_the_assistant_turn_in_order() -> None:
    parsed = parse_messages_request(
        body(
            user("weather in Paris and Rome?"),
            assistant(
                [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_b", "name": "weather", "input": {"city": "Rome"}},
                ]
            ),
            user(
                [
                    {"type": "tool_result", "tool_use_id": "toolu_a", "content": "sunny"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_b",
                        "content": [{"type": "text", "text": "timeout"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "thanks"},
                ]
            ),
            tools=[{"name": "weather", "description": "today's weather", "input_schema": {"type": "object"}}],
            tool_choice={"type": "any"},
        )
    )
    roles = [turn.role for turn in parsed.call.messages]
    assert roles == ["user", "assistant", "tool", "tool", "user"]
    made = parsed.call.messages[1]
    assert [(call.id, call.parsed_arguments()) for call in made.tool_calls] == [
        ("toolu_a", {"city": "Paris"}),
        ("toolu_b", {"city": "Rome"}),
    ]
    first, second = parsed.call.messages[2:4]
    assert (first.tool_call_id, first.content) == ("toolu_a", "sunny")
    assert second.tool_call_id == "toolu_b"
    assert second.content == "[tool error] timeout"
    assert parsed.call.tool_choice == "required"
    assert parsed.call.tools[0].description == "today's weather"


def test_images_a_tool_returned_go_to_a_user_turn_after_the_tool_turns() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX}}
    parsed = parse_messages_request(
        body(
            user("take a screenshot"),
            assistant([{"type": "tool_use", "id": "toolu_s", "name": "shot", "input": {}}]),
            user([{"type": "tool_result", "tool_use_id": "toolu_s", "content": [image]}]),
            tools=[{"name": "shot", "input_schema": {"type": "object"}}],
        )
    )
    tool_turn, user_turn = parsed.call.messages[2:]
    assert tool_turn.role == "tool" and tool_turn.content == "(the tool returned images)"
    assert user_turn.role == "user"
    assert user_turn.images == [ImagePart(url=f"data:image/png;base64,{PNG_1PX}")]


def test_a_thinking_budget_becomes_an_effort_and_disabled_thinking_none() -> None:
    def effort(thinking: dict[str, Any]) -> str | None:
        return parse_messages_request(body(user("hi"), thinking=thinking)).call.reasoning_effort

    assert effort({"type": "enabled", "budget_tokens": 1024}) == "low"
    assert effort({"type": "enabled", "budget_tokens": 4000}) == "medium"
    assert effort({"type": "enabled", "budget_tokens": 16000}) == "high"
    assert effort({"type": "disabled"}) is None
    assert effort({"type": "adaptive"}) is None
    assert effort({"type": "between_tools"}) is None


@pytest.mark.parametrize(
    ("thinking", "output_effort", "expected"),
    [
        ({"type": "adaptive"}, "low", "low"),
        ({"type": "adaptive"}, "max", "high"),
        (None, "xhigh", "high"),
        ({"type": "disabled"}, "medium", None),
        # A budget wins: Puter gets one effort, never two that could disagree.
        ({"type": "enabled", "budget_tokens": 1024}, "high", "low"),
    ],
)
def test_output_config_effort_is_the_effort_unless_thinking_says_otherwise(
    thinking: dict[str, Any] | None, output_effort: str, expected: str | None
) -> None:
    extra: dict[str, Any] = {"output_config": {"effort": output_effort}}
    if thinking is not None:
        extra["thinking"] = thinking
    assert parse_messages_request(body(user("hi"), **extra)).call.reasoning_effort == expected


def test_a_signed_thinking_block_comes_back_as_reasoning_of_its_model_and_a_foreign_one_is_dropped() -> None:
    ours = encode_signature("claude-sonnet-4-5-20250929", "upstream-sig")
    parsed = parse_messages_request(
        body(
            user("hi"),
            assistant(
                [
                    {"type": "thinking", "thinking": "mine", "signature": ours},
                    {"type": "thinking", "thinking": "theirs", "signature": "EqQBCkYIBxgCKkD..."},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "hello"},
                ]
            ),
            user("again"),
        )
    )
    assert parsed.call.messages[1].parts == [
        ReasoningPart(text="mine", model="claude-sonnet-4-5-20250929", signature="upstream-sig"),
        TextPart(text="hello"),
    ]


def test_an_assistant_turn_left_empty_by_dropped_thinking_is_left_out() -> None:
    parsed = parse_messages_request(
        body(
            user("hi"),
            assistant([{"type": "thinking", "thinking": "x", "signature": "foreign"}]),
            user("again"),
        )
    )
    assert [turn.role for turn in parsed.call.messages] == ["user", "user"]


@pytest.mark.parametrize(
    "signature",
    [None, "", "foreign", "pmx1.", "pmx1.!!!", encode_signature("m")[:-3] + "@@@", "pmx1.bnVsbA"],
)
def test_a_signature_that_does_not_decode_is_none(signature: Any) -> None:
    assert decode_signature(signature) is None


def test_a_signature_round_trips_with_and_without_an_upstream_signature() -> None:
    assert decode_signature(encode_signature("gpt-5", "abc")) == ("gpt-5", "abc")
    assert decode_signature(encode_signature("gpt-5")) == ("gpt-5", None)


def test_max_tokens_is_required_except_when_counting() -> None:
    request = {"model": "claude-sonnet-4-5", "messages": [user("hi")]}
    error = refused(request)
    assert error.argument == "max_tokens"
    assert parse_messages_request(request, counting=True).call.max_tokens is None


@pytest.mark.parametrize(
    ("extra", "argument"),
    [
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": True}, "top_p"),
        ({"stream": "yes"}, "stream"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 12.0}, "max_tokens"),
        ({"stop_sequences": "END"}, "stop_sequences"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"thinking": {"type": 1}}, "thinking.type"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"metadata": "me"}, "metadata"),
        ({"system": [{"type": "image"}]}, "system.0.type"),
        ({"model": 5}, "model"),
    ],
)
def test_known_fields_of_the_wrong_type_are_refused_naming_them(extra: dict[str, Any], argument: str) -> None:
    assert refused(body(user("hi"), **extra)).argument == argument


def test_unknown_fields_and_accepted_extras_are_ignored() -> None:
    parsed = parse_messages_request(
        body(user("hi"), top_k=5, top_p=0.9, metadata={"user_id": "u"}, service_tier="auto", betas=["x"])
    )
    assert parsed.call.messages[0].text == "hi"


def test_a_tool_choice_without_tools_is_dropped_unless_it_asks_for_a_call() -> None:
    assert parse_messages_request(body(user("hi"), tool_choice={"type": "none"})).call.tool_choice is None
    assert parse_messages_request(body(user("hi"), tool_choice={"type": "auto"})).call.tool_choice is None
    assert "no `tools`" in str(refused(body(user("hi"), tool_choice={"type": "any"})))


def test_server_tools_are_refused_naming_them() -> None:
    error = refused(
        body(user("hi"), tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}])
    )
    assert error.argument == "tools"
    assert "web_search (web_search_20250305)" in str(error)


@pytest.mark.parametrize(
    ("message", "argument"),
    [
        (user([{"type": "document", "source": {}}]), "messages.0.content.0.type"),
        (
            user([{"type": "image", "source": {"type": "file", "file_id": "f"}}]),
            "messages.0.content.0.source.type",
        ),
        (
            user([{"type": "image", "source": {"type": "url", "url": "http://plain.example/x.png"}}]),
            "messages.0.content.0.source",
        ),
        ({"role": "system", "content": "x"}, "messages.0.role"),
    ],
)
def test_blocks_this_gateway_cannot_send_are_refused_where_they_are(
    message: dict[str, Any], argument: str
) -> None:
    assert refused(body(message)).argument == argument


def test_the_core_still_checks_the_conversation() -> None:
    # A tool result answering a call no assistant turn made.
    error = refused(body(user([{"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}])))
    assert "toolu_x" in str(error)


# --------------------------------------------------------------------------------------------
# Answers


def outcome(**fields: Any) -> ChatOutcome:
    defaults: dict[str, Any] = {
        "model_requested": "claude-sonnet-4-5",
        "model": "claude-sonnet-4-5-20250929",
        "account": "paid",
        "text": "",
        "finish_reason": "stop",
        "usage": UsageInfo(input_tokens=11, output_tokens=7, total_tokens=18),
    }
    return ChatOutcome(**(defaults | fields))


def test_a_whole_answer_is_a_message_with_thinking_text_and_tool_use_in_that_order() -> None:
    answer = outcome(
        text="calling",
        reasoning="thinking it over",
        finish_reason="tool_calls",
        tool_calls=[ToolCallRecord(id="toolu_1", name="get", arguments={"a": 1}, arguments_json='{"a":1}')],
    )
    message, estimated = message_body(answer, message_id="msg_1", input_estimate=99)
    assert not estimated
    assert [block["type"] for block in message["content"]] == ["thinking", "text", "tool_use"]
    assert decode_signature(message["content"][0]["signature"]) == ("claude-sonnet-4-5-20250929", None)
    assert message["content"][2] == {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"a": 1}}
    assert message["stop_reason"] == "tool_use"
    assert message["model"] == "claude-sonnet-4-5-20250929"
    assert message["usage"] == {
        "input_tokens": 11,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 7,
    }


@pytest.mark.parametrize(
    ("finish", "reason"), [("stop", "end_turn"), ("length", "max_tokens"), (None, "end_turn")]
)
def test_finish_reasons_become_stop_reasons(finish: str | None, reason: str) -> None:
    message, _ = message_body(outcome(text="x", finish_reason=finish), message_id="m", input_estimate=1)
    assert message["stop_reason"] == reason


def test_an_answer_without_usage_reports_estimates_and_says_so() -> None:
    message, estimated = message_body(
        outcome(text="x" * 40, usage=UsageInfo()), message_id="m", input_estimate=33
    )
    assert estimated
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (33, 10)


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) per SSE event, checking that each event's name is its data's type."""
    events: list[tuple[str, dict[str, Any]]] = []
    for chunk in raw.decode().split("\n\n"):
        if not chunk:
            continue
        name_line, data_line = chunk.split("\n")
        name = name_line.removeprefix("event: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        events.append((name, data))
    return events


def run_stream(*events: Any, finished: ChatOutcome | None) -> bytes:
    stream = MessageStream(message_id="msg_x", model="claude-sonnet-4-5-20250929", input_estimate=21)
    raw = stream.start()
    for event in events:
        raw += stream.feed(event)
    return raw + stream.finish(finished)


def test_interleaved_reasoning_text_and_tool_calls_open_a_new_block_per_change_of_kind() -> None:
    raw = run_stream(
        ReasoningDelta("plan "),
        ReasoningDelta("more"),
        TextDelta("Hello "),
        ReasoningDelta("again"),
        TextDelta("world"),
        ToolCallDelta(0, "toolu_1", "get", '{"a":'),
        ToolCallDelta(0, None, None, "1}"),
        ToolCallDelta(1, "toolu_2", "put", "{}"),
        UsageUpdate(30, 12),
        finished=outcome(text="Hello world", finish_reason="tool_calls"),
    )
    events = sse_events(raw)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    blocks: list[tuple[int, str]] = []
    open_index: int | None = None
    for name, data in events[1:-2]:
        if name == "content_block_start":
            assert open_index is None
            open_index = int(data["index"])
            blocks.append((open_index, data["content_block"]["type"]))
        elif name == "content_block_delta":
            assert data["index"] == open_index
            kind = blocks[-1][1]
            allowed = {
                "thinking": {"thinking_delta", "signature_delta"},
                "text": {"text_delta"},
                "tool_use": {"input_json_delta"},
            }[kind]
            assert data["delta"]["type"] in allowed
        else:
            assert name == "content_block_stop" and data["index"] == open_index
            open_index = None
    assert open_index is None
    assert blocks == [
        (0, "thinking"),
        (1, "text"),
        (2, "thinking"),
        (3, "text"),
        (4, "tool_use"),
        (5, "tool_use"),
    ]
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"] == {"input_tokens": 11, "output_tokens": 7}  # the outcome's, the real ones
    assert events[0][1]["message"]["usage"]["input_tokens"] == 21  # the estimate


def test_the_sdk_accumulates_the_stream_into_the_same_message_as_a_whole_answer() -> None:
    raw = run_stream(
        ReasoningDelta("plan"),
        TextDelta("Hello "),
        TextDelta("world"),
        ToolCallDelta(0, "toolu_1", "get", '{"a": 1}'),
        finished=outcome(text="Hello world", reasoning="plan", finish_reason="tool_calls"),
    )
    snapshot = None
    buffers: dict[int, bytes] = {}
    for _, data in sse_events(raw):
        event = construct_type(type_=RawMessageStreamEvent, value=data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[arg-type]
    assert snapshot is not None
    message: Any = snapshot.to_dict()
    assert [block["type"] for block in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["content"][0]["thinking"] == "plan"
    assert decode_signature(message["content"][0]["signature"]) == ("claude-sonnet-4-5-20250929", None)
    assert message["content"][1]["text"] == "Hello world"
    assert message["content"][2]["input"] == {"a": 1}
    assert message["stop_reason"] == "tool_use"
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (11, 7)


def test_without_reported_usage_the_stream_ends_with_estimates() -> None:
    raw = run_stream(TextDelta("x" * 40), finished=None)
    final = sse_events(raw)[-2][1]
    assert final["usage"] == {"input_tokens": 21, "output_tokens": 10}
    assert final["delta"]["stop_reason"] == "end_turn"


def test_a_failure_is_one_error_event() -> None:
    assert sse_events(MessageStream.fail("overloaded_error", "model down")) == [
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "model down"}})
    ]


@pytest.mark.parametrize(
    ("status", "category", "kind"),
    [
        (400, None, "invalid_request_error"),
        (401, None, "authentication_error"),
        (403, None, "permission_error"),
        (404, None, "not_found_error"),
        (413, None, "request_too_large"),
        (429, None, "rate_limit_error"),
        (500, None, "api_error"),
        (503, None, "overloaded_error"),
        (529, None, "overloaded_error"),
        (502, "overloaded", "overloaded_error"),
        (422, None, "invalid_request_error"),
    ],
)
def test_error_types_follow_the_status(status: int, category: str | None, kind: str) -> None:
    assert error_type(status, category) == kind
