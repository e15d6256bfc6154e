"""The gateway's OpenAI Chat Completions API, driven by the official `openai` client.

Against the emulator on loopback; what reached Puter is read from the emulator's request log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest

from puter_mcp.emulator import Fault
from tests.helpers import Emulator, RunningGateway, running_gateway

MODEL = "gpt-5-nano"
CANONICAL = "gpt-5-nano-2025-08-07"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def gateway(emulator: Emulator, home: Path) -> Iterator[RunningGateway]:
    with running_gateway(emulator, home, emulator.paid, emulator.free) as running:
        yield running


@pytest.fixture
def client(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-anything", max_retries=0) as made:
        yield made


def sse_lines(
    gateway: RunningGateway, body: dict[str, object], path: str = "/v1/chat/completions"
) -> list[str]:
    """The raw `data:` payloads of a streamed answer, as sent."""
    with httpx2.Client(timeout=20) as http, http.stream("POST", gateway.url + path, json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]


def test_a_chat_completion_names_the_model_that_answered_and_counts_tokens(
    client: openai.OpenAI, gateway: RunningGateway
) -> None:
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}])
    assert answer.object == "chat.completion"
    assert answer.model == CANONICAL
    assert answer.choices[0].finish_reason == "stop"
    assert "hello" in (answer.choices[0].message.content or "")
    assert answer.usage is not None and answer.usage.total_tokens > 0
    assert [r.model for r in gateway.emulator.chat_requests()] == [CANONICAL]


def test_a_streamed_completion_sends_the_role_first_usage_when_asked_and_one_done(
    gateway: RunningGateway,
) -> None:
    body = {
        "model": MODEL,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hello"}],
    }
    lines = sse_lines(gateway, body)
    assert lines[-1] == "[DONE]" and lines.count("[DONE]") == 1
    chunks = [json.loads(line) for line in lines[:-1]]  # every other line is JSON
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    finishes = [chunk["choices"][0]["finish_reason"] for chunk in chunks if chunk["choices"]]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    assert "hello" in text


def test_without_include_usage_no_chunk_carries_usage(gateway: RunningGateway) -> None:
    lines = sse_lines(
        gateway, {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    chunks = [json.loads(line) for line in lines[:-1]]
    assert all("usage" not in chunk for chunk in chunks)
    assert all(chunk["choices"] for chunk in chunks)


def test_the_sdk_stream_helper_accumulates_the_answer(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "stream me"}],
        stream_options={"include_usage": True},
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == final.choices[0].message.content
    assert final.usage is not None and final.usage.completion_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_round_trip(client: openai.OpenAI, gateway: RunningGateway, stream: bool) -> None:
    asked = [{"role": "user", "content": 'call tool get_weather with {"city": "Paris"}'}]
    if stream:
        with client.chat.completions.stream(model=MODEL, messages=asked, tools=[WEATHER]) as events:  # type: ignore[arg-type]
            first = events.get_final_completion()
    else:
        first = client.chat.completions.create(model=MODEL, messages=asked, tools=[WEATHER])  # type: ignore[arg-type]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function"
    call = calls[0]
    assert call.function.name == "get_weather" and call.id
    assert isinstance(json.loads(call.function.arguments), dict)
    second = client.chat.completions.create(
        model=MODEL,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            *asked,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
        ],  # type: ignore[list-item]
    )
    assert second.choices[0].finish_reason == "stop"
    sent = gateway.emulator.chat_requests()[-1].messages or []
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[2]["tool_call_id"] == call.id
    assert sent[1]["tool_calls"][0]["id"] == call.id


def test_streamed_tool_call_fragments_carry_their_index_and_open_with_id_and_name(
    gateway: RunningGateway,
) -> None:
    body = {
        "model": MODEL,
        "stream": True,
        "tools": [WEATHER],
        "messages": [{"role": "user", "content": 'call tool get_weather with {"city": "Oslo"}'}],
    }
    chunks = [json.loads(line) for line in sse_lines(gateway, body)[:-1]]
    fragments = [call for chunk in chunks for call in (chunk["choices"][0]["delta"].get("tool_calls") or [])]
    assert fragments, "no tool-call deltas"
    assert all("index" in fragment for fragment in fragments)
    first = fragments[0]
    assert first["id"] and first["type"] == "function" and first["function"]["name"] == "get_weather"
    assert all("id" not in fragment for fragment in fragments[1:] if fragment["index"] == first["index"])
    arguments = "".join(fragment["function"].get("arguments", "") for fragment in fragments)
    assert isinstance(json.loads(arguments), dict)


def test_reasoning_is_sent_as_both_reasoning_content_and_reasoning(gateway: RunningGateway) -> None:
    with httpx2.Client(timeout=20) as http:
        response = http.post(
            gateway.url + "/v1/chat/completions",
            json={
                "model": "claude-sonnet-4-5",
                "reasoning_effort": "high",
                "messages": [{"role": "user", "content": "think first"}],
            },
        )
    assert response.status_code == 200, response.text
    message = response.json()["choices"][0]["message"]
    assert message["reasoning_content"] and message["reasoning"] == message["reasoning_content"]
    sent = gateway.emulator.chat_requests()[-1].args or {}
    assert sent["reasoning"] == {"effort": "high"}


def test_models_list_has_the_catalogue_the_virtual_models_and_auto(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert CANONICAL in ids and "auto" in ids and "coding-elite" in ids
    model = client.models.retrieve(MODEL)  # an alias finds its model
    assert model.id == CANONICAL and model.owned_by


def test_the_routes_answer_without_the_v1_prefix(gateway: RunningGateway) -> None:
    with openai.OpenAI(base_url=gateway.url, api_key="sk-anything", max_retries=0) as bare:
        answer = bare.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
        assert CANONICAL in [model.id for model in bare.models.list()]


def test_an_unknown_model_is_a_404_in_openai_shape_naming_the_closest(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-5-nan", messages=[{"role": "user", "content": "hi"}])
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "gpt-5-nano" in error["message"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model-anywhere")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL, "n": 2, "messages": [{"role": "user", "content": "hi"}]}, "n"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "temperature": 5, "messages": [{"role": "user", "content": "hi"}]}, "temperature"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "model": MODEL,
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "tool", "tool_call_id": "x", "content": "r"},
                ],
            },
            None,  # the conversation as a whole is wrong: the message names where
        ),
    ],
)
def test_a_bad_argument_is_a_400_naming_the_parameter(
    client: openai.OpenAI, gateway: RunningGateway, body: dict[str, object], param: str | None
) -> None:
    with httpx2.Client(timeout=20) as http:
        response = http.post(gateway.url + "/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert gateway.emulator.chat_requests() == []


def test_a_body_that_is_not_json_is_a_400_in_openai_shape(gateway: RunningGateway) -> None:
    with httpx2.Client(timeout=20) as http:
        response = http.post(
            gateway.url + "/v1/chat/completions",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_429_before_the_first_byte_is_failed_over_silently(
    gateway: RunningGateway, emulator: Emulator, stream: bool
) -> None:
    emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, model=MODEL, account=emulator.paid.username)
    body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": "hello"}]}
    if stream:
        lines = sse_lines(gateway, body)
        chunks = [json.loads(line) for line in lines[:-1]]
        assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("role")) == 1
        assert not any("error" in chunk for chunk in chunks)
    else:
        with httpx2.Client(timeout=20) as http:
            response = http.post(gateway.url + "/v1/chat/completions", json=body)
        assert response.status_code == 200
    assert [r.username for r in emulator.chat_requests()] == [emulator.paid.username, emulator.free.username]


def test_no_candidate_left_is_a_real_status_not_a_200_then_an_error(
    gateway: RunningGateway, emulator: Emulator
) -> None:
    emulator.state.add_fault(Fault.UPSTREAM_PROVIDER_UNAVAILABLE, times=None)  # every model is down
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    with httpx2.Client(timeout=20) as http:
        response = http.post(gateway.url + "/v1/chat/completions", json=body)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["type"] == "server_error"


def test_a_failure_after_the_first_byte_ends_with_an_error_line_and_no_replay(
    gateway: RunningGateway, emulator: Emulator
) -> None:
    emulator.state.add_fault(
        Fault.STREAM_ERROR_AFTER_TEXT, model=MODEL, times=None, text_lines=2, message="reset by peer"
    )
    lines = sse_lines(
        gateway, {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert lines[-1] == "[DONE]" and lines.count("[DONE]") == 1
    payloads = [json.loads(line) for line in lines[:-1]]
    assert "error" in payloads[-1] and payloads[-1]["error"]["message"]
    text = "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads[:-1])
    assert text  # what was sent stays
    assert sum(1 for p in payloads[:-1] if p["choices"][0]["delta"].get("role")) == 1
    assert len(emulator.chat_requests()) == 1  # nobody else was asked to start again


def test_a_client_that_disconnects_cancels_the_upstream_request(
    gateway: RunningGateway, emulator: Emulator
) -> None:
    emulator.state.add_fault(Fault.STALL_MID_STREAM, model=MODEL, times=None)
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with (
        httpx2.Client(timeout=20) as http,
        http.stream("POST", gateway.url + "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        # Held in a name: a dropped line iterator would close the response at once, and the
        # gateway could cancel the upstream request before the count below is read.
        lines = response.iter_lines()
        next(lines)  # the answer began
        assert emulator.state.in_flight(emulator.paid.username) == 1
    # Closed without reading on: the gateway closes the upstream request.
    assert emulator.all_released(emulator.paid), "the upstream request is still open"


def test_auto_chat_says_which_chain_it_chose_and_why(gateway: RunningGateway) -> None:
    with httpx2.Client(timeout=20) as http:
        response = http.post(
            gateway.url + "/chat", json={"messages": [{"role": "user", "content": "write a python function"}]}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["puter"]["model_requested"] == "auto"
    assert body["puter"]["auto"]["chain"] and body["puter"]["auto"]["reason"]
    assert response.headers["x-puter-model-answered"] == body["model"]


def test_health_says_ready_and_live_always_answers(gateway: RunningGateway) -> None:
    with httpx2.Client(timeout=20) as http:
        health = http.get(gateway.url + "/health")
        live = http.get(gateway.url + "/health/live")
    assert health.status_code == 200 and health.json()["ready"] is True
    assert health.json()["usable_accounts"] == 2
    assert live.status_code == 200


def test_health_is_503_with_the_reason_when_no_account_can_be_used(emulator: Emulator, home: Path) -> None:
    with running_gateway(emulator, home, emulator.paid) as gateway:
        (gateway.paths.accounts_file).unlink()
        with httpx2.Client(timeout=20) as http:
            health = http.get(gateway.url + "/health")
            live = http.get(gateway.url + "/health/live")
    assert health.status_code == 503
    assert "no Puter account" in health.json()["problems"][0]
    assert live.status_code == 200


def test_cors_is_off_by_default_and_answers_preflights_when_configured(
    emulator: Emulator, home: Path
) -> None:
    preflight = {
        "Origin": "https://chat.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    with running_gateway(emulator, home) as gateway, httpx2.Client(timeout=20) as http:
        refused = http.options(gateway.url + "/v1/chat/completions", headers=preflight)
    assert "access-control-allow-origin" not in refused.headers
    with (
        running_gateway(emulator, home, gateway={"cors_origins": ["https://chat.example"]}) as gateway,
        httpx2.Client(timeout=20) as http,
    ):
        allowed = http.options(gateway.url + "/v1/chat/completions", headers=preflight)
        answer = http.post(
            gateway.url + "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
            headers={"Origin": "https://chat.example"},
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example"
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://chat.example"


def test_a_page_of_another_origin_is_refused(gateway: RunningGateway) -> None:
    with httpx2.Client(timeout=20) as http:
        response = http.post(
            gateway.url + "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
            headers={"Origin": "https://evil.example"},
        )
    assert response.status_code == 403
    assert gateway.emulator.chat_requests() == []
