"""OpenAI's Responses API (``POST /v1/responses``), stateless, over the core's chat.

Codex speaks nothing else, and the openai SDKs' ``responses.create`` / ``responses.stream``
use it. The gateway keeps no state, so a request carries its whole conversation in `input`:

```
request                           ChatCall
  instructions                 -> a system turn, first
  input: "text"                -> one user turn
  input: [items]
    message (user)             -> user turn: input_text -> TextPart, input_image -> ImagePart
    message (system/developer) -> system turn
    message (assistant)        -> assistant turn (output_text / refusal -> text)
    function_call              -> a ToolCall of the assistant turn before it (or a new one)
    function_call_output       -> tool turn answering its call_id
    reasoning                  -> dropped (see `_drop_reasoning`)
  tools (type function)        -> Tool;  tool_choice -> auto | none | required | NamedTool
  reasoning.effort             -> reasoning_effort (minimal -> low, xhigh -> high, none -> off)
  max_output_tokens            -> max_tokens;  temperature -> temperature
```

The answer is a ``response`` object whose `output` holds, in order, a ``reasoning`` item (the
model's reasoning as summary text), a ``message`` with one ``output_text`` part, and one
``function_call`` item per tool call. Streamed, the same items are built by the typed events
OpenAI sends (`ResponseEvents`), each with its ``sequence_number``; an answer that breaks off
after content began ends with ``response.failed`` after what was sent (nothing is replayed).
docs/gateway-responses.md has the whole mapping, and what is ignored.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from puter_mcp.core import (
    BackendError,
    BadRequest,
    ChatCall,
    ChatEvent,
    ChatOutcome,
    Finished,
    ReasoningDelta,
    StreamFailed,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from puter_mcp.gateway.exchange import Exchange
from puter_mcp.gateway.failures import from_backend_error
from puter_mcp.gateway.gate import OpenedAnswer
from puter_mcp.gateway.handling import Gateway, answer_headers, read_json, requested_model, routes_for
from puter_mcp.gateway.openai_chat import OPENAI, finish_reason, routing_note, usage_of

__all__ = [
    "ResponseEvents",
    "ResponsesEncoder",
    "ResponsesRequest",
    "parse_request",
    "response_object",
    "routes",
]

# --------------------------------------------------------------------------------------------
# The request


# OpenAI's efforts, onto the three Puter takes: the nearest one that reasons at least as much,
# except "none", which asks for no reasoning at all.
_EFFORTS: dict[str, Literal["low", "medium", "high"] | None] = {
    "none": None,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}

# Fields that need state the gateway does not keep: refused, with what to do instead.
_STATEFUL = {
    "previous_response_id": (
        "the gateway keeps no state, so `previous_response_id` cannot be followed: send the whole "
        "conversation as `input` (the earlier input items, then the output items of the answer)"
    ),
    "conversation": (
        "the gateway keeps no conversations: send the whole conversation as `input` instead of "
        "naming a conversation"
    ),
    "prompt": "the gateway keeps no stored prompts: send the prompt's text as `instructions` and `input`",
    "background": "the gateway keeps no responses to poll, so it answers in the foreground only",
}

# Failure kinds (string enum values) another account would fix: the caller is throttled.
_THROTTLED = frozenset({"rate_limited", "out_of_credits"})

_TEXT_TYPES = ("input_text", "output_text", "text", "refusal")

# What a tool output that says nothing becomes: the core's tool turns need content, and "no
# output" is what the tool said.
_EMPTY_TOOL_OUTPUT = "(no output)"


@dataclass(frozen=True)
class ResponsesRequest:
    """A Responses request, translated.

    Attributes:
        call: the chat call to answer.
        stream: answer with server-sent events.
        echo: the request fields a ``response`` object repeats (tools, tool_choice,
            temperature, ...), in OpenAI's shapes.
    """

    call: ChatCall
    stream: bool
    echo: dict[str, Any] = field(default_factory=dict)


def parse_request(body: Mapping[str, Any], *, default_model: str | None = None) -> ResponsesRequest:
    """Translate a Responses request body into the core's chat call.

    `default_model` answers a request that names no model. Unknown fields are ignored (clients
    add new ones every month); a known field of the wrong type is refused, naming it.

    Raises:
        BadRequest: the request cannot be answered as given; `argument` is the field at fault,
            in the Responses API's terms (``input[2].content[0].image_url``).
    """
    for name, why in _STATEFUL.items():
        value = body.get(name)
        if value is not None and value is not False:
            raise BadRequest(why, argument=name)

    model = _optional(body, "model", str, "a string")
    stream = _optional(body, "stream", bool, "true or false") or False
    _optional(body, "store", bool, "true or false")  # accepted; nothing is stored either way
    parallel_tool_calls = _optional(body, "parallel_tool_calls", bool, "true or false")
    temperature = _number(body, "temperature")
    top_p = _number(body, "top_p")
    max_output_tokens = body.get("max_output_tokens")
    if max_output_tokens is not None and (
        isinstance(max_output_tokens, bool) or not isinstance(max_output_tokens, int) or max_output_tokens < 1
    ):
        raise BadRequest("`max_output_tokens` must be a positive whole number", argument="max_output_tokens")
    instructions = _optional(body, "instructions", str, "a string")
    metadata = _optional(body, "metadata", dict, "an object of strings")
    user = _optional(body, "user", str, "a string")
    truncation = _optional(body, "truncation", str, '"auto" or "disabled"')
    if truncation not in (None, "auto", "disabled"):
        raise BadRequest('`truncation` must be "auto" or "disabled"', argument="truncation")
    include = _optional(body, "include", list, "a list of strings")
    if include is not None and not all(isinstance(entry, str) for entry in include):
        raise BadRequest("`include` must be a list of strings", argument="include")
    effort, reasoning_echo = _reasoning(body.get("reasoning"))
    text_echo = _text_format(body.get("text"))

    turns = _Turns()
    if instructions:
        turns.add({"role": "system", "content": instructions}, "instructions")
    _input(body.get("input"), turns)
    tools, tools_echo = _tools(body.get("tools"))
    tool_choice, tool_choice_echo = _tool_choice(body.get("tool_choice"), tools)

    data: dict[str, Any] = {"messages": turns.messages, "model": model or default_model, "tools": tools}
    # "none" without tools says nothing; upstream, a tool choice without tools can be refused.
    if tool_choice is not None and (tools or tool_choice != "none"):
        data["tool_choice"] = tool_choice
    if temperature is not None:
        data["temperature"] = temperature
    if max_output_tokens is not None:
        data["max_tokens"] = max_output_tokens
    if effort is not None:
        data["reasoning_effort"] = effort
    try:
        call = ChatCall.parse(data)
    except BadRequest as exc:
        raise turns.in_responses_terms(exc) from exc

    echo: dict[str, Any] = {
        "instructions": instructions,
        "max_output_tokens": max_output_tokens,
        "metadata": metadata or {},
        "parallel_tool_calls": True if parallel_tool_calls is None else parallel_tool_calls,
        "reasoning": reasoning_echo,
        "temperature": 1.0 if temperature is None else temperature,
        "text": text_echo,
        "tool_choice": tool_choice_echo,
        "tools": tools_echo,
        "top_p": 1.0 if top_p is None else top_p,
        "truncation": truncation or "disabled",
        "user": user,
    }
    return ResponsesRequest(call=call, stream=stream, echo=echo)


def _optional(body: Mapping[str, Any], name: str, kind: type, what: str) -> Any:
    value = body.get(name)
    # bool is an int, and an int is no bool: check the exact types that matter.
    if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
        raise BadRequest(f"`{name}` must be {what}, got {_shown(value)}", argument=name)
    return value


def _number(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"`{name}` must be a number, got {_shown(value)}", argument=name)
    return float(value)


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _reasoning(value: Any) -> tuple[str | None, dict[str, Any]]:
    """The effort to ask Puter for, and the `reasoning` a response repeats."""
    if value is None:
        return None, {"effort": None, "summary": None}
    if not isinstance(value, dict):
        raise BadRequest('`reasoning` must be an object such as {"effort": "low"}', argument="reasoning")
    given = value.get("effort")
    if given is None:
        return None, {"effort": None, "summary": value.get("summary")}
    if not isinstance(given, str) or given.strip().lower() not in _EFFORTS:
        raise BadRequest(
            f"`reasoning.effort` must be one of {', '.join(_EFFORTS)}, got {_shown(given)}",
            argument="reasoning.effort",
        )
    return _EFFORTS[given.strip().lower()], {"effort": given, "summary": value.get("summary")}


def _text_format(value: Any) -> dict[str, Any]:
    """The `text` a response repeats. Only plain text is answered: the core has no structured
    output, and a schema ignored would hand the client text it cannot parse."""
    if value is None:
        return {"format": {"type": "text"}}
    if not isinstance(value, dict):
        raise BadRequest('`text` must be an object such as {"format": {"type": "text"}}', argument="text")
    text_format = value.get("format")
    if text_format is None:
        return {**value, "format": {"type": "text"}}
    if not isinstance(text_format, dict) or text_format.get("type") != "text":
        kind = text_format.get("type") if isinstance(text_format, dict) else text_format
        raise BadRequest(
            f"the gateway answers in plain text only; `text.format` of type {_shown(kind)} "
            'is not supported (leave it out, or use {"type": "text"})',
            argument="text.format",
        )
    return dict(value)


class _Turns:
    """The conversation being built, remembering where each turn came from in the request, so
    that the core's complaint about ``messages.3.content.1.url`` names ``input[2].content[1].image_url``."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.origins: list[str] = []
        self.part_origins: list[list[str]] = []
        self.call_origins: list[list[str]] = []

    def add(self, message: dict[str, Any], origin: str, parts: Sequence[str] = ()) -> None:
        self.messages.append(message)
        self.origins.append(origin)
        self.part_origins.append(list(parts))
        self.call_origins.append([])

    def add_call(self, call: dict[str, Any], origin: str) -> None:
        """A function call: part of the assistant turn just before, else a turn of its own."""
        last = self.messages[-1] if self.messages else None
        if last is None or last["role"] != "assistant":
            self.add({"role": "assistant", "content": "", "tool_calls": []}, origin)
            last = self.messages[-1]
        last.setdefault("tool_calls", []).append(call)
        self.call_origins[-1].append(origin)

    def in_responses_terms(self, exc: BadRequest) -> BadRequest:
        argument = exc.argument
        if not argument:
            return exc
        param = self._param(argument.split("."))
        message = exc.message
        prefix = f"bad chat argument `{argument}`: "
        if message.startswith(prefix):
            message = f"invalid `{param}`: {message.removeprefix(prefix)}"
        return BadRequest(message, argument=param)

    def _param(self, path: list[str]) -> str:
        head, rest = path[0], path[1:]
        if head == "messages":
            if not rest or not rest[0].isdigit() or int(rest[0]) >= len(self.origins):
                return "input"
            index = int(rest[0])
            return self._turn_param(index, rest[1:])
        if head == "tools" and rest and rest[0].isdigit():
            return f"tools[{rest[0]}]" + "".join(f".{part}" for part in rest[1:])
        renamed = {"max_tokens": "max_output_tokens", "reasoning_effort": "reasoning.effort"}
        return renamed.get(head, head)

    def _turn_param(self, index: int, rest: list[str]) -> str:
        origin = self.origins[index]
        if not rest:
            return origin
        if rest[0] == "content":
            parts = self.part_origins[index]
            if len(rest) > 1 and rest[1].isdigit() and int(rest[1]) < len(parts):
                part = parts[int(rest[1])]
                return part + (".image_url" if rest[2:3] == ["url"] else "")
            return origin if origin == "instructions" else f"{origin}.content"
        if rest[0] == "tool_calls":
            calls = self.call_origins[index]
            if len(rest) > 1 and rest[1].isdigit() and int(rest[1]) < len(calls):
                field_name = {"id": "call_id"}.get(rest[2], rest[2]) if len(rest) > 2 else None
                return calls[int(rest[1])] + (f".{field_name}" if field_name else "")
            return origin
        if rest[0] == "tool_call_id":
            return f"{origin}.call_id"
        return origin


