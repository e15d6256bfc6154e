"""The Ollama face's translation, without a server: requests into chat calls, the core's tool
call fragments into Ollama's whole calls, catalogue records into Ollama model entries.

The same behaviour through the official client and a running gateway: test_gateway_ollama.py.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from puter_mcp.core import BadRequest, ImagePart, ModelRecord, TextPart, ToolCallDelta, VirtualModelRecord
from puter_mcp.gateway.ollama import (
    DEFAULT_THINK_EFFORT,
    Catalogue,
    Durations,
    ToolCallGatherer,
    catalogue_name,
    chat_call,
    done_reason,
    generate_call,
    image_media_type,
    reasoning_effort,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)
JPEG = b"\xff\xd8\xff\xe0" + bytes(24)
GIF = b"GIF89a" + bytes(24)
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(16)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def chat(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-5-nano", "messages": list(messages), **extra}


def refusal(body: dict[str, Any], *, generate: bool = False) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        (generate_call if generate else chat_call)(body)
    return caught.value


USER = {"role": "user", "content": "hello"}


@pytest.mark.parametrize(
    ("asked", "known"),
    [
        ("gpt-5-nano:latest", "gpt-5-nano"),
        ("GPT-5-Nano:LATEST", "GPT-5-Nano"),
        ("openrouter:vendor/model:free", "openrouter:vendor/model:free"),
        ("coding-elite", "coding-elite"),
    ],
)
def test_the_latest_tag_ollama_clients_add_is_dropped_and_other_tags_kept(asked: str, known: str) -> None:
    assert catalogue_name(asked) == known


def test_a_request_without_stream_streams_and_keeps_the_model_name_as_the_catalogue_takes_it() -> None:
    call = chat_call(chat(USER, model="gpt-5-nano:latest"))
    assert call.model == "gpt-5-nano"
    assert [(turn.role, turn.content) for turn in call.messages] == [("user", "hello")]


@pytest.mark.parametrize(
    ("think", "effort"),
    [(True, DEFAULT_THINK_EFFORT), (False, None), (None, None), ("low", "low"), ("HIGH", "high")],
)
def test_think_becomes_the_one_reasoning_effort_puter_takes(think: Any, effort: str | None) -> None:
    assert reasoning_effort(think) == effort
    assert chat_call(chat(USER, think=think)).reasoning_effort == effort


def test_think_outside_its_values_is_refused_naming_it() -> None:
    error = refusal(chat(USER, think="max"))
    assert error.argument == "think"
    assert '"low", "medium" or "high"' in str(error)


def test_the_options_ollama_shares_with_puter_are_taken_and_the_rest_ignored() -> None:
    call = chat_call(
        chat(USER, options={"temperature": 0.2, "num_predict": 64, "stop": ["END"], "top_k": 3, "num_ctx": 8})
    )
    assert (call.temperature, call.max_tokens, call.stop) == (0.2, 64, ["END"])


@pytest.mark.parametrize("unlimited", [-1, -2])
def test_ollamas_unlimited_lengths_leave_the_length_to_the_model(unlimited: int) -> None:
    assert chat_call(chat(USER, options={"num_predict": unlimited})).max_tokens is None


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"temperature": 3}, "options.temperature"),
        ({"temperature": "hot"}, "options.temperature"),
        ({"num_predict": 0}, "options.num_predict"),
        ({"num_predict": 1.5}, "options.num_predict"),
        ({"stop": [""]}, "options.stop"),
    ],
)
def test_a_wrong_option_is_refused_by_its_ollama_name(options: dict[str, Any], where: str) -> None:
    assert refusal(chat(USER, options=options)).argument == where


@pytest.mark.parametrize(
    ("data", "media_type"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp"), (b"hello", None)],
)
def test_an_images_media_type_is_read_from_its_bytes(data: bytes, media_type: str | None) -> None:
    assert image_media_type(data) == media_type


def test_images_become_image_parts_after_the_text_of_their_message() -> None:
    call = chat_call(chat({"role": "user", "content": "what is this?", "images": [b64(PNG), b64(JPEG)]}))
    (turn,) = call.messages
    assert isinstance(turn.content, list)
    text, *images = turn.content
    assert text == TextPart(text="what is this?")
    assert [image.media_type for image in images if isinstance(image, ImagePart)] == [
        "image/png",
        "image/jpeg",
    ]
    assert images[0] == ImagePart(url=f"data:image/png;base64,{b64(PNG)}")


@pytest.mark.parametrize(
    ("image", "problem"), [(b64(b"not an image"), "not a PNG"), ("%%%", "not valid base64")]
)
def test_an_image_that_is_not_one_is_refused_naming_where_it_is(image: str, problem: str) -> None:
    error = refusal(chat({"role": "user", "content": "look", "images": [image]}))
    assert error.argument == "messages.0.images.0"
    assert problem in str(error)


def call_turn(*names: str, **extra: Any) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": name, "arguments": {"n": i}}} for i, name in enumerate(names)],
        **extra,
    }


def test_tool_results_are_paired_with_the_calls_they_answer_in_order() -> None:
    call = chat_call(
        chat(
            USER,
            call_turn("weather", "time"),
            {"role": "tool", "content": "sunny"},
            {"role": "tool", "content": "noon"},
            USER,
        )
    )
    made = call.messages[1].tool_calls
    assert [(c.name, c.parsed_arguments()) for c in made] == [("weather", {"n": 0}), ("time", {"n": 1})]
    assert len({c.id for c in made}) == 2
    assert [turn.tool_call_id for turn in call.messages[2:4]] == [made[0].id, made[1].id]


def test_a_tool_result_naming_its_tool_answers_that_call_whatever_its_place() -> None:
    call = chat_call(
        chat(
            USER,
            call_turn("weather", "time"),
            {"role": "tool", "content": "noon", "tool_name": "time"},
            {"role": "tool", "content": "sunny"},
        )
    )
    weather, time = call.messages[1].tool_calls
    assert [turn.tool_call_id for turn in call.messages[2:]] == [time.id, weather.id]


def test_ids_a_client_sends_back_are_kept_and_pair_by_themselves() -> None:
    turn = call_turn("weather")
    turn["tool_calls"][0]["id"] = "call_abc"
    call = chat_call(chat(USER, turn, {"role": "tool", "content": "sunny", "tool_call_id": "call_abc"}))
    assert call.messages[2].tool_call_id == "call_abc"


def test_ids_made_for_two_assistant_turns_never_collide() -> None:
    call = chat_call(
        chat(
            USER,
            call_turn("a"),
            {"role": "tool", "content": "1"},
            call_turn("a"),
            {"role": "tool", "content": "2"},
        )
    )
    first, second = call.messages[1].tool_calls[0].id, call.messages[3].tool_calls[0].id
    assert first != second
    assert [call.messages[2].tool_call_id, call.messages[4].tool_call_id] == [first, second]


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        ([USER, {"role": "tool", "content": "orphan"}], "no earlier assistant message made a tool call"),
        (
            [USER, call_turn("a"), {"role": "tool", "content": "x", "tool_name": "b"}],
            "not yet answered are: a",
        ),
        (
            [USER, call_turn("a"), {"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}],
            "no earlier assistant message made a tool call",
        ),
    ],
)
def test_a_tool_result_that_answers_no_call_is_refused(messages: list[dict[str, Any]], problem: str) -> None:
    error = refusal(chat(*messages))
    assert problem in str(error)
    assert error.argument is not None and error.argument.startswith("messages.")


def test_an_empty_assistant_placeholder_is_left_out() -> None:
    call = chat_call(chat(USER, {"role": "assistant", "content": ""}, USER))
    assert [turn.role for turn in call.messages] == ["user", "user"]


def test_tools_are_taken_in_ollamas_function_shape() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    call = chat_call(
        chat(
            USER,
            tools=[
                {
                    "type": "function",
                    "function": {"name": "weather", "description": "d", "parameters": schema},
                }
            ],
        )
    )
    (tool,) = call.tools
    assert (tool.name, tool.description, tool.parameters) == ("weather", "d", schema)


def test_a_badly_named_tool_is_refused_naming_the_field() -> None:
    error = refusal(chat(USER, tools=[{"type": "function", "function": {"name": "two words"}}]))
    assert error.argument == "tools.0.name"


@pytest.mark.parametrize("fmt", ["json", {"type": "object", "properties": {"a": {"type": "integer"}}}])
def test_format_becomes_an_instruction_after_the_callers_own_system_messages(fmt: Any) -> None:
    call = chat_call(chat({"role": "system", "content": "be brief"}, USER, format=fmt))
    roles = [turn.role for turn in call.messages]
    assert roles == ["system", "system", "user"]
    assert call.messages[0].content == "be brief"
    instruction = call.messages[1].text
    assert "JSON" in instruction
    if isinstance(fmt, dict):
        assert '"a":{"type":"integer"}' in instruction


def test_a_format_that_is_neither_json_nor_a_schema_is_refused() -> None:
    assert refusal(chat(USER, format="yaml")).argument == "format"


def test_a_request_without_model_or_with_a_stream_flag_of_another_kind_is_refused() -> None:
    assert refusal({"messages": [USER]}).argument == "model"
    assert refusal(chat(USER, stream="yes")).argument == "stream"
    assert refusal(chat()).argument == "messages"


def test_generate_is_one_exchange_with_its_system_prompt_and_images() -> None:
    call = generate_call(
        {"model": "m", "prompt": "describe", "system": "terse", "images": [b64(GIF)], "think": "low"}
    )
    assert [turn.role for turn in call.messages] == ["system", "user"]
    assert call.messages[1].images[0].media_type == "image/gif"
    assert call.reasoning_effort == "low"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"raw": True}, "raw"),
        ({"suffix": "}"}, "suffix"),
        ({"template": "{{ .Prompt }}"}, "template"),
        ({"context": [1, 2]}, "context"),
    ],
)
def test_generate_refuses_what_it_cannot_honour_by_name(extra: dict[str, Any], field: str) -> None:
    error = refusal({"model": "m", "prompt": "p", **extra}, generate=True)
    assert error.argument == field


def test_generate_takes_an_empty_context_and_raw_false() -> None:
    call = generate_call({"model": "m", "prompt": "p", "context": [], "raw": False})
    assert call.messages[0].text == "p"


def test_whole_calls_come_out_as_soon_as_the_next_one_starts_and_the_rest_at_the_end() -> None:
    gatherer = ToolCallGatherer()
    assert gatherer.add(ToolCallDelta(0, "call_1", "weather", '{"city":')) == []
    assert gatherer.add(ToolCallDelta(0, None, None, ' "Paris"}')) == []
    (first,) = gatherer.add(ToolCallDelta(1, "call_2", "time", "{}"))
    assert (first.id, first.name, first.arguments) == ("call_1", "weather", {"city": "Paris"})
    assert first.entry() == {
        "id": "call_1",
        "function": {"index": 0, "name": "weather", "arguments": {"city": "Paris"}},
    }
    (second,) = gatherer.flush()
    assert (second.index, second.name, second.arguments) == (1, "time", {})
    assert gatherer.flush() == []


def test_interleaved_fragments_wait_until_their_call_is_whole() -> None:
    gatherer = ToolCallGatherer()
    gatherer.add(ToolCallDelta(0, "a", "one", '{"x":'))
    assert gatherer.add(ToolCallDelta(1, "b", "two", '{"y": 2}')) == []  # call 0 is not whole yet
    (two,) = gatherer.add(ToolCallDelta(0, None, None, "1}"))
    assert two.name == "two"
    (one,) = gatherer.flush()
    assert one.arguments == {"x": 1}


def test_arguments_that_never_become_an_object_are_an_error_at_the_end() -> None:
    gatherer = ToolCallGatherer()
    gatherer.add(ToolCallDelta(0, "a", "one", "[1, 2]"))
    with pytest.raises(ValueError, match="not a JSON object"):
        gatherer.flush()


@pytest.mark.parametrize(
    ("finish", "reason"), [("stop", "stop"), ("length", "length"), ("tool_calls", "stop"), (None, "stop")]
)
def test_done_reason_is_ollamas_spelling_of_the_finish_reason(finish: str | None, reason: str) -> None:
    assert done_reason(finish) == reason


def test_durations_are_nanoseconds_to_the_first_content_and_after_it() -> None:
    fields = Durations(started=10.0, first_content=10.25, ended=11.0).fields()
    assert fields == {
        "total_duration": 1_000_000_000,
        "load_duration": 0,
        "prompt_eval_duration": 250_000_000,
        "eval_duration": 750_000_000,
    }


def test_a_whole_answers_time_is_all_eval_since_its_first_content_is_not_seen() -> None:
    fields = Durations(started=10.0, ended=10.5).fields()
    assert (fields["prompt_eval_duration"], fields["eval_duration"]) == (0, 500_000_000)


def record(model_id: str, **extra: Any) -> ModelRecord:
    return ModelRecord(id=model_id, provider=extra.pop("provider", "openai-completion"), **extra)


CATALOGUE = Catalogue(
    [
        record(
            "gpt-5-nano",
            context=400_000,
            input_modalities=["text", "image"],
            tool_calling=True,
            aliases=["nano"],
        ),
        record(
            "deepseek-chat",
            provider="deepseek",
            context=128_000,
            input_modalities=["text"],
            tool_calling=False,
        ),
        record("openrouter:x/y", provider="openrouter", context=None),
    ],
    [VirtualModelRecord(name="chat-fast", description="quick", members=["deepseek-chat", "gpt-5-nano"])],
)


def test_a_models_capabilities_are_what_routing_lets_it_do() -> None:
    nano, deepseek, unknown = (
        CATALOGUE.find(name) for name in ("gpt-5-nano", "deepseek-chat", "openrouter:x/y")
    )
    assert nano is not None and deepseek is not None and unknown is not None
    assert nano.capabilities == ["completion", "tools", "vision", "thinking"]
    assert deepseek.capabilities == ["completion"]
    # The catalogue says nothing of this one: routing counts it able to call tools, not to see.
    assert unknown.capabilities == ["completion", "tools"]


def test_a_virtual_model_can_do_what_any_member_can_within_the_smallest_context() -> None:
    chain = CATALOGUE.find("chat-fast:latest")
    assert chain is not None
    assert chain.capabilities == ["completion", "tools", "vision", "thinking"]
    assert chain.context == 128_000
    assert chain.show("t")["details"]["family"] == "puter-mcp"
    auto = CATALOGUE.find("AUTO")
    assert auto is not None and auto.members == ("deepseek-chat", "gpt-5-nano")


def test_show_gives_model_info_keyed_by_the_architecture_as_vs_code_reads_it() -> None:
    entry = CATALOGUE.find("nano")  # an alias
    assert entry is not None and entry.name == "gpt-5-nano"
    shown = entry.show("2026-01-01T00:00:00Z")
    architecture = shown["model_info"]["general.architecture"]
    assert architecture == "openai_completion"
    assert shown["model_info"][f"{architecture}.context_length"] == 400_000
    assert all(isinstance(shown[key], str) for key in ("modelfile", "parameters", "template"))


def test_tags_are_stable_and_name_every_model_virtual_ones_first() -> None:
    tags = [entry.tag("t") for entry in CATALOGUE.entries]
    assert [tag["name"] for tag in tags] == [
        "chat-fast",
        "auto",
        "gpt-5-nano",
        "deepseek-chat",
        "openrouter:x/y",
    ]
    again = [entry.tag("t") for entry in Catalogue([record("gpt-5-nano")], []).entries]
    assert again[-1]["digest"] == tags[2]["digest"]
    assert {tag["size"] for tag in tags} == {0}


def test_an_unknown_name_gets_the_closest_ones() -> None:
    assert CATALOGUE.find("gpt-5-nan") is None
    assert CATALOGUE.closest("gpt-5-nan")[0] == "gpt-5-nano"
