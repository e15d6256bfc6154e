"""A `ChatCall` as Puter's wire request for one model (docs/puter-protocol.md, "Chat").

The chat pipeline calls `chat_request` once per attempt, because what is sent depends on the
model being tried: reasoning kept in the history (`ReasoningPart`) goes back only to the model
that produced it. Anthropic signs each thinking block for the model that wrote it and refuses
a request that carries another model's block, so when a call falls back to another model,
the foreign reasoning is dropped rather than failing the request.

Everything else maps one to one onto OpenAI's shapes, which Puter takes for every model:
text and image parts (``image_url``), assistant ``tool_calls`` (arguments as JSON text),
``role: "tool"`` turns with their ``tool_call_id``, function ``tools`` and ``tool_choice``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from puter_mcp.core.calls import (
    ChatCall,
    ImagePart,
    NamedTool,
    ReasoningPart,
    TextPart,
    Tool,
    ToolChoice,
    Turn,
)
from puter_mcp.puter import wire

__all__ = ["chat_request"]


def chat_request(call: ChatCall, model: str, *, answered_by: Iterable[str] = ()) -> wire.ChatRequest:
    """The request that asks `model` to answer `call`.

    Args:
        call: the call, as checked by `ChatCall`.
        model: the model to ask (a catalogue id).
        answered_by: other names of that model (its aliases, the canonical id Puter reports):
            reasoning recorded under any of them counts as its own and is sent back.

    Reasoning is sent back as an Anthropic ``thinking`` part, and only when it carries its
    signature: a thinking block without one is refused too. An assistant turn left with
    nothing (it held only dropped reasoning) is left out.
    """
    own = {name.casefold() for name in (model, *answered_by)}
    messages = [message for turn in call.messages if (message := _message(turn, own)) is not None]
    return wire.ChatRequest(
        messages=messages,
        model=model,
        temperature=call.temperature,
        max_tokens=call.max_tokens,
        reasoning_effort=call.reasoning_effort,
        tools=[_tool(tool) for tool in call.tools] or None,
        tool_choice=_tool_choice(call.tool_choice),
        stop=call.stop,
    )


def _message(turn: Turn, own: set[str]) -> wire.ChatMessage | None:
    tool_calls = [
        {
            "id": tool_call.id,
            "type": "function",
            "function": {"name": tool_call.name, "arguments": tool_call.arguments},
        }
        for tool_call in turn.tool_calls
    ] or None
    content: str | list[dict[str, Any]]
    if isinstance(turn.content, str):
        content = turn.content
    else:
        content = [part for item in turn.content if (part := _part(item, own)) is not None]
        if not content and tool_calls is None:
            return None
    return wire.ChatMessage(
        role=turn.role, content=content, tool_call_id=turn.tool_call_id, tool_calls=tool_calls
    )


def _part(part: TextPart | ImagePart | ReasoningPart, own: set[str]) -> dict[str, Any] | None:
    match part:
        case TextPart(text=text):
            return {"type": "text", "text": text}
        case ImagePart(url=url):
            return {"type": "image_url", "image_url": {"url": url}}
        case ReasoningPart(text=text, model=producer, signature=signature):
            if producer.casefold() not in own or not signature:
                return None
            return {"type": "thinking", "thinking": text, "signature": signature}
    return None  # pragma: no cover - the union above is exhaustive


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice | None) -> str | dict[str, Any] | None:
    if isinstance(choice, NamedTool):
        return {"type": "function", "function": {"name": choice.name}}
    return choice
