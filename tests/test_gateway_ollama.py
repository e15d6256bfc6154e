"""The gateway's Ollama API, driven by the official `ollama` client against the emulator.

What reached Puter is read from the emulator's own request log; the framing a client does not
show (status codes, NDJSON lines, headers) is read with plain httpx. The translation alone,
without a server: test_gateway_ollama_translation.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import ollama
import pytest

from puter_mcp.emulator import EmulatorState, EmulatorThread, Fault
from puter_mcp.gateway.keystore import KeySpec, SQLiteKeyStore, key_store_file
from puter_mcp.gateway.ollama import DEFAULT_THINK_EFFORT, OLLAMA_VERSION
from tests.helpers import Emulator, RunningGateway, running_gateway

MODEL = "gpt-5-nano"
CANONICAL = "gpt-5-nano-2025-08-07"  # the id the emulator's catalogue resolves MODEL to
PNG = b"\x89PNG\r\n\x1a\n" + bytes(32)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """One gateway for the tests that script no fault (a fault leaves cooldowns behind)."""
    state = EmulatorState(seed=7)
    paid, free, temp = state.seed_default_accounts()
    with EmulatorThread(state) as url:
        emulator = Emulator(state, url, paid, free, temp)
        with running_gateway(emulator, tmp_path_factory.mktemp("home"), paid, free) as running:
            yield running


@pytest.fixture
def gateway(shared: RunningGateway) -> RunningGateway:
    shared.emulator.state.clear_requests()
    return shared


@pytest.fixture
def own_gateway(emulator: Emulator, home: Path) -> Iterator[RunningGateway]:
    """A gateway of the test's own, for tests that script faults."""
    with running_gateway(emulator, home, emulator.paid, emulator.free) as running:
        yield running


@pytest.fixture
def client(gateway: RunningGateway) -> ollama.Client:
    return ollama.Client(host=gateway.url)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx2.Client]:
    # One client: making one costs tens of milliseconds (its TLS context).
    with httpx2.Client(timeout=30) as made:
        yield made