def _input(value: Any, turns: _Turns) -> None:
    if isinstance(value, str):
        if not value.strip():
            raise BadRequest("`input` is empty: write the question to ask", argument="input")
        turns.add({"role": "user", "content": value}, "input")
        return
    if not isinstance(value, list) or not value:
        raise BadRequest(
            "`input` must be a string or a non-empty list of items (messages, function calls, "
            "function call outputs)",
            argument="input",
        )
    calls_made: set[str] = set()
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"`{where}` must be an object (an input item)", argument=where)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            _message(item, where, turns)
        elif kind == "function_call":
            call_id = _field(item, "call_id", where)
            name = _field(item, "name", where)
            arguments = item.get("arguments", "{}")
            if not isinstance(arguments, str):
                raise BadRequest(
                    f"`{where}.arguments` must be the JSON text of an object", argument=f"{where}.arguments"
                )
            turns.add_call({"id": call_id, "name": name, "arguments": arguments}, where)
            calls_made.add(call_id)
        elif kind == "function_call_output":
            call_id = _field(item, "call_id", where)
            if call_id not in calls_made:
                raise BadRequest(
                    f"`{where}` answers call {call_id!r}, but no `function_call` item before it has "
                    "that call_id: the gateway keeps no state, so send the function_call item too",
                    argument=f"{where}.call_id",
                )
            output = _tool_output(item.get("output"), where)
            turns.add(
                {"role": "tool", "tool_call_id": call_id, "content": output or _EMPTY_TOOL_OUTPUT}, where
            )
        elif kind == "reasoning":
            _drop_reasoning(item)
        elif kind == "item_reference":
            raise BadRequest(
                f"`{where}` refers to a stored item, but the gateway keeps no state: send the item itself",
                argument=f"{where}.type",
            )
        else:
            raise BadRequest(
                f"`{where}` is an item of type {_shown(kind)}; the gateway takes messages, "
                "function_call, function_call_output and reasoning items",
                argument=f"{where}.type",
            )


