"""The Responses API (`/v1/responses`): the request's translation, the response object and the
typed stream events, then the official `openai` client against a gateway over the emulator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
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
from puter_mcp.emulator import Fault
from puter_mcp.gateway.openai_responses import ResponseEvents, parse_request, response_object
from puter_mcp.puter.errors import FailureKind
from tests.helpers import Emulator, running_gateway

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
    request = parse_request({"input": "hi", "tools": [WEATHER]})
    made, estimated = response_object(
        outcome(reasoning="hmm", tool_calls=[CALL], finish_reason="tool_calls"), request
    )
    assert estimated is False
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
    made, _ = response_object(outcome(finish_reason="length"), parse_request({"input": "hi"}))
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
    stream = ResponseEvents("answered", parse_request({"input": "hi"}))
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
    stream = ResponseEvents("answered", parse_request({"input": "hi"}))
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


# --------------------------------------------------------------------------------------------
# The official client against a gateway over the emulator

MODEL = "gpt-5-nano"
CANONICAL = "gpt-5-nano-2025-08-07"  # the id the emulator's catalogue resolves MODEL to


@pytest.fixture
def served(emulator: Emulator, home: Path) -> Iterator[Any]:
    with running_gateway(emulator, home, emulator.paid, emulator.free) as gateway:
        yield gateway


def client_of(served: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0)


def test_create_with_a_string_answers_with_the_model_that_answered_and_its_usage(served: Any) -> None:
    response = client_of(served).responses.create(model=MODEL, input="hello there")
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.model == CANONICAL
    assert response.output_text.startswith(f'[{CANONICAL}] You said: "hello there"')
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


def test_instructions_reach_puter_as_the_first_system_message(served: Any) -> None:
    client_of(served).responses.create(model=MODEL, input="hi", instructions="answer in French")
    (sent,) = served.emulator.chat_requests()
    assert sent.messages[0] == {"role": "system", "content": "answer in French"}
    assert sent.messages[-1]["role"] == "user"


def test_reasoning_effort_reaches_puter_as_its_effort(served: Any) -> None:
    response = client_of(served).responses.create(model=MODEL, input="think", reasoning={"effort": "minimal"})
    (sent,) = served.emulator.chat_requests()
    # Puter takes low, medium or high; minimal is the nearest, low.
    assert (sent.args or {})["reasoning"] == {"effort": "low"}
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == f'[{CANONICAL}] Reasoning with low effort about: "think".'
    assert [item.type for item in response.output] == ["reasoning", "message"]


WEATHER_TOOL: Any = {
    "type": "function",
    "name": "weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}


def test_a_function_call_round_trip_with_items(served: Any) -> None:
    client = client_of(served)
    question: Any = {
        "role": "user",
        "content": [{"type": "input_text", "text": 'call tool weather with {"city": "Oslo"}'}],
    }
    first = client.responses.create(model=MODEL, input=[question], tools=[WEATHER_TOOL])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert (call.name, json.loads(call.arguments)) == ("weather", {"city": "Oslo"})

    served.emulator.state.clear_requests()
    second = client.responses.create(
        model=MODEL,
        input=[
            question,
            *first.output,
            {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text.startswith(f'[{CANONICAL}] The tool returned: "rain"')
    (sent,) = served.emulator.chat_requests()
    assistant, tool = sent.messages[-2], sent.messages[-1]
    assert [c["id"] for c in assistant["tool_calls"]] == [call.call_id]
    assert (tool["role"], tool["tool_call_id"], tool["content"]) == ("tool", call.call_id, "rain")


def test_stream_deltas_accumulate_into_the_final_response_in_sequence(served: Any) -> None:
    with client_of(served).responses.stream(model=MODEL, input="count for me") as stream:
        events = list(stream)
        final = stream.get_final_response()
    numbers = [event.sequence_number for event in events]
    assert numbers == sorted(set(numbers)) and numbers[0] == 0
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas and final.output_text == deltas
    assert final.status == "completed" and final.model == CANONICAL
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert final.usage is not None and final.usage.output_tokens > 0


def test_a_streamed_tool_call_builds_its_function_call_item(served: Any) -> None:
    with client_of(served).responses.stream(
        model=MODEL, input='call tool weather with {"city": "Rome"}', tools=[WEATHER_TOOL]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert "response.function_call_arguments.delta" in kinds
    assert kinds.index("response.function_call_arguments.done") < kinds.index("response.completed")
    calls = [item for item in final.output if item.type == "function_call"]
    assert len(calls) == 1 and json.loads(calls[0].arguments) == {"city": "Rome"}
    assert calls[0].call_id


def test_previous_response_id_is_a_400_in_openais_shape(served: Any) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_of(served).responses.create(model=MODEL, input="hi", previous_response_id="resp_123")
    body: Any = caught.value.body
    assert caught.value.status_code == 400
    assert body["param"] == "previous_response_id" and body["type"] == "invalid_request_error"
    assert "no state" in body["message"]
    assert served.emulator.chat_requests() == []


def test_an_unknown_model_is_a_404_model_not_found(served: Any) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client_of(served).responses.create(model="gpt-5-nanoo", input="hi")
    body: Any = caught.value.body
    assert body["code"] == "model_not_found" and body["type"] == "invalid_request_error"
    assert "gpt-5-nano" in body["message"]


def test_a_429_before_the_first_byte_is_failed_over_with_exactly_one_answer(served: Any) -> None:
    emulator = served.emulator
    emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, model=MODEL, account=emulator.paid.username)
    with client_of(served).responses.stream(model=MODEL, input="hello") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [event.type for event in events].count("response.created") == 1
    assert [event.type for event in events].count("response.output_item.added") == 1
    assert final.output_text.startswith(f'[{CANONICAL}] You said: "hello"')
    assert [r.username for r in emulator.chat_requests()] == [emulator.paid.username, emulator.free.username]


def test_no_candidate_left_is_a_real_status_not_a_200(served: Any) -> None:
    # Every model is down: the fallback models too.
    served.emulator.state.add_fault(Fault.UPSTREAM_PROVIDER_UNAVAILABLE, times=None)
    with (
        pytest.raises(openai.APIStatusError) as caught,
        client_of(served).responses.stream(model=MODEL, input="hello") as stream,
    ):
        list(stream)
    assert caught.value.status_code == 503
    body: Any = caught.value.body
    assert body["type"] == "server_error"


def test_a_failure_after_the_first_byte_ends_with_response_failed_and_no_second_request(served: Any) -> None:
    emulator = served.emulator
    emulator.state.add_fault(
        Fault.STREAM_ERROR_AFTER_TEXT, model=MODEL, times=None, text_lines=2, message="reset"
    )
    with client_of(served).responses.stream(model=MODEL, input="hello") as stream:
        events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[-1] == "response.failed"
    assert "response.completed" not in kinds
    sent = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.error is not None
    assert failed.response.output[0].type == "message"
    assert failed.response.output[0].content[0].text == sent != ""
    assert len(emulator.chat_requests()) == 1


def test_a_client_that_leaves_mid_stream_ends_the_upstream_request(served: Any) -> None:
    emulator = served.emulator
    # sandbox-slow streams its answer over ~10 s, so the request is still upstream when the
    # client leaves after the first delta.
    with client_of(served).responses.stream(model="sandbox-slow", input="hello") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                break
        assert emulator.state.in_flight(emulator.paid.username) == 1
    # Within 5 s, half the stream's length.
    assert emulator.all_released(emulator.paid, within=5.0)
    assert len(emulator.chat_requests()) == 1


def test_the_route_answers_without_the_v1_prefix(served: Any) -> None:
    client = openai.OpenAI(base_url=served.url, api_key="unused", max_retries=0)
    assert client.responses.create(model=MODEL, input="hi").status == "completed"


def test_an_unknown_model_is_a_404_before_any_stream_begins(served: Any) -> None:
    with (
        pytest.raises(openai.NotFoundError) as caught,
        client_of(served).responses.stream(model="gpt-5-nanoo", input="hi") as stream,
    ):
        list(stream)
    body: Any = caught.value.body
    assert body["code"] == "model_not_found" and body["param"] == "model"


def test_a_wrong_field_is_a_400_naming_it_in_openais_shape(served: Any) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client_of(served).responses.create(model=MODEL, input="hi", tools=[{"type": "web_search"}])
    body: Any = caught.value.body
    assert (body["type"], body["param"], body["code"]) == ("invalid_request_error", "tools[0].type", None)
    assert "web_search" in body["message"]


def test_an_answer_cut_by_max_output_tokens_is_incomplete(served: Any) -> None:
    response = client_of(served).responses.create(
        model=MODEL, input="tell me a long story", max_output_tokens=3
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert 0 < len(response.output_text) <= 3 * 4  # the emulator's tokens are 4 characters


CODEX_SHAPED: dict[str, Any] = {
    # What Codex sends (store false, its include and cache key, strict-less function tools).
    "model": MODEL,
    "instructions": "You are a coding agent.",
    "input": [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "sandbox: read-only"}],
        },
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list the files"}]},
        {"type": "reasoning", "id": "rs_0", "summary": [], "content": None, "encrypted_content": "gAAAA..."},
        {"type": "function_call", "name": "shell", "arguments": '{"command":["ls"]}', "call_id": "call_0"},
        {"type": "function_call_output", "call_id": "call_0", "output": "README.md\nsrc"},
    ],
    "tools": [
        {
            "type": "function",
            "name": "shell",
            "description": "Runs a shell command",
            "strict": False,
            "parameters": {"type": "object", "properties": {"command": {"type": "array"}}},
        }
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "0193-session",
}


def test_a_codex_shaped_stream_is_framed_as_sse_with_matching_event_names(served: Any) -> None:
    with (
        httpx2.Client(timeout=30) as http,
        http.stream("POST", f"{served.url}/v1/responses", json=CODEX_SHAPED) as answer,
    ):
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        body = b"".join(answer.iter_bytes())
    events = sse(body)  # every block is `event: <type>` then `data: <json of that type>`
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert events[-1]["type"] == "response.completed"
    final = events[-1]["response"]
    assert [item["type"] for item in final["output"]] == ["reasoning", "message"]
    assert final["store"] is False and final["parallel_tool_calls"] is False
    (sent,) = served.emulator.chat_requests()
    assert [message["role"] for message in sent.messages] == ["system", "system", "user", "assistant", "tool"]
    assert sent.messages[-1]["content"] == "README.md\nsrc"
    assert (sent.args or {})["reasoning"] == {"effort": "medium"}