def user(content: str, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": content, **extra}


def ndjson_lines(response: httpx2.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def post(http: httpx2.Client, gateway: RunningGateway, path: str, body: dict[str, Any]) -> httpx2.Response:
    return http.post(gateway.url + path, json=body)


def test_chat_answers_whole_with_the_model_that_answered_and_measured_counts(
    client: ollama.Client, gateway: RunningGateway
) -> None:
    response = client.chat(model=f"{MODEL}:latest", messages=[user("hello there")], stream=False)
    assert response.model == CANONICAL
    assert response.message.role == "assistant"
    assert response.message.content is not None and 'You said: "hello there"' in response.message.content
    assert response.done is True and response.done_reason == "stop"
    assert response.prompt_eval_count and response.eval_count
    assert response.total_duration and response.total_duration >= (response.eval_duration or 0) > 0
    assert len(gateway.emulator.chat_requests()) == 1


def test_chat_streams_ndjson_by_default_and_ends_with_the_counts(client: ollama.Client) -> None:
    parts = list(client.chat(model=MODEL, messages=[user("count the words of this message")], stream=True))
    *pieces, last = parts
    assert len(pieces) > 1
    assert all(part.done is False for part in pieces)
    text = "".join(part.message.content or "" for part in pieces)
    assert text.startswith(f'[{CANONICAL}] You said: "count the words of this message"')
    assert last.done is True and last.done_reason == "stop"
    assert last.message.content == ""
    assert last.prompt_eval_count and last.eval_count
    assert {part.model for part in parts} == {CANONICAL}


def test_a_body_without_stream_is_answered_as_ndjson_lines(
    http: httpx2.Client, gateway: RunningGateway
) -> None:
    response = post(http, gateway, "/api/chat", {"model": MODEL, "messages": [user("hi")]})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = ndjson_lines(response)
    assert len(lines) > 2
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    final = lines[-1]
    for field in (
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ):
        assert isinstance(final[field], int), field
    # Measured: the whole is the time to the first content plus the time after it.
    assert final["total_duration"] == final["prompt_eval_duration"] + final["eval_duration"]
    assert final["prompt_eval_duration"] > 0
    # The model that answered is named, here and in a header, since it is not the name asked.
    assert response.headers["x-puter-model-answered"] == CANONICAL


@pytest.mark.anyio
async def test_the_async_client_streams_too(gateway: RunningGateway) -> None:
    client = ollama.AsyncClient(host=gateway.url)
    text = ""
    async for part in await client.chat(model=MODEL, messages=[user("async hello")], stream=True):
        text += part.message.content or ""
    assert 'You said: "async hello"' in text


def test_generate_answers_a_prompt_with_its_system_prompt_streamed_and_not(
    client: ollama.Client, gateway: RunningGateway
) -> None:
    whole = client.generate(model=MODEL, prompt="tell me", system="be short", stream=False)
    assert whole.response and 'You said: "tell me"' in whole.response
    assert whole.done_reason == "stop" and whole.eval_count
    assert whole.context == []
    streamed = list(client.generate(model=MODEL, prompt="tell me", system="be short", stream=True))
    assert "".join(part.response or "" for part in streamed) == whole.response
    assert streamed[-1].done is True
    (first, _) = gateway.emulator.chat_requests()
    assert first.messages == [
        {"role": "system", "content": "be short"},
        {"role": "user", "content": "tell me"},
    ]


def test_generate_without_a_prompt_loads_the_model_and_asks_nothing(
    client: ollama.Client, gateway: RunningGateway
) -> None:
    loaded = client.generate(model=f"{MODEL}:latest", stream=False)
    assert loaded.done is True and loaded.done_reason == "load"
    assert gateway.emulator.chat_requests() == []
    with pytest.raises(ollama.ResponseError) as caught:
        client.generate(model="no-such-model")
    assert caught.value.status_code == 404


def test_list_names_the_catalogue_the_virtual_models_and_auto(client: ollama.Client) -> None:
    models = client.list().models
    names = [model.model for model in models]
    assert {"auto", "coding-elite", "chat-fast", CANONICAL} <= set(names)
    entry = next(model for model in models if model.model == CANONICAL)
    assert entry.digest == hashlib.sha256(CANONICAL.encode()).hexdigest()
    assert entry.size == 0
    assert entry.details is not None and entry.details.family == "openai-completion"
    auto = next(model for model in models if model.model == "auto")
    assert auto.details is not None and auto.details.family == "puter-mcp"
    assert client.ps().models == []


def test_show_gives_the_capabilities_and_model_info_vs_code_reads(client: ollama.Client) -> None:
    shown = client.show(f"{MODEL}:latest")
    assert shown.capabilities == ["completion", "tools", "vision", "thinking"]
    assert shown.modelinfo is not None
    architecture = shown.modelinfo["general.architecture"]
    assert shown.modelinfo[f"{architecture}.context_length"] == 400_000
    assert shown.details is not None and shown.details.family == "openai-completion"
    assert isinstance(shown.modelfile, str) and isinstance(shown.template, str)
    # DeepSeek's reasoner takes no images and calls no tools (the emulator's catalogue).
    assert client.show("deepseek-reasoner").capabilities == ["completion", "thinking"]


def test_show_of_an_unknown_model_is_a_404_naming_the_closest(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.show("gpt-5-nan")
    assert caught.value.status_code == 404
    assert "gpt-5-nano" in caught.value.error


def test_a_tool_call_round_trip(client: ollama.Client, gateway: RunningGateway) -> None:
    asked = user('call tool get_weather with {"city": "Paris"}')
    first = client.chat(model=MODEL, messages=[asked], tools=[WEATHER], stream=False)
    (call,) = first.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "Paris"}
    gateway.emulator.state.clear_requests()
    second = client.chat(
        model=MODEL,
        messages=[
            asked,
            first.message,
            {"role": "tool", "tool_name": "get_weather", "content": "sunny, 21 C"},
        ],
        tools=[WEATHER],
        stream=False,
    )
    assert second.message.content is not None and 'The tool returned: "sunny, 21 C"' in second.message.content
    (request,) = gateway.emulator.chat_requests()
    assert request.messages is not None
    assistant, tool = request.messages[1], request.messages[2]
    # Puter got the pair Ollama leaves implicit: the tool result names the call it answers.
    assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert assistant["tool_calls"][0]["function"]["name"] == "get_weather"


def test_a_streamed_tool_call_comes_whole_in_one_line(client: ollama.Client) -> None:
    asked = user('call tool get_weather with {"city": "Oslo"}')
    parts = list(client.chat(model=MODEL, messages=[asked], tools=[WEATHER], stream=True))
    with_calls = [part for part in parts if part.message.tool_calls]
    assert len(with_calls) == 1
    (call,) = with_calls[0].message.tool_calls or []
    assert (call.function.name, call.function.arguments) == ("get_weather", {"city": "Oslo"})
    assert parts[-1].done is True


@pytest.mark.parametrize(("think", "effort"), [(True, DEFAULT_THINK_EFFORT), ("high", "high")])
def test_think_asks_for_reasoning_and_it_comes_back_as_thinking(
    client: ollama.Client, gateway: RunningGateway, think: Any, effort: str
) -> None:
    whole = client.chat(model=MODEL, messages=[user("ponder")], think=think, stream=False)
    assert whole.message.thinking == f'[{CANONICAL}] Reasoning with {effort} effort about: "ponder".'
    streamed = list(client.chat(model=MODEL, messages=[user("ponder")], think=think, stream=True))
    assert "".join(part.message.thinking or "" for part in streamed) == whole.message.thinking
    generated = client.generate(model=MODEL, prompt="ponder", think=think, stream=False)
    assert generated.thinking == whole.message.thinking
    assert [(r.args or {}).get("reasoning") for r in gateway.emulator.chat_requests()] == [
        {"effort": effort}
    ] * 3


def test_without_think_no_reasoning_is_asked_for(client: ollama.Client, gateway: RunningGateway) -> None:
    answer = client.chat(model=MODEL, messages=[user("ponder")], think=False, stream=False)
    assert answer.message.thinking is None
    (request,) = gateway.emulator.chat_requests()
    assert "reasoning" not in (request.args or {})


def test_images_reach_puter_as_image_parts(client: ollama.Client, gateway: RunningGateway) -> None:
    answer = client.chat(model=MODEL, messages=[user("what is this?", images=[PNG])], stream=False)
    assert answer.message.content is not None and "(with 1 image)" in answer.message.content
    (request,) = gateway.emulator.chat_requests()
    assert request.messages is not None
    (sent,) = request.messages
    expected_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert sent["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": expected_url}},
    ]


