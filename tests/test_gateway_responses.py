"""The Responses API (`/v1/responses`): the request's translation, the response object and the
typed stream events, then the official `openai` client against a gateway over the emulator.
"""

from __future__ import annotations

import json
import re
from typing import Any

import openai
import pytest
from openai._models import construct_type
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from puter_mcp.core import (
    BadRequest,
    ChatOutcome,
    Finished,
    ImagePart,
    NoCandidateLeft,
    ReasoningDelta,
    StreamFailed,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallRecord,
    UsageInfo,
    UsageUpdate,
)
from puter_mcp.gateway.openai_responses import ResponseEvents, parse_request, response_object
from puter_mcp.puter.errors import FailureKind

PNG = "data:image/png;base64,iVBORw0KGgo="
WEATHER = {
    "type": "function",
    "name": "weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def refusal(body: dict[str, Any]) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_request(body)
    return caught.value


# --------------------------------------------------------------------------------------------
# The request


def test_a_string_input_is_one_user_turn_after_the_instructions() -> None:
    request = parse_request({"model": "gpt-5-nano", "input": "hi", "instructions": "be brief"})
    assert [(turn.role, turn.content) for turn in request.call.messages] == [
        ("system", "be brief"),
        ("user", "hi"),
    ]
    assert request.call.model == "gpt-5-nano"
    assert request.stream is False


def test_items_become_turns_with_calls_merged_into_the_assistant_turn_before_them() -> None:
    request = parse_request(
        {
            "model": "m",
            "input": [
                {"role": "developer", "content": "answer in French"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": PNG, "detail": "auto"},
                    ],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "I will"}],
                },
                {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city":"Oslo"}'},
                {"type": "function_call", "call_id": "c2", "name": "weather", "arguments": '{"city":"Rome"}'},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
                {"type": "function_call_output", "call_id": "c1", "output": "rain"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "sun"}],
                },
            ],
            "tools": [WEATHER],
        }
    )
    turns = request.call.messages
    assert [turn.role for turn in turns] == ["system", "user", "assistant", "tool", "tool"]
    assert turns[1].content == [TextPart(text="look"), ImagePart(url=PNG)]
    assert turns[2].text == "I will"
    assert [(call.id, call.name, call.arguments) for call in turns[2].tool_calls] == [
        ("c1", "weather", '{"city":"Oslo"}'),
        ("c2", "weather", '{"city":"Rome"}'),
    ]
    assert [(turn.tool_call_id, turn.content) for turn in turns[3:]] == [("c1", "rain"), ("c2", "sun")]
    assert request.call.tools[0].name == "weather"


@pytest.mark.parametrize(
    ("given", "effort"),
    [("minimal", "low"), ("low", "low"), ("Medium", "medium"), ("xhigh", "high"), ("none", None)],
)
def test_reasoning_effort_maps_onto_the_three_puter_takes(given: str, effort: str | None) -> None:
    request = parse_request({"input": "hi", "reasoning": {"effort": given, "summary": "auto"}})
    assert request.call.reasoning_effort == effort
    assert request.echo["reasoning"] == {"effort": given, "summary": "auto"}


def test_max_output_tokens_temperature_and_a_named_tool_choice_reach_the_call() -> None:
    request = parse_request(
        {
            "input": "hi",
            "max_output_tokens": 50,
            "temperature": 0.5,
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "name": "weather"},
        }
    )
    assert (request.call.max_tokens, request.call.temperature) == (50, 0.5)
    assert (
        request.call.tool_choice is not None and getattr(request.call.tool_choice, "name", None) == "weather"
    )
    assert request.echo["tool_choice"] == {"type": "function", "name": "weather"}


def test_fields_it_does_not_act_on_are_accepted_and_unknown_ones_ignored() -> None:
    request = parse_request(
        {
            "input": "hi",
            "store": True,
            "parallel_tool_calls": False,
            "metadata": {"a": "b"},
            "user": "u1",
            "truncation": "auto",
            "include": ["reasoning.encrypted_content"],
            "text": {"format": {"type": "text"}, "verbosity": "low"},
            "prompt_cache_key": "k",
            "a_field_from_next_month": {"x": 1},
        }
    )
    assert request.echo["parallel_tool_calls"] is False
    assert request.echo["metadata"] == {"a": "b"}


