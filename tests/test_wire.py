"""wire.py: the request body, both answer shapes, every usage spelling, every stream line type."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from puter_mcp.puter.errors import FailureKind, PuterError
from puter_mcp.puter.wire import (
    ChatAccumulator,
    ChatMessage,
    ChatRequest,
    ChatResult,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
    UsageEvent,
    effort_from_thinking_budget,
    error_from_body,
    events_from_result,
    json_body,
    normalise_finish_reason,
    parse_chat_answer,
    parse_stream_line,
    parse_usage,
)

K = FailureKind


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


# ----------------------------------------------------------------------------- requests


class TestDriverCall:
    def test_minimal_body(self) -> None:
        request = ChatRequest(messages=[user("hi")], model="claude-sonnet-latest")
        assert request.to_driver_call(stream=False) == {
            "interface": "puter-chat-completion",
            "driver": "ai-chat",
            "method": "complete",
            "args": {
                "messages": [{"role": "user", "content": "hi"}],
                "model": "claude-sonnet-latest",
                "stream": False,
            },
        }

    def test_every_option(self) -> None:
        tool = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {}}}
        request = ChatRequest(
            messages=[
                ChatMessage(role="system", content="be brief"),
                ChatMessage(role="user", content=[{"type": "text", "text": "look"}]),
                ChatMessage(
                    role="assistant",
                    content="",
                    tool_calls=[
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                ),
                ChatMessage(role="tool", content="42", tool_call_id="c1"),
            ],
            model="gpt-5-nano",
            temperature=0.2,
            max_tokens=100,
            reasoning_effort="medium",
            tools=[tool],
            provider="openai-completion",
        )
        args = request.to_driver_call(stream=True)["args"]
        assert args == {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "look"}]},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "content": "42", "tool_call_id": "c1"},
            ],
            "model": "gpt-5-nano",
            "stream": True,
            "max_tokens": 100,
            "temperature": 0.2,
            "tools": [tool],
            "reasoning": {"effort": "medium"},
            "provider": "openai-completion",
        }
        json.dumps(args)  # the body must be JSON as it is

    def test_no_reasoning_without_an_effort(self) -> None:
        args = ChatRequest(messages=[user("x")], model="m").to_driver_call(stream=False)["args"]
        assert "reasoning" not in args
        assert "reasoning_effort" not in args
        assert "thinking" not in args

    @pytest.mark.parametrize(
        "bad",
        [
            {"messages": [], "model": "m"},
            {"messages": [{"role": "robot", "content": "x"}], "model": "m"},
            {"messages": [{"role": "user", "content": "x"}], "model": ""},
            {"messages": [{"role": "user", "content": "x"}], "model": "m", "reasoning_effort": "max"},
            {"messages": [{"role": "user", "content": "x"}], "model": "m", "max_tokens": 0},
        ],
    )
    def test_invalid_requests_are_refused_before_sending(self, bad: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            ChatRequest.model_validate(bad)


@pytest.mark.parametrize(
    ("budget", "effort"),
    [(0, "low"), (1024, "low"), (1025, "medium"), (4096, "medium"), (4097, "high"), (32000, "high")],
)
def test_thinking_budget_to_effort(budget: int, effort: str) -> None:
    assert effort_from_thinking_budget(budget) == effort


# ----------------------------------------------------------------------------- usage


class TestUsage:
    def test_anthropic_spelling_adds_cache_reads_and_writes_back(self) -> None:
        usage = parse_usage(
            {
                "input_tokens": 10,
                "ephemeral_5m_input_tokens": 3,
                "ephemeral_1h_input_tokens": 2,
                "cache_read_input_tokens": 5,
                "output_tokens": 7,
                "thinking_tokens": 4,
                "usd_cents": 0.12,
            }
        )
        assert usage == Usage(input_tokens=20, output_tokens=7, cached_tokens=5, reasoning_tokens=4)
        assert usage.total_tokens == 27

    def test_openai_spelling(self) -> None:
        usage = parse_usage(
            {"prompt_tokens": 12, "completion_tokens": 30, "cached_tokens": 8, "usd_cents": 0}
        )
        assert usage == Usage(input_tokens=20, output_tokens=30, cached_tokens=8)
        assert usage.total_tokens == 50

    def test_openrouter_spelling(self) -> None:
        usage = parse_usage(
            {"prompt": 9, "completion": 4, "input_cache_read": 1, "request": 1, "usd_cents": 0}
        )
        assert usage == Usage(input_tokens=10, output_tokens=4, cached_tokens=1)
        assert usage.total_tokens == 14

    def test_raw_vendor_openai_usage_already_counts_its_cache(self) -> None:
        usage = parse_usage(
            {
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "prompt_tokens_details": {"cached_tokens": 60},
                "completion_tokens_details": {"reasoning_tokens": 15},
            }
        )
        assert usage == Usage(input_tokens=100, output_tokens=20, cached_tokens=60, reasoning_tokens=15)

    def test_anthropic_raw_cache_creation(self) -> None:
        usage = parse_usage({"input_tokens": 1, "cache_creation_input_tokens": 2, "output_tokens": 3})
        assert usage.input_tokens == 3

    @pytest.mark.parametrize("raw", [None, [], "x", {}, {"input_tokens": None, "output_tokens": "lots"}])
    def test_missing_or_garbage_counts_as_zero(self, raw: Any) -> None:
        assert parse_usage(raw) == Usage()

    def test_total_is_serialised(self) -> None:
        assert Usage(input_tokens=1, output_tokens=2).model_dump()["total_tokens"] == 3


# ----------------------------------------------------------------------------- answers


def envelope(result: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "success": True,
        "service": {"name": "ai-chat"},
        "result": result,
        "metadata": metadata,
    }


ANTHROPIC_ANSWER = envelope(
    {
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                {"type": "text", "text": "I'll check. "},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}},
                {"type": "text", "text": "One moment."},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 999, "output_tokens": 999},
        },
        "usage": {
            "input_tokens": 20,
            "ephemeral_5m_input_tokens": 0,
            "ephemeral_1h_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 30,
            "thinking_tokens": 0,
            "usd_cents": 0.051,
        },
        "finish_reason": "stop",
        "via_ai_chat_service": True,
    },
    service_used="claude",
    providerUsed="claude-sonnet-4-5-20250929",
)


def openai_answer(message: dict[str, Any], finish: str = "stop", **metadata: Any) -> dict[str, Any]:
    return envelope(
        {
            "index": 0,
            "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
            "logprobs": None,
            "finish_reason": finish,
            "usage": {"prompt_tokens": 5, "completion_tokens": 6, "cached_tokens": 0, "usd_cents": 0.002},
        },
        **metadata,
    )


class TestAnthropicShape:
    def test_everything_is_read(self) -> None:
        result = parse_chat_answer(ANTHROPIC_ANSWER, requested_model="claude-sonnet-latest")
        assert result.cost_usd == pytest.approx(0.00051)
        assert result.model_copy(update={"cost_usd": None}) == ChatResult(
            text="I'll check. One moment.",
            reasoning="Let me think.",
            tool_calls=[ToolCall(id="toolu_1", name="weather", arguments={"city": "Oslo"})],
            finish_reason="tool_calls",  # the real reason, not result.finish_reason
            usage=Usage(input_tokens=20, output_tokens=30),
            model="claude-sonnet-4-5-20250929",
            provider="claude",
        )

    @pytest.mark.parametrize(
        ("stop_reason", "finish"),
        [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("stop_sequence", "stop"),
            ("pause_turn", "pause_turn"),
        ],
    )
    def test_stop_reasons(self, stop_reason: str, finish: str) -> None:
        body = json.loads(json.dumps(ANTHROPIC_ANSWER))
        body["result"]["message"]["stop_reason"] = stop_reason
        assert parse_chat_answer(body).finish_reason == finish

    def test_model_falls_back_on_the_message(self) -> None:
        body = json.loads(json.dumps(ANTHROPIC_ANSWER))
        body["metadata"] = {}
        result = parse_chat_answer(body)
        assert result.model == "claude-sonnet-4-5-20250929"
        assert result.provider is None

    def test_test_models_have_no_cost(self) -> None:
        body = envelope(
            {
                "message": {
                    "type": "message",
                    "model": "fake",
                    "content": [{"type": "text", "text": "Lorem ipsum."}],
                    "stop_reason": "end_turn",
                },
                "usage": {"input_tokens": 0, "output_tokens": 1, "usd_cents": None},
                "finish_reason": "stop",
            },
            service_used="fake-chat",
            providerUsed="fake",
        )
        result = parse_chat_answer(body, requested_model="fake")
        assert result.text == "Lorem ipsum."
        assert result.cost_usd is None
        assert result.model == "fake"


class TestOpenAIShape:
    def test_text_answer(self) -> None:
        body = openai_answer(
            {"content": "Hello!"},
            service_used="openai-completion",
            providerUsed="gpt-5-nano-2025-08-07",
        )
        result = parse_chat_answer(body, requested_model="gpt-5-nano")
        assert result.text == "Hello!"
        assert result.finish_reason == "stop"
        assert result.model == "gpt-5-nano-2025-08-07"
        assert result.provider == "openai-completion"
        assert result.usage == Usage(input_tokens=5, output_tokens=6)
        assert result.cost_usd == pytest.approx(0.00002)
        assert result.tool_calls == []
        assert result.reasoning is None

    def test_tool_calls_with_json_string_arguments(self) -> None:
        body = openai_answer(
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a": 1}'},
                    },
                    {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
                ],
            },
            finish="tool_calls",
        )
        result = parse_chat_answer(body)
        assert result.text == ""
        assert result.tool_calls == [
            ToolCall(id="call_1", name="add", arguments={"a": 1}),
            ToolCall(id="call_2", name="now", arguments={}),
        ]
        assert result.finish_reason == "tool_calls"

    @pytest.mark.parametrize("arguments", ['{"a": 1', "[1, 2]", "not json"])
    def test_arguments_that_are_not_a_json_object_are_a_clear_error(self, arguments: str) -> None:
        body = openai_answer(
            {
                "content": None,
                "tool_calls": [{"id": "c", "function": {"name": "add", "arguments": arguments}}],
            }
        )
        with pytest.raises(PuterError) as caught:
            parse_chat_answer(body)
        assert caught.value.kind is K.BAD_REQUEST
        assert "'add'" in caught.value.message
        assert "not a JSON object" in caught.value.message

    @pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
    def test_reasoning(self, field: str) -> None:
        result = parse_chat_answer(openai_answer({"content": "4", field: "2+2"}))
        assert result.reasoning == "2+2"

    def test_content_as_parts(self) -> None:
        body = openai_answer(
            {"content": [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}]}
        )
        assert parse_chat_answer(body).text == "ab"

    def test_length(self) -> None:
        assert parse_chat_answer(openai_answer({"content": "cut"}, finish="length")).finish_reason == "length"

    def test_openrouter_usage(self) -> None:
        body = openai_answer({"content": "hi"}, service_used="openrouter", providerUsed="openrouter:x/y:free")
        body["result"]["usage"] = {
            "prompt": 3,
            "completion": 2,
            "input_cache_read": 0,
            "request": 1,
            "usd_cents": 0,
        }
        result = parse_chat_answer(body)
        assert result.usage.total_tokens == 5
        assert result.cost_usd == 0.0


class TestDisguisedFailures:
    def test_v1_success_false_keeps_the_status_it_names(self) -> None:
        body = {
            "success": False,
            "error": {
                "code": "insufficient_funds",
                "message": "No usage left for request.",
                "status": 402,
                "delegate": "usage-limited-chat",
            },
        }
        with pytest.raises(PuterError) as caught:
            parse_chat_answer(body)
        assert (caught.value.kind, caught.value.status, caught.value.code) == (
            K.OUT_OF_CREDITS,
            402,
            "insufficient_funds",
        )

    def test_flagged_usage_limited(self) -> None:
        body = openai_answer({"content": "You have reached your AI usage limit"}, usage_limited=True)
        with pytest.raises(PuterError) as caught:
            parse_chat_answer(body, requested_model="gpt-5-nano")
        assert caught.value.kind is K.OUT_OF_CREDITS

    @pytest.mark.parametrize(
        ("model", "service"),
        [("usage-limited", "usage-limited-chat"), ("usage-limited", None), (None, "usage-limited-chat")],
    )
    def test_answered_by_the_usage_limited_stand_in(self, model: str | None, service: str | None) -> None:
        metadata = {
            key: value for key, value in (("providerUsed", model), ("service_used", service)) if value
        }
        body = envelope(
            {
                "message": {
                    "type": "message",
                    "content": [
                        {"type": "text", "text": "You have reached your AI usage limit for this account."}
                    ],
                    "stop_reason": "end_turn",
                },
                "usage": {"input_tokens": 0, "output_tokens": 1},
                "finish_reason": "stop",
            },
            **metadata,
        )
        with pytest.raises(PuterError) as caught:
            parse_chat_answer(body, requested_model="claude-sonnet-latest")
        assert caught.value.kind is K.OUT_OF_CREDITS

    @pytest.mark.parametrize("stand_in", ["fake", "abuse"])
    def test_stand_in_model_when_another_was_asked(self, stand_in: str) -> None:
        body = envelope(
            {
                "message": {
                    "type": "message",
                    "model": stand_in,
                    "content": [{"type": "text", "text": "<h2>Free"}],
                },
                "usage": {"input_tokens": 0, "output_tokens": 1, "usd_cents": None},
                "finish_reason": "stop",
            },
            service_used="fake-chat",
            providerUsed=stand_in,
        )
        with pytest.raises(PuterError) as caught:
            parse_chat_answer(body, requested_model="gpt-5-nano")
        assert caught.value.kind is K.BAD_REQUEST
        assert "replaced" in caught.value.message
        assert "gpt-5-nano" in caught.value.message

    def test_asking_for_the_test_model_is_fine(self) -> None:
        body = envelope(
            {
                "message": {"type": "message", "model": "abuse", "content": [{"type": "text", "text": "x"}]},
                "usage": {},
            },
            providerUsed="abuse",
        )
        assert parse_chat_answer(body, requested_model="ABUSE").text == "x"

    @pytest.mark.parametrize("body", [None, [], "text", {"success": True}, {"success": True, "result": "x"}])
    def test_unreadable_bodies_are_transport_failures(self, body: Any) -> None:
        with pytest.raises(PuterError) as caught:
            parse_chat_answer(body)
        assert caught.value.kind is K.TRANSPORT


def test_error_from_body_uses_the_v2_status() -> None:
    error = error_from_body(429, {"code": "too_many_requests", "message": "Too many requests."})
    assert (error.kind, error.status, error.code, error.message) == (
        K.RATE_LIMITED,
        429,
        "too_many_requests",
        "Too many requests.",
    )


def test_error_from_body_without_json() -> None:
    error = error_from_body(502, None)
    assert (error.kind, error.status, error.code) == (K.TRANSPORT, 502, None)


@pytest.mark.parametrize(
    ("reason", "finish"), [(None, None), ("", None), (3, None), ("refusal", "content_filter")]
)
def test_normalise_finish_reason(reason: Any, finish: str | None) -> None:
    assert normalise_finish_reason(reason) == finish


# ----------------------------------------------------------------------------- stream lines


def assert_event_nothing_or_puter_error(line: str | bytes) -> None:
    """The only outcomes a stream line may have: no other exception may escape the parser."""
    outcome: object
    try:
        outcome = parse_stream_line(line)
    except PuterError as error:
        outcome = error
    if isinstance(outcome, PuterError):
        assert isinstance(outcome.kind, FailureKind)
        assert outcome.message
    else:
        assert outcome is None or isinstance(outcome, TextDelta | ReasoningDelta | ToolCallEvent | UsageEvent)


class TestStreamLines:
    def test_text(self) -> None:
        assert parse_stream_line(b'{"type":"text","text":"Hel"}') == TextDelta("Hel")

    def test_text_with_extra_content_is_still_text(self) -> None:
        assert parse_stream_line('{"type":"text","text":"a","extra_content":{"x":1}}') == TextDelta("a")

    def test_reasoning(self) -> None:
        assert parse_stream_line('{"type":"reasoning","reasoning":"hmm"}') == ReasoningDelta("hmm")

    def test_tool_use(self) -> None:
        line = '{"type":"tool_use","id":"t1","name":"f","input":{"q":"puter"},"text":""}'
        assert parse_stream_line(line) == ToolCallEvent(ToolCall(id="t1", name="f", arguments={"q": "puter"}))

    def test_tool_use_with_string_input(self) -> None:
        line = json.dumps({"type": "tool_use", "id": "t1", "name": "f", "input": '{"n": 2}'})
        event = parse_stream_line(line)
        assert isinstance(event, ToolCallEvent)
        assert event.call.arguments == {"n": 2}

    def test_usage(self) -> None:
        line = '{"type":"usage","usage":{"input_tokens":3,"output_tokens":4,"usd_cents":1.5}}'
        assert parse_stream_line(line) == UsageEvent(Usage(input_tokens=3, output_tokens=4), 0.015, None)

    def test_usage_with_stop_fields(self) -> None:
        line = json.dumps(
            {
                "type": "usage",
                "usage": {"prompt_tokens": 1},
                "stopReason": "tool_use",
                "finish_reason": "tool_calls",
            }
        )
        event = parse_stream_line(line)
        assert isinstance(event, UsageEvent)
        assert event.finish_reason == "tool_calls"
        line = json.dumps({"type": "usage", "usage": {}, "stopReason": "max_tokens"})
        event = parse_stream_line(line)
        assert isinstance(event, UsageEvent)
        assert event.finish_reason == "length"
        assert event.cost_usd is None

    def test_usage_flagged_usage_limited(self) -> None:
        line = json.dumps({"type": "usage", "usage": {"tokens": 1}, "metadata": {"usage_limited": True}})
        with pytest.raises(PuterError) as caught:
            parse_stream_line(line)
        assert caught.value.kind is K.OUT_OF_CREDITS

    @pytest.mark.parametrize(
        "line",
        [
            '{"type":"extra_content","extra_content":{"tag":"gemini"}}',
            '{"type":"compaction","summary":"..."}',
            '{"type":"image","url":"data:..."}',
            '{"type":"tool_use_start","id":"t","name":"f"}',
            '{"type":"brand_new_thing"}',
            '{"no_type":true}',
            '{"type":"text","text":""}',
            "",
            "   ",
            b"\r",
        ],
    )
    def test_lines_with_nothing_for_us(self, line: str | bytes) -> None:
        assert parse_stream_line(line) is None

    def test_error_line_from_the_vendor(self) -> None:
        message = '429 {"type":"error","error":{"type":"rate_limit_error","message":"slow"}}'
        with pytest.raises(PuterError) as caught:
            parse_stream_line(json.dumps({"type": "error", "message": message}))
        assert (caught.value.kind, caught.value.status, caught.value.message) == (K.MODEL_DOWN, 429, message)

    def test_error_line_without_a_status(self) -> None:
        with pytest.raises(PuterError) as caught:
            parse_stream_line('{"type":"error","message":"socket hang up"}')
        assert (caught.value.kind, caught.value.status) == (K.TRANSPORT, None)

    def test_error_line_without_a_message(self) -> None:
        with pytest.raises(PuterError) as caught:
            parse_stream_line('{"type":"error"}')
        assert caught.value.kind is K.TRANSPORT
        assert caught.value.message

    @pytest.mark.parametrize("line", ['{"type":"text","te', "<html>", b"\xff\xfe", "[1,2]", "42", '"text"'])
    def test_garbage_is_a_transport_failure(self, line: str | bytes) -> None:
        with pytest.raises(PuterError) as caught:
            parse_stream_line(line)
        assert caught.value.kind is K.TRANSPORT

    @given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
    def test_any_line_gives_an_event_nothing_or_a_puter_error(self, line: str | bytes) -> None:
        assert_event_nothing_or_puter_error(line)

    @given(
        st.dictionaries(
            st.sampled_from(
                ["type", "text", "reasoning", "input", "usage", "message", "name", "id", "metadata"]
            ),
            st.one_of(
                st.none(),
                st.booleans(),
                st.integers(),
                st.text(max_size=20),
                st.sampled_from(["text", "reasoning", "tool_use", "usage", "error"]),
                st.dictionaries(st.text(max_size=10), st.integers(), max_size=3),
            ),
            max_size=6,
        )
    )
    def test_any_object_gives_an_event_nothing_or_a_puter_error(self, data: dict[str, Any]) -> None:
        assert_event_nothing_or_puter_error(json.dumps(data))


# ----------------------------------------------------------------------------- accumulation


class TestAccumulator:
    def test_folds_a_stream(self) -> None:
        accumulator = ChatAccumulator()
        assert not accumulator.usage_seen
        call = ToolCall(id="t", name="f", arguments={})
        accumulator.extend(
            [
                ReasoningDelta("thinking "),
                ReasoningDelta("hard"),
                TextDelta("Hel"),
                TextDelta("lo"),
                ToolCallEvent(call),
            ]
        )
        assert accumulator.text == "Hello"
        assert not accumulator.usage_seen
        accumulator.feed(UsageEvent(Usage(input_tokens=1, output_tokens=2), 0.5))
        assert accumulator.usage_seen
        result = accumulator.result(model="m", provider="p")
        assert result == ChatResult(
            text="Hello",
            reasoning="thinking hard",
            tool_calls=[call],
            finish_reason="tool_calls",
            usage=Usage(input_tokens=1, output_tokens=2),
            cost_usd=0.5,
            model="m",
            provider="p",
        )

    def test_unfinished_stream_has_no_finish_reason(self) -> None:
        accumulator = ChatAccumulator()
        accumulator.feed(TextDelta("par"))
        result = accumulator.result()
        assert (result.text, result.finish_reason, result.usage) == ("par", None, Usage())

    def test_finish_reason_from_the_usage_line_wins(self) -> None:
        accumulator = ChatAccumulator()
        accumulator.feed(UsageEvent(Usage(), None, "length"))
        assert accumulator.result().finish_reason == "length"

    def test_plain_stop(self) -> None:
        accumulator = ChatAccumulator()
        accumulator.extend([TextDelta("x"), UsageEvent(Usage(), None)])
        assert accumulator.result().finish_reason == "stop"

    def test_a_stream_whose_output_reached_max_tokens_was_cut(self) -> None:
        # Puter's streams name no finish reason: the request's limit is the evidence.
        accumulator = ChatAccumulator(max_tokens=5)
        accumulator.extend([TextDelta("cut here"), UsageEvent(Usage(output_tokens=5), None)])
        assert accumulator.result().finish_reason == "length"

    def test_a_stream_below_max_tokens_stopped(self) -> None:
        accumulator = ChatAccumulator(max_tokens=50)
        accumulator.extend([TextDelta("short"), UsageEvent(Usage(output_tokens=5), None)])
        assert accumulator.result().finish_reason == "stop"

    def test_the_vendors_reason_wins_over_the_count(self) -> None:
        accumulator = ChatAccumulator(max_tokens=5)
        accumulator.extend([TextDelta("x"), UsageEvent(Usage(output_tokens=5), None, "stop")])
        assert accumulator.result().finish_reason == "stop"


def test_events_from_result_round_trip() -> None:
    original = parse_chat_answer(ANTHROPIC_ANSWER)
    events = events_from_result(original)
    assert isinstance(events[-1], UsageEvent)
    accumulator = ChatAccumulator()
    accumulator.extend(events)
    assert accumulator.result(model=original.model, provider=original.provider) == original


def test_events_from_an_empty_result_still_end_with_usage() -> None:
    assert events_from_result(ChatResult(text="")) == [UsageEvent(Usage(), None, None)]


# ----------------------------------------------------------------------------- the body


def test_the_body_is_compact_utf8_json() -> None:
    assert json_body({"a": "é", "b": [1, 2.5, None]}) == '{"a":"é","b":[1,2.5,null]}'.encode()


def test_a_lone_surrogate_becomes_the_replacement_character() -> None:
    # Half of an emoji, as JSON's "\ud83d" decodes: UTF-8 cannot carry it, the rest goes as it is.
    body = json_body({"content": "cut \ud83d here, whole \U0001f600, split \ud83d\ude00"})
    assert json.loads(body) == {"content": "cut \ufffd here, whole \U0001f600, split \U0001f600"}


@given(st.text())
def test_any_text_makes_a_body_that_reads_back_the_same_when_it_is_unicode(text: str) -> None:
    decoded = json.loads(json_body({"t": text}))["t"]
    assert decoded == text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_a_number_json_cannot_write_is_a_bad_request(number: float) -> None:
    with pytest.raises(PuterError) as caught:
        json_body({"parameters": {"maximum": number}})
    assert caught.value.kind is K.BAD_REQUEST
    assert "cannot be written as JSON" in caught.value.message


def test_a_whole_answer_with_half_an_emoji_is_valid_unicode() -> None:
    body = {
        "success": True,
        "result": {
            "message": {"role": "assistant", "content": "a \ud83d b \ud83d\ude00", "reasoning": "\ude00"},
            "finish_reason": "stop",
        },
    }
    result = parse_chat_answer(json.loads(json.dumps(body)))
    assert (result.text, result.reasoning) == ("a \ufffd b \U0001f600", "\ufffd")
    assert json_body({"t": result.text})  # writable as UTF-8