def test_format_json_reaches_puter_as_an_instruction(client: ollama.Client, gateway: RunningGateway) -> None:
    client.chat(model=MODEL, messages=[user("a json object please")], format="json", stream=False)
    (request,) = gateway.emulator.chat_requests()
    assert request.messages is not None
    assert request.messages[0]["role"] == "system"
    assert "JSON" in request.messages[0]["content"]


def test_the_options_puter_takes_reach_it_and_num_predict_limits_the_answer(
    client: ollama.Client, gateway: RunningGateway
) -> None:
    options = {"num_predict": 3, "temperature": 0.3, "stop": ["END"], "top_k": 5}
    answer = client.chat(model=MODEL, messages=[user("a long answer")], options=options, stream=False)
    assert answer.done_reason == "length"
    assert answer.message.content is not None and len(answer.message.content) <= 12
    (request,) = gateway.emulator.chat_requests()
    sent = request.args or {}
    assert (sent["max_tokens"], sent["temperature"], sent["stop"]) == (3, 0.3, ["END"])
    assert "top_k" not in sent


def test_version_and_root_answer_as_ollama_does(http: httpx2.Client, gateway: RunningGateway) -> None:
    version = http.get(gateway.url + "/api/version")
    assert version.json() == {"version": OLLAMA_VERSION}
    assert [int(number) for number in OLLAMA_VERSION.split(".")] >= [0, 6, 4]  # VS Code's minimum
    root = http.get(gateway.url + "/")
    assert (root.status_code, root.text) == (200, "Ollama is running")
    assert root.headers["content-type"].startswith("text/plain")
    assert http.head(gateway.url + "/").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/api/chat", {"model": "no-such-model", "messages": [user("hi")]}, 404, "no-such-model"),
        ("/api/chat", {"model": MODEL, "messages": [user("hi")], "think": "max"}, 400, "think"),
        ("/api/chat", {"model": MODEL, "messages": [{"role": "tool", "content": "x"}]}, 400, "tool call"),
        ("/api/generate", {"model": MODEL, "prompt": "p", "raw": True}, 400, "raw"),
        ("/api/generate", {"model": MODEL, "prompt": "p", "suffix": "}"}, 400, "suffix"),
        ("/api/pull", {"model": MODEL}, 501, "not served"),
        ("/api/embed", {"model": MODEL, "input": "x"}, 501, "embeddings"),
        ("/api/nonsense", {}, 404, "not an endpoint"),
    ],
)
def test_errors_are_ollamas_error_object_with_the_status(
    http: httpx2.Client, gateway: RunningGateway, path: str, body: dict[str, Any], status: int, words: str
) -> None:
    response = post(http, gateway, path, body)
    assert response.status_code == status
    assert list(response.json()) == ["error"]
    assert words in response.json()["error"]