def _field(item: Mapping[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"`{where}.{name}` must be a non-empty string", argument=f"{where}.{name}")
    return value


def _drop_reasoning(item: Mapping[str, Any]) -> None:
    """Reasoning items are left out of the conversation sent upstream.

    They carry a model's earlier thoughts but not which model thought them, and vendors sign
    reasoning per model (a block from another model fails the request); OpenAI's own are
    encrypted for OpenAI only. The answer that followed them is kept, which is what the next
    turn needs.
    """
    del item


def _message(item: Mapping[str, Any], where: str, turns: _Turns) -> None:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise BadRequest(
            f"`{where}.role` must be user, assistant, system or developer, got {_shown(role)}",
            argument=f"{where}.role",
        )
    core_role = "system" if role == "developer" else role
    content = item.get("content")
    if isinstance(content, str):
        if role == "assistant" and not content.strip():
            return  # an empty assistant message says nothing; the core refuses empty turns
        turns.add({"role": core_role, "content": content}, where)
        return
    if not isinstance(content, list):
        raise BadRequest(
            f"`{where}.content` must be a string or a list of content parts", argument=f"{where}.content"
        )
    parts: list[dict[str, Any]] = []
    origins: list[str] = []
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        if not isinstance(part, dict):
            raise BadRequest(f"`{at}` must be an object (a content part)", argument=at)
        kind = part.get("type")
        if kind in _TEXT_TYPES:
            text = part.get("refusal" if kind == "refusal" else "text")
            if not isinstance(text, str):
                raise BadRequest(f"`{at}.text` must be a string", argument=f"{at}.text")
            parts.append({"type": "text", "text": text})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise BadRequest(
                    f"`{at}` needs `image_url`: an https URL or a data: URL (file ids need stored files, "
                    "which the gateway does not keep)",
                    argument=f"{at}.image_url",
                )
            parts.append({"type": "image", "url": url})
        else:
            raise BadRequest(
                f"`{at}` is a content part of type {_shown(kind)}; the gateway takes input_text, "
                "output_text and input_image parts",
                argument=f"{at}.type",
            )
        origins.append(at)
    if role == "assistant" and not any(part.get("text", "").strip() for part in parts):
        return
    turns.add({"role": core_role, "content": parts}, where, origins)


def _tool_output(value: Any, where: str) -> str:
    """A function call's output: a string, or a list of text parts (joined)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts: list[str] = []
        for index, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") not in _TEXT_TYPES:
                raise BadRequest(
                    f"`{where}.output[{index}]` must be a text part: the gateway passes tool "
                    "outputs on as text",
                    argument=f"{where}.output[{index}]",
                )
            text = part.get("text")
            if not isinstance(text, str):
                raise BadRequest(
                    f"`{where}.output[{index}].text` must be a string", argument=f"{where}.output"
                )
            texts.append(text)
        return "\n".join(texts)
    raise BadRequest(f"`{where}.output` must be a string or a list of text parts", argument=f"{where}.output")


def _tools(value: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The core's tools, and the `tools` a response repeats."""
    if value is None:
        return [], []
    if not isinstance(value, list):
        raise BadRequest("`tools` must be a list of function tools", argument="tools")
    tools: list[dict[str, Any]] = []
    echo: list[dict[str, Any]] = []
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise BadRequest(f"`{where}` must be an object (a function tool)", argument=where)
        if tool.get("type") != "function":
            raise BadRequest(
                f"`{where}` is a tool of type {_shown(tool.get('type'))}; the gateway offers function "
                "tools only (type function, with name, description and parameters)",
                argument=f"{where}.type",
            )
        name = tool.get("name")
        if not isinstance(name, str):
            raise BadRequest(f"`{where}.name` must be a string", argument=f"{where}.name")
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            raise BadRequest(f"`{where}.description` must be a string", argument=f"{where}.description")
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise BadRequest(
                f"`{where}.parameters` must be a JSON schema object", argument=f"{where}.parameters"
            )
        strict = tool.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise BadRequest(f"`{where}.strict` must be true or false", argument=f"{where}.strict")
        made: dict[str, Any] = {"name": name, "description": description}
        if parameters is not None:
            made["parameters"] = parameters
        tools.append(made)
        echo.append(
            {
                "type": "function",
                "name": name,
                "description": description,
                "parameters": parameters,
                "strict": True if strict is None else strict,
            }
        )
    return tools, echo


def _tool_choice(value: Any, tools: Sequence[Mapping[str, Any]]) -> tuple[Any, Any]:
    """The core's tool choice, and the `tool_choice` a response repeats."""
    if value is None:
        return None, "auto"
    if value in ("auto", "none", "required"):
        return value, value
    if isinstance(value, dict) and value.get("type") == "function":
        name = value.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest("`tool_choice.name` must name a function tool", argument="tool_choice.name")
        if name not in {tool["name"] for tool in tools}:
            raise BadRequest(
                f"`tool_choice` names {name!r}, which is not among `tools`", argument="tool_choice.name"
            )
        return {"name": name}, {"type": "function", "name": name}
    kind = value.get("type") if isinstance(value, dict) else value
    raise BadRequest(
        f'`tool_choice` must be "auto", "none", "required" or {{"type": "function", "name": ...}}, '
        f"got {_shown(kind)}",
        argument="tool_choice",
    )


# --------------------------------------------------------------------------------------------
# The answer


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def _item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _usage(outcome: ChatOutcome, call: ChatCall) -> tuple[dict[str, Any], bool]:
    """The Responses usage object, and whether its counts are estimates (Puter reported none;
    the rule of `/v1/chat/completions`, `usage_of`)."""
    counts, estimated = usage_of(outcome, call)
    input_tokens, output_tokens = counts["prompt_tokens"], counts["completion_tokens"]
    # Puter reports no cached or reasoning share of the counts: 0, as OpenAI says of a model
    # without them.
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }
    return usage, estimated