def test_previous_response_id_is_refused_saying_to_send_the_whole_conversation() -> None:
    error = refusal({"input": "hi", "previous_response_id": "resp_123"})
    assert error.argument == "previous_response_id"
    assert "no state" in error.message and "`input`" in error.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi", "max_output_tokens": True}, "max_output_tokens"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "hi", "temperature": "hot"}, "temperature"),
        ({"input": "hi", "temperature": 3}, "temperature"),
        ({"input": "hi", "stream": "yes"}, "stream"),
        ({"input": "hi", "model": 5}, "model"),
        ({"input": "hi", "reasoning": {"effort": "huge"}}, "reasoning.effort"),
        ({"input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format"),
        ({"input": 3}, "input"),
        ({"input": []}, "input"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "x"},
                            {"type": "input_image", "image_url": "ftp://x"},
                        ],
                    }
                ]
            },
            "input[0].content[1].image_url",
        ),
        (
            {
                "input": [
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "input_image", "image_url": PNG},
                            {"type": "output_text", "text": "x"},
                        ],
                    }
                ]
            },
            "input[0]",
        ),
        ({"input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]}, "input[0].call_id"),
        (
            {
                "input": [
                    {"role": "user", "content": "x"},
                    {"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"},
                ]
            },
            "input[1].arguments",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"type": "local_shell_call", "id": "x"}]}, "input[0].type"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": "hi", "tools": [{**WEATHER, "name": "has space"}]}, "tools[0].name"),
        ({"input": "hi", "tools": [{**WEATHER, "parameters": {"type": "array"}}]}, "tools[0].parameters"),
        (
            {"input": "hi", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "other"}},
            "tool_choice.name",
        ),
        ({"input": "hi", "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    ],
)
def test_a_wrong_field_is_refused_naming_it_in_responses_terms(body: dict[str, Any], param: str) -> None:
    error = refusal(body)
    assert error.argument == param, error.message
    assert re.search(r"messages[.\[]\d", error.message) is None  # no path in the core's terms


# --------------------------------------------------------------------------------------------
# The answer, whole and streamed


def outcome(**fields: Any) -> ChatOutcome:
    values: dict[str, Any] = {
        "model_requested": "asked",
        "model": "answered",
        "account": "a",
        "text": "Hello",
        "finish_reason": "stop",
        "usage": UsageInfo(input_tokens=3, output_tokens=4, total_tokens=7),
        **fields,
    }
    return ChatOutcome(**values)


CALL = ToolCallRecord(
    id="call_1", name="weather", arguments={"city": "Oslo"}, arguments_json='{"city":"Oslo"}'
)


def test_the_response_object_has_reasoning_message_and_calls_in_order_with_usage() -> None:
    echo = parse_request({"input": "hi", "tools": [WEATHER]}).echo
    made = response_object(outcome(reasoning="hmm", tool_calls=[CALL], finish_reason="tool_calls"), echo)
    parsed = openai.types.responses.Response.model_validate(made)
    assert parsed.status == "completed" and parsed.model == "answered"
    assert [item.type for item in parsed.output] == ["reasoning", "message", "function_call"]
    assert parsed.output_text == "Hello"
    call = parsed.output[2]
    assert call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == ("call_1", "weather", '{"city":"Oslo"}')
    assert parsed.usage is not None and (parsed.usage.input_tokens, parsed.usage.total_tokens) == (3, 7)
    assert parsed.tools[0].type == "function" and parsed.tools[0].name == "weather"
    assert made["store"] is False


def test_an_answer_cut_at_its_length_limit_is_incomplete() -> None:
    made = response_object(outcome(finish_reason="length"), parse_request({"input": "hi"}).echo)
    assert made["status"] == "incomplete"
    assert made["incomplete_details"] == {"reason": "max_output_tokens"}
    assert made["output"][0]["status"] == "incomplete"


def sse(body: bytes) -> list[dict[str, Any]]:
    """The events of an SSE body, checking that each `event:` names its data's type."""
    events = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        event_line, data_line = block.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {data['type']}"
        events.append(data)
    return events


def accumulate(events: list[dict[str, Any]]) -> ResponseStreamState[Any]:
    """What `client.responses.stream()` makes of the events (its own accumulator)."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=openai.omit, text_format=openai.omit)
    for data in events:
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=data))  # type: ignore[arg-type]
    return state


def test_streamed_events_build_the_items_the_sdk_accumulates() -> None:
    stream = ResponseEvents("answered", parse_request({"input": "hi"}).echo)
    body = stream.opening()
    for event in (
        ReasoningDelta("thinking"),
        TextDelta("Hel"),
        TextDelta("lo"),
        ToolCallDelta(0, "call_1", "weather", '{"city"'),
        ToolCallDelta(0, None, None, ':"Oslo"}'),
        UsageUpdate(3, 4),
    ):
        body += stream.feed(event)
    body += stream.feed(
        Finished(outcome(reasoning="thinking", tool_calls=[CALL], finish_reason="tool_calls"))
    )
    events = sse(body)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = accumulate(events)._completed_response
    assert final is not None
    assert final.output_text == "Hello"
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call"]
    assert final.output[2].type == "function_call" and final.output[2].arguments == '{"city":"Oslo"}'


def test_a_stream_that_breaks_off_ends_with_response_failed_after_what_was_sent() -> None:
    stream = ResponseEvents("answered", parse_request({"input": "hi"}).echo)
    body = stream.opening() + stream.feed(TextDelta("Hel"))
    error = NoCandidateLeft("the stream broke off", kind=FailureKind.TRANSPORT, partial_text="Hel")
    body += stream.feed(StreamFailed(error))
    assert stream.feed(TextDelta("more")) == b""  # nothing after the end
    events = sse(body)
    assert [event["type"] for event in events][-2:] == ["response.output_text.delta", "response.failed"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"
    assert failed["output"][0]["status"] == "incomplete"
    assert failed["output"][0]["content"][0]["text"] == "Hel"
    accumulate(events)  # the SDK takes the events as they are