def test_a_body_that_is_not_json_is_refused_in_ollamas_shape(
    http: httpx2.Client, gateway: RunningGateway
) -> None:
    response = http.post(gateway.url + "/api/chat", content=b"{not json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_the_client_raises_the_error_it_was_sent(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="no-such-model", messages=[user("hi")])
    assert caught.value.status_code == 404
    assert "no-such-model" in caught.value.error


def test_a_failure_before_content_fails_over_silently_with_exactly_one_answer(
    http: httpx2.Client,
    own_gateway: RunningGateway,
) -> None:
    emulator = own_gateway.emulator
    emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, model=MODEL, account=emulator.paid.username)
    emulator.state.clear_requests()
    response = post(http, own_gateway, "/api/chat", {"model": MODEL, "messages": [user("hello")]})
    assert response.status_code == 200
    lines = ndjson_lines(response)
    assert not any("error" in line for line in lines)
    assert sum(line["done"] for line in lines) == 1
    text = "".join(line["message"]["content"] for line in lines)
    assert text.count("You said:") == 1
    assert [(r.username, r.status) for r in emulator.chat_requests()] == [
        (emulator.paid.username, 429),
        (emulator.free.username, 200),
    ]


def test_a_failure_after_content_ends_with_an_error_line_and_no_second_request(
    http: httpx2.Client,
    own_gateway: RunningGateway,
) -> None:
    emulator = own_gateway.emulator
    emulator.state.add_fault(
        Fault.STREAM_ERROR_AFTER_TEXT, model=MODEL, text_lines=2, message="reset by peer"
    )
    emulator.state.clear_requests()
    response = post(http, own_gateway, "/api/chat", {"model": MODEL, "messages": [user("hello")]})
    assert response.status_code == 200  # content had gone out before the failure
    *sent, last = ndjson_lines(response)
    assert len(sent) == 2 and all(line["done"] is False for line in sent)
    assert list(last) == ["error"]
    assert len(emulator.chat_requests()) == 1


def test_the_client_sees_the_text_then_the_error_of_a_broken_answer(own_gateway: RunningGateway) -> None:
    client = ollama.Client(host=own_gateway.url)
    own_gateway.emulator.state.add_fault(Fault.STREAM_ERROR_AFTER_TEXT, model=MODEL, text_lines=2)
    received: list[str] = []

    def read_all() -> None:
        for part in client.chat(model=MODEL, messages=[user("hello")], stream=True):
            received.append(part.message.content or "")

    with pytest.raises(ollama.ResponseError):
        read_all()
    assert "".join(received).startswith(f"[{CANONICAL}]")


def test_when_no_candidate_can_answer_the_status_says_so_before_any_byte(
    http: httpx2.Client, own_gateway: RunningGateway
) -> None:
    own_gateway.emulator.state.add_fault(Fault.UPSTREAM_PROVIDER_UNAVAILABLE, times=None)
    response = post(http, own_gateway, "/api/chat", {"model": MODEL, "messages": [user("hello")]})
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert list(response.json()) == ["error"]


def test_with_keys_required_the_api_asks_for_one_and_refuses_in_ollamas_shape(
    http: httpx2.Client, emulator: Emulator, home: Path
) -> None:
    with running_gateway(emulator, home, emulator.paid, gateway={"require_keys": True}) as keyed:
        store = SQLiteKeyStore(key_store_file(keyed.paths))
        try:
            _, secret = store.create_now(KeySpec("nano-only", models=(MODEL,)), now=time.time())
        finally:
            store.close()
        chat = {"model": MODEL, "messages": [user("hi")], "stream": False}
        refused = post(http, keyed, "/api/chat", chat)
        assert refused.status_code == 401 and list(refused.json()) == ["error"]
        # The key is checked first: without one, nothing is said about the body.
        assert post(http, keyed, "/api/chat", {**chat, "think": "max"}).status_code == 401
        assert http.get(keyed.url + "/api/tags").status_code == 401
        # What health probes and version checks call needs no key.
        assert http.get(keyed.url + "/api/version").status_code == 200
        assert http.get(keyed.url + "/").status_code == 200
        client = ollama.Client(host=keyed.url, headers={"Authorization": f"Bearer {secret}"})
        assert client.chat(model=MODEL, messages=[user("hi")], stream=False).message.content
        assert client.list().models
        assert client.show("claude-sonnet-4-5").capabilities  # listing is not chatting
        with pytest.raises(ollama.ResponseError) as caught:
            client.chat(model="claude-sonnet-4-5", messages=[user("hi")], stream=False)
        assert caught.value.status_code == 403