def _incomplete(outcome: ChatOutcome) -> bool:
    """Whether the answer was cut at its length limit (Responses' ``max_output_tokens``)."""
    return finish_reason(outcome) == "length"


def _shell(
    response_id: str,
    created_at: int,
    model: str,
    echo: Mapping[str, Any],
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    incomplete: bool = False,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``response`` object, as OpenAI returns it."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": echo.get("reasoning", {"effort": None, "summary": None}),
        "service_tier": "default",
        # Nothing is kept, whatever the request asked.
        "store": False,
        "temperature": echo.get("temperature", 1.0),
        "text": echo.get("text", {"format": {"type": "text"}}),
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools", []),
        "top_p": echo.get("top_p", 1.0),
        "truncation": echo.get("truncation", "disabled"),
        "usage": usage,
        "user": echo.get("user"),
        "metadata": echo.get("metadata", {}),
    }


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"id": item_id, "type": "reasoning", "summary": summary}


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [_output_text(text)]
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def response_object(
    outcome: ChatOutcome,
    request: ResponsesRequest,
    *,
    response_id: str | None = None,
    created_at: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """The ``response`` object for an answer delivered whole, and whether its usage is an
    estimate.

    `model` is the model that answered; `status` is ``incomplete`` (reason
    ``max_output_tokens``) when the answer was cut at its length limit.
    """
    incomplete = _incomplete(outcome)
    item_status = "incomplete" if incomplete else "completed"
    output: list[dict[str, Any]] = []
    if outcome.reasoning:
        output.append(_reasoning_item(_item_id("rs"), outcome.reasoning))
    if outcome.text or not outcome.tool_calls:
        output.append(_message_item(_item_id("msg"), outcome.text, item_status))
    for call in outcome.tool_calls:
        output.append(_call_item(_item_id("fc"), call.id, call.name, call.arguments_json, "completed"))
    usage, estimated = _usage(outcome, request.call)
    body = _shell(
        response_id or new_response_id(),
        int(time.time()) if created_at is None else created_at,
        outcome.model,
        request.echo,
        status="incomplete" if incomplete else "completed",
        output=output,
        usage=usage,
        incomplete=incomplete,
    )
    body["puter"] = routing_note(outcome)
    return body, estimated


# --------------------------------------------------------------------------------------------
# The streamed answer


@dataclass
class _Item:
    """One output item of a streamed answer, as it grows."""

    kind: Literal["reasoning", "message", "function_call"]
    id: str
    output_index: int
    text: str = ""
    """The reasoning, the message's text, or the call's arguments."""
    call_id: str = ""
    name: str = ""
    done: bool = False

    def snapshot(self, status: str) -> dict[str, Any]:
        if self.kind == "reasoning":
            return _reasoning_item(self.id, self.text)
        if self.kind == "message":
            return _message_item(self.id, self.text, status)
        return _call_item(self.id, self.call_id, self.name, self.text, status)


def _item_status(item: _Item, status: str) -> str:
    """An item's status when the answer ends with `status`: a length limit cuts the message's
    text, while a function call is only ever sent whole."""
    return status if item.kind == "message" else "completed"


class ResponseEvents:
    """The server-sent events of one streamed answer, from the core's events.

    `opening` gives ``response.created`` and ``response.in_progress``; `feed` turns each core
    event into the events that build the output items (``response.output_item.added``, its
    parts, deltas and ``...done`` events), and `Finished` into ``response.completed`` (or
    ``response.incomplete`` when the answer was cut at its length limit), `StreamFailed` into
    ``response.failed`` after what was sent. Every event carries the next ``sequence_number``.

    One item is open at a time, except function calls, which stay open together until the
    answer ends or text follows them, so a call's late argument fragment still lands on it.
    """

    def __init__(self, model: str, request: ResponsesRequest, *, response_id: str | None = None) -> None:
        self.model = model
        self.request = request
        self.echo = request.echo
        self.response_id = response_id or new_response_id()
        self.created_at = int(time.time())
        self.sequence = 0
        self.items: list[_Item] = []
        self._open: _Item | None = None
        self._calls: dict[int, _Item] = {}
        self.ended = False

    # -- framing

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return (
            f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()
        )

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        return _shell(self.response_id, self.created_at, self.model, self.echo, status=status, **extra)

    # -- the stream

    def opening(self) -> bytes:
        """``response.created`` and ``response.in_progress``: sent with the headers."""
        shell = self._response("in_progress", output=[])
        return self._event("response.created", response=shell) + self._event(
            "response.in_progress", response=shell
        )

    def feed(self, event: ChatEvent) -> bytes:
        """The events that `event` makes (possibly none)."""
        if self.ended:
            return b""
        if isinstance(event, TextDelta):
            return self._text(event.text) if event.text else b""
        if isinstance(event, ReasoningDelta):
            return self._reasoning(event.text) if event.text else b""
        if isinstance(event, ToolCallDelta):
            return self._tool_call(event)
        if isinstance(event, UsageUpdate):
            return b""  # the whole usage comes with `Finished`
        if isinstance(event, Finished):
            return self._finished(event.outcome)
        if isinstance(event, StreamFailed):
            return self._failed(event.error)
        return b""

    def _start(self, kind: Literal["reasoning", "message", "function_call"], prefix: str) -> _Item:
        item = _Item(kind, _item_id(prefix), len(self.items))
        self.items.append(item)
        return item

    def _text(self, text: str) -> bytes:
        out = b""
        item = self._open
        if item is None or item.kind != "message":
            out += self._close_all()
            item = self._open = self._start("message", "msg")
            out += self._event(
                "response.output_item.added",
                output_index=item.output_index,
                item=_message_item(item.id, None, "in_progress"),
            )
            out += self._event(
                "response.content_part.added",
                item_id=item.id,
                output_index=item.output_index,
                content_index=0,
                part=_output_text(""),
            )
        item.text += text
        return out + self._event(
            "response.output_text.delta",
            item_id=item.id,
            output_index=item.output_index,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _reasoning(self, text: str) -> bytes:
        out = b""
        item = self._open
        if item is None or item.kind != "reasoning":
            out += self._close_all()
            item = self._open = self._start("reasoning", "rs")
            out += self._event(
                "response.output_item.added",
                output_index=item.output_index,
                item=_reasoning_item(item.id, ""),
            )
            out += self._event(
                "response.reasoning_summary_part.added",
                item_id=item.id,
                output_index=item.output_index,
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            )
        item.text += text
        return out + self._event(
            "response.reasoning_summary_text.delta",
            item_id=item.id,
            output_index=item.output_index,
            summary_index=0,
            delta=text,
        )

    def _tool_call(self, delta: ToolCallDelta) -> bytes:
        out = b""
        item = self._calls.get(delta.index)
        if item is None or item.done:
            if self._open is not None:
                out += self._close(self._open)
                self._open = None
            item = self._start("function_call", "fc")
            item.call_id = delta.id or _item_id("call")
            item.name = delta.name or ""
            self._calls[delta.index] = item
            out += self._event(
                "response.output_item.added",
                output_index=item.output_index,
                item=_call_item(item.id, item.call_id, item.name, "", "in_progress"),
            )
        if not delta.arguments:
            return out
        item.text += delta.arguments
        return out + self._event(
            "response.function_call_arguments.delta",
            item_id=item.id,
            output_index=item.output_index,
            delta=delta.arguments,
        )

    def _close(self, item: _Item, status: str = "completed") -> bytes:
        item.done = True
        at = {"item_id": item.id, "output_index": item.output_index}
        if item.kind == "message":
            out = self._event("response.output_text.done", **at, content_index=0, text=item.text, logprobs=[])
            out += self._event(
                "response.content_part.done", **at, content_index=0, part=_output_text(item.text)
            )
        elif item.kind == "reasoning":
            part = {"type": "summary_text", "text": item.text}
            out = self._event("response.reasoning_summary_text.done", **at, summary_index=0, text=item.text)
            out += self._event("response.reasoning_summary_part.done", **at, summary_index=0, part=part)
        else:
            out = self._event(
                "response.function_call_arguments.done", **at, name=item.name, arguments=item.text
            )
        return out + self._event(
            "response.output_item.done", output_index=item.output_index, item=item.snapshot(status)
        )

    def _close_all(self, status: str = "completed") -> bytes:
        out = b""
        for item in self.items:
            if not item.done:
                out += self._close(item, _item_status(item, status))
        self._open = None
        return out

    def _finished(self, outcome: ChatOutcome) -> bytes:
        self.ended = True
        self.model = outcome.model or self.model
        incomplete = _incomplete(outcome)
        status = "incomplete" if incomplete else "completed"
        out = self._close_all(status)
        usage, _estimated = _usage(outcome, self.request.call)
        response = self._response(
            status,
            output=[item.snapshot(_item_status(item, status)) for item in self.items],
            usage=usage,
            incomplete=incomplete,
        )
        response["puter"] = routing_note(outcome)
        return out + self._event(f"response.{status}", response=response)

    def _failed(self, error: BackendError) -> bytes:
        """``response.failed`` after what was sent: the items so far (marked incomplete when they
        were cut) and the error. Nothing is sent again, and no other model starts."""
        self.ended = True
        # Codex waits and retries on rate_limit_exceeded; anything else is the server's failure.
        throttled = error.kind in _THROTTLED
        output = [item.snapshot("completed" if item.done else "incomplete") for item in self.items]
        response = self._response(
            "failed",
            output=output,
            error={
                "code": "rate_limit_exceeded" if throttled else "server_error",
                "message": error.summary or "the answer broke off",
            },
        )
        return self._event("response.failed", response=response)


# --------------------------------------------------------------------------------------------
# The routes


class ResponsesEncoder:
    """The SSE body of one streamed answer (`puter_mcp.gateway.gate.EventEncoder`)."""

    def __init__(self, request: ResponsesRequest) -> None:
        self.request = request
        self._events: ResponseEvents | None = None

    def opening(self, opened: OpenedAnswer) -> bytes:
        self._events = ResponseEvents(opened.model, self.request)
        return self._events.opening()

    def encode(self, event: ChatEvent) -> bytes:
        assert self._events is not None, "opening() comes first"
        return self._events.feed(event) or b""


def routes(gateway: Gateway) -> list[BaseRoute]:
    """``POST /v1/responses`` and ``POST /responses``."""

    async def create(request: Request, exchange: Exchange) -> Response:
        body = await read_json(request)
        default = gateway.backend.settings.default_model
        await gateway.admit(request, exchange, requested_model(body, default))
        try:
            parsed = parse_request(body, default_model=default)
        except BadRequest as exc:
            raise from_backend_error(exc, now=time.time()) from exc
        if parsed.stream:
            return gateway.stream(
                OPENAI,
                exchange,
                parsed.call,
                encoder=ResponsesEncoder(parsed),
                media_type="text/event-stream",
            )
        outcome = await gateway.whole(request, exchange, parsed.call)
        body, estimated = response_object(outcome, parsed)
        headers = answer_headers(exchange)
        if estimated:
            headers["X-Puter-Usage"] = "estimated"
        return JSONResponse(body, headers=headers)

    table = [("/v1/responses", create, ["POST"]), ("/responses", create, ["POST"])]
    return routes_for(gateway, OPENAI, table)
