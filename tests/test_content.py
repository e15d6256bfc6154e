"""Chat calls with content parts, tools and tool calls: their checks, the upstream request built
for each model (foreign reasoning dropped), and routing by what a call needs. Pure: no I/O."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from puter_mcp.core import BadRequest, ChatCall, ImagePart, ModelsQuery, ReasoningPart, TextPart, Turn
from puter_mcp.core.upstream import chat_request
from puter_mcp.emulator.catalogue import default_catalogue
from puter_mcp.puter.catalogue import Catalogue
from puter_mcp.routing import chains
from puter_mcp.routing.chains import Needs, UnmetNeedsError, VirtualModel

PNG_DATA_URL = "data:image/png;base64,iVBORw0KGgo="
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def conversation(**extra: Any) -> dict[str, Any]:
    """A whole call in its JSON form: a tool call made and answered, then a question with an image."""
    return copy.deepcopy(
        {
            "model": "claude-sonnet-5",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "What is the weather in Oslo?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "reasoning",
                            "text": "I should look it up.",
                            "model": "claude-sonnet-5",
                            "signature": "sig-a",
                        },
                        {"type": "text", "text": "Looking it up."},
                    ],
                    "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "And this picture?"},
                        {"type": "image", "url": PNG_DATA_URL},
                    ],
                },
            ],
            "tools": [WEATHER],
            **extra,
        }
    )


# --- ChatCall: shapes and their refusals -------------------------------------------------------


def test_a_whole_conversation_parses_into_typed_turns() -> None:
    call = ChatCall.parse(conversation(tool_choice={"name": "get_weather"}, stop=["END"]))
    assistant, tool, question = call.messages[2], call.messages[3], call.messages[4]
    assert assistant.tool_calls[0].arguments == '{"city":"Oslo"}'  # an object is written as JSON text
    assert assistant.tool_calls[0].parsed_arguments() == {"city": "Oslo"}
    assert isinstance(assistant.parts[0], ReasoningPart) and assistant.parts[0].model == "claude-sonnet-5"
    assert tool.tool_call_id == "call_1"
    assert question.images == [ImagePart(url=PNG_DATA_URL)]
    assert call.last_user_message() == "And this picture?"
    assert call.needs() == Needs(images=True, tools=True)
    assert ChatCall.build(message="hi").needs() == Needs()


@pytest.mark.parametrize(
    ("change", "argument", "words"),
    [
        (lambda c: c["messages"][3].pop("tool_call_id"), "messages.3", "needs `tool_call_id`"),
        (
            lambda c: c["messages"][4]["content"].__setitem__(1, {"type": "image", "url": "ftp://x/y.png"}),
            "messages.4.content.1.url",
            "https URL or a data: URL",
        ),
        (
            lambda c: c["messages"][4]["content"].__setitem__(
                1, {"type": "image", "url": "data:text/plain;base64,aGk="}
            ),
            "messages.4.content.1.url",
            "data:image/<type>;base64",
        ),
        (
            lambda c: c["messages"][3].__setitem__("tool_call_id", "call_9"),
            "",
            "'call_9', which no earlier assistant turn made",
        ),
        (lambda c: c.__setitem__("tool_choice", {"name": "nope"}), "", "not among `tools`"),
        (
            lambda c: c.__setitem__("tool_choice", "required") or c.__setitem__("tools", []),
            "",
            "no `tools` are given",
        ),
        (lambda c: c["tools"][0].__setitem__("name", "get weather"), "tools.0.name", "1-64 letters"),
        (
            lambda c: c["tools"][0].__setitem__("parameters", {"type": "string"}),
            "tools.0.parameters",
            "type object",
        ),
        (
            lambda c: c["messages"][2]["tool_calls"][0].__setitem__("arguments", "[1, 2]"),
            "messages.2.tool_calls.0.arguments",
            "JSON object",
        ),
        (
            lambda c: (
                c["messages"][1].__setitem__("content", [{"type": "image", "url": PNG_DATA_URL}])
                or c["messages"][2]["content"].append({"type": "image", "url": PNG_DATA_URL})
            ),
            "messages.2",
            "images go in user turns",
        ),
        (lambda c: c["messages"][1].__setitem__("role", "robot"), "messages.1.role", "Input should be"),
        (lambda c: c.__setitem__("stop", ["END", ""]), "stop", "cannot be empty"),
        (
            lambda c: c["tools"][0]["parameters"].__setitem__("maximum", float("nan")),
            "tools.0.parameters",
            "NaN and infinity are not JSON numbers",
        ),
    ],
)
def test_bad_shapes_are_refused_with_where_and_why(change: Any, argument: str, words: str) -> None:
    data = conversation()
    change(data)
    with pytest.raises(BadRequest) as caught:
        ChatCall.parse(data)
    assert words in str(caught.value)
    assert (caught.value.argument or "") == argument
    assert str(caught.value).startswith("bad chat argument" if argument else "bad chat call")


def test_build_reports_the_index_of_a_bad_turn_given_as_data() -> None:
    with pytest.raises(BadRequest, match=r"`messages\.1`: a user turn needs content") as caught:
        ChatCall.build(messages=[{"role": "user", "content": "hi"}, {"role": "user", "content": " "}])
    assert caught.value.argument == "messages.1"


# --- the upstream request ----------------------------------------------------------------------


def test_the_request_carries_parts_tools_and_tool_calls_in_puters_shapes() -> None:
    call = ChatCall.parse(conversation(tool_choice={"name": "get_weather"}, stop="END", temperature=0.5))
    body = chat_request(call, "claude-sonnet-5").to_driver_call(stream=True)["args"]
    system, user, assistant, tool, question = body["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    assert user == {"role": "user", "content": "What is the weather in Oslo?"}
    assert assistant["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
    ]
    assert assistant["content"] == [
        {"type": "thinking", "thinking": "I should look it up.", "signature": "sig-a"},
        {"type": "text", "text": "Looking it up."},
    ]
    assert tool == {"role": "tool", "content": "sunny, 21 C", "tool_call_id": "call_1"}
    assert question["content"][1] == {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}
    assert body["tools"] == [{"type": "function", "function": WEATHER}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["stop"] == "END"
    assert body["temperature"] == 0.5
    plain = chat_request(ChatCall.build(message="hi"), "gpt-5-nano").to_driver_call(stream=False)["args"]
    assert not {"tools", "tool_choice", "stop"} & set(plain)


def test_reasoning_goes_back_only_to_the_model_that_produced_it() -> None:
    call = ChatCall.parse(conversation())
    own = chat_request(call, "claude-sonnet-5").messages[2].content
    foreign = chat_request(call, "gpt-5-nano").messages[2].content
    by_alias = chat_request(call, "claude-sonnet-latest", answered_by=["claude-sonnet-5"]).messages[2].content
    assert [part["type"] for part in own] == ["thinking", "text"]  # type: ignore[index]
    assert foreign == [{"type": "text", "text": "Looking it up."}]
    assert by_alias == own


def test_unsigned_reasoning_is_never_sent_and_a_turn_left_empty_is_left_out() -> None:
    call = ChatCall.build(
        messages=[
            Turn(role="user", content="think"),
            Turn(role="assistant", content=[ReasoningPart(text="hmm", model="claude-sonnet-5")]),
            Turn(role="assistant", content=[TextPart(text="done")]),
            Turn(role="user", content="and?"),
        ]
    )
    roles = [message.role for message in chat_request(call, "claude-sonnet-5").messages]
    assert roles == ["user", "assistant", "user"]


# --- routing by needs --------------------------------------------------------------------------

CATALOGUE = Catalogue.from_details(default_catalogue().details())
CHAINS = {
    **chains.BUILTIN_CHAINS,
    "mixed": VirtualModel(
        "mixed", ("deepseek-reasoner", "deepseek-chat", "gpt-5-nano", "moonshotai/kimi-k2-thinking")
    ),
    "text-only": VirtualModel("text-only", ("deepseek-chat", "codestral-latest"), free_fallback=False),
}


def resolve(name: str, needs: Needs, *, free: bool = False) -> chains.ResolvedChain[Any]:
    return chains.resolve(name, CATALOGUE, chains=CHAINS, fallback_to_free=free, needs=needs)


def test_a_chain_keeps_only_models_that_take_images() -> None:
    resolved = resolve("mixed", Needs(images=True), free=True)
    assert resolved.ids == ["gpt-5-nano-2025-08-07"]  # free OpenRouter models say nothing: left out too
    assert resolved.left_out["deepseek-v3.2"] == "takes no images"
    assert resolved.left_out["openrouter:moonshotai/kimi-k2-thinking"] == "takes no images"
    assert resolve("mixed", Needs()).ids[:2] == ["deepseek-v3.2-thinking", "deepseek-v3.2"]


def test_a_chain_keeps_models_that_can_call_tools_or_do_not_say() -> None:
    resolved = resolve("mixed", Needs(tools=True))
    assert resolved.ids == [
        "deepseek-v3.2",
        "gpt-5-nano-2025-08-07",
        "openrouter:moonshotai/kimi-k2-thinking",
    ]
    assert resolved.left_out == {"deepseek-v3.2-thinking": "cannot call tools"}


def test_a_named_model_that_cannot_is_an_error_even_with_free_models_to_spare() -> None:
    with pytest.raises(UnmetNeedsError) as caught:
        resolve("deepseek-chat", Needs(images=True), free=True)
    assert str(caught.value) == (
        "model 'deepseek-chat' (deepseek-v3.2) takes no images (so says Puter's catalogue): "
        "name a model that can take images"
    )
    with pytest.raises(UnmetNeedsError, match="cannot call tools"):
        resolve("deepseek-reasoner", Needs(tools=True))


def test_a_chain_with_no_able_model_left_names_the_need_and_the_chain() -> None:
    with pytest.raises(UnmetNeedsError) as caught:
        resolve("text-only", Needs(images=True, tools=True))
    assert str(caught.value) == (
        "no model of 'text-only' can take images and call tools: "
        "deepseek-v3.2 takes no images; codestral-2508 takes no images"
    )
    assert caught.value.chain == "text-only"


def test_auto_filters_the_chain_it_picks() -> None:
    choice, resolved = chains.resolve_auto(
        "fix this python traceback", CATALOGUE, chains=CHAINS, fallback_to_free=False, needs=Needs(tools=True)
    )
    assert choice.chain == "coding-elite"
    assert "deepseek-v3.2-thinking" in resolved.left_out
    assert "deepseek-v3.2-thinking" not in resolved.ids


def test_needs_describe_themselves() -> None:
    assert not Needs()
    assert Needs(images=True, tools=True).describe() == "take images and call tools"
    assert Needs(tools=True).describe() == "call tools"


@pytest.mark.parametrize(
    ("arguments", "argument", "words"),
    [
        ({"message": 3}, "message", "`message` must be a string, got int"),
        ({"message": "hi", "model": 3}, "model", "`model` must be a string"),
        ({"message": "hi", "system": ["be brief"]}, "system", "`system` must be a string, got list"),
        ({"message": "hi", "system": "  "}, "system", "`system` is only blanks"),
        ({"messages": "hi"}, "messages", "must be a list of turns"),
        ({"messages": {"role": "user", "content": "hi"}}, "messages", "must be a list of turns"),
        ({"message": "hi", "files": "/etc/hostname"}, "files", "must be a list of strings"),
        ({"message": "hi", "files": [3]}, "files", "must be a list of strings"),
        ({"message": "hi", "images": [None]}, "images", "must be a list of strings"),
        ({"message": "hi", "temperature": True}, "temperature", "valid number"),
        ({"message": "hi", "temperature": "0.5"}, "temperature", "valid number"),
        ({"message": "hi", "temperature": float("nan")}, "temperature", "finite number"),
    ],
)
def test_build_refuses_a_wrong_python_argument_by_name(
    arguments: dict[str, Any], argument: str, words: str
) -> None:
    # The Python API's keyword arguments: a wrong type is a BadRequest naming the argument,
    # never an AttributeError or pydantic's own error escaping from inside.
    with pytest.raises(BadRequest, match=re.escape(words)) as caught:
        ChatCall.build(**arguments)
    assert caught.value.argument == argument


def test_build_takes_an_integer_temperature_and_an_empty_system() -> None:
    call = ChatCall.build(message="hi", temperature=1, system="")
    assert call.temperature == 1.0
    assert [turn.role for turn in call.messages] == ["user"]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"limit": -1}, "limit"),  # would slice the catalogue from its end
        ({"limit": 0}, "limit"),
        ({"limit": True}, "limit"),
        ({"offset": -5}, "offset"),
        ({"offset": 1.5}, "offset"),
    ],
)
def test_a_models_query_checks_its_page_when_made(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        ModelsQuery(**fields)
