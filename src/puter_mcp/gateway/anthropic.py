"""Anthropic's Messages API over the backend: `/v1/messages` and `/v1/messages/count_tokens`.

What a Messages request becomes (docs/gateway-anthropic.md has the whole table):

```
system (string or text blocks)        one system turn, the blocks joined by a blank line
user message                          tool turns for its tool_result blocks, in order, then
                                      a user turn with its text and image blocks
assistant message                     an assistant turn: thinking blocks as ReasoningPart
                                      (model from the signature), text, tool_use as ToolCall
tools / tool_choice                   function tools; auto | any -> required | tool -> named | none
thinking.budget_tokens                the core's reasoning effort (effort_from_thinking_budget);
output_config.effort                  without a budget, the effort itself (one effort, never two)
```

Thinking signatures. The core sends a thinking block back upstream only to the model that
wrote it (`ReasoningPart.model`), so the signature this module puts on a thinking block
carries that model: ``"pmx1." + base64url(json({"m": model, "s": upstream_signature}))``.
A block coming back is decoded into ``ReasoningPart(model=m, signature=s or None)``; a
signature that does not decode came from somewhere else (another gateway, Anthropic itself)
and its block is dropped, never failing the request.

Streams are a state machine (`MessageStream`): ``message_start``, then per content block
``content_block_start`` (one type), deltas of that type, ``content_block_stop``, with indexes
that only increase; a change of kind in the core's events (reasoning, text, a tool call)
closes the open block and opens the next. Then ``message_delta`` and ``message_stop``, or an
``error`` event after what was already sent.

Token counts: Puter reports them only at the end of an answer, so ``message_start`` carries
the estimate `count_tokens` answers (`puter_mcp.gateway.estimate`, said in the
``X-Puter-Usage`` header) and ``message_delta`` the real counts.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from puter_mcp.core import (
    BadRequest,
    ChatCall,
    ChatEvent,
    ChatOutcome,
    Finished,
    ImagePart,
    ReasoningDelta,
    ReasoningEffort,
    StreamFailed,
    TextDelta,
    Tool,
    ToolCallDelta,
    UsageUpdate,
    effort_from_thinking_budget,
)
from puter_mcp.gateway.estimate import estimate_call_tokens, estimate_tokens
from puter_mcp.gateway.exchange import Exchange
from puter_mcp.gateway.failures import GatewayError, from_backend_error
from puter_mcp.gateway.gate import OpenedAnswer
from puter_mcp.gateway.handling import Gateway, answer_headers, read_json, requested_model, routes_for

__all__ = [
    "ANTHROPIC",
    "PING_INTERVAL_S",
    "SIGNATURE_PREFIX",
    "USAGE_HEADER",
    "AnthropicApi",
    "MessageEncoder",
    "MessageStream",
    "MessagesRequest",
    "decode_signature",
    "encode_signature",
    "error_body",
    "error_type",
    "message_body",
    "messages_request",
    "parse_messages_request",
    "routes",
    "stop_reason",
]

PING_INTERVAL_S = 10.0
"""Seconds of silence from the model after which a ``ping`` event is sent, so that clients and
proxies with idle timeouts keep the stream open (Anthropic pings the same way)."""

SIGNATURE_PREFIX = "pmx1."
"""Marks a thinking signature this gateway made (version 1 of its layout)."""

USAGE_HEADER = "X-Puter-Usage"
"""Says which token counts of an answer are estimates (``estimated-input``, ``estimated``)."""

# Server tools run on Anthropic's side (search, code execution, computer use); Puter has none.
_CUSTOM_TOOL_TYPES = (None, "custom")
_USER_BLOCKS = ("text", "image", "tool_result")
_ASSISTANT_BLOCKS = ("text", "tool_use", "thinking", "redacted_thinking")


# --------------------------------------------------------------------------------------------
# Thinking signatures


def encode_signature(model: str, upstream: str | None = None) -> str:
    """The signature of a thinking block `model` wrote (`upstream`: the vendor's own, if any)."""
    payload = json.dumps({"m": model, "s": upstream or ""}, separators=(",", ":")).encode()
    return SIGNATURE_PREFIX + base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def decode_signature(signature: Any) -> tuple[str, str | None] | None:
    """``(model, upstream signature or None)`` from a signature `encode_signature` made, or
    None for anything else (a signature made elsewhere, or none)."""
    if not isinstance(signature, str) or not signature.startswith(SIGNATURE_PREFIX):
        return None
    encoded = signature[len(SIGNATURE_PREFIX) :]
    try:
        payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(payload, dict):
        return None
    model, upstream = payload.get("m"), payload.get("s")
    if not isinstance(model, str) or not model or not isinstance(upstream, str):
        return None
    return model, upstream or None


# --------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """A Messages request, checked: the core's call, and what only this API needs."""

    call: ChatCall
    stream: bool


def _bad(where: str, message: str) -> BadRequest:
    return BadRequest(f"bad argument `{where}`: {message}", argument=where)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _expect_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad(where, f"expected a string, got {_type_name(value)}")
    return value


def _expect_object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(where, f"expected an object, got {_type_name(value)}")
    return value


def _expect_list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise _bad(where, f"expected a list, got {_type_name(value)}")
    return value


def _objects(value: Any, where: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    """Each item of the list `value` (at `where`), checked to be an object, with where it is
    (``messages.0.content.1``)."""
    for index, item in enumerate(_expect_list(value, where)):
        item_where = f"{where}.{index}"
        yield _expect_object(item, item_where), item_where


def _optional_number(body: Mapping[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(name, f"expected a number, got {_type_name(value)}")
    return float(value)


def _system_text(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    texts: list[str] = []
    for block, where in _objects(system, "system"):
        if block.get("type") != "text":
            raise _bad(f"{where}.type", f"system blocks are text blocks, got {block.get('type')!r}")
        texts.append(_expect_str(block.get("text"), f"{where}.text"))
    return "\n\n".join(text for text in texts if text)


def _image_url(block: Mapping[str, Any], where: str) -> str:
    source = _expect_object(block.get("source"), f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type = _expect_str(source.get("media_type"), f"{where}.source.media_type")
        data = _expect_str(source.get("data"), f"{where}.source.data")
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        url = _expect_str(source.get("url"), f"{where}.source.url")
    else:
        raise _bad(f"{where}.source.type", f"an image source is `base64` or `url`, got {kind!r}")
    try:
        ImagePart(url=url)
    except ValidationError as exc:
        raise _bad(f"{where}.source", exc.errors()[0]["msg"].removeprefix("Value error, ")) from exc
    return url


def _tool_result(block: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A tool_result block as a tool turn, and the image parts it returned (which the core takes
    in user turns only)."""
    tool_use_id = _expect_str(block.get("tool_use_id"), f"{where}.tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for part, part_where in _objects(content, f"{where}.content"):
            kind = part.get("type")
            if kind == "text":
                texts.append(_expect_str(part.get("text"), f"{part_where}.text"))
            elif kind == "image":
                images.append({"type": "image", "url": _image_url(part, part_where)})
            else:
                raise _bad(f"{part_where}.type", f"a tool result holds text and image blocks, got {kind!r}")
    is_error = block.get("is_error", False)
    if not isinstance(is_error, bool):
        raise _bad(f"{where}.is_error", f"expected a boolean, got {_type_name(is_error)}")
    text = "\n".join(texts)
    if not text.strip():
        text = "(the tool returned images)" if images else "(the tool returned nothing)"
    if is_error:
        # OpenAI's tool turns, which Puter takes, have no error flag: the text carries it.
        text = f"[tool error] {text}"
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}, images


def _user_turns(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tool_turns: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block, block_where in _objects(content, f"{where}.content"):
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": _expect_str(block.get("text"), f"{block_where}.text")})
        elif kind == "image":
            parts.append({"type": "image", "url": _image_url(block, block_where)})
        elif kind == "tool_result":
            turn, images = _tool_result(block, block_where)
            tool_turns.append(turn)
            if images:
                parts.append(
                    {"type": "text", "text": f"(images returned by tool call {turn['tool_call_id']})"}
                )
                parts.extend(images)
        else:
            raise _bad(
                f"{block_where}.type",
                f"user messages take {', '.join(_USER_BLOCKS)} blocks here, got {kind!r}",
            )
    # The results answer the assistant turn just before: they come right after it, in order,
    # and what the user added follows them.
    return tool_turns + ([{"role": "user", "content": parts}] if parts else [])


def _assistant_turn(content: Any, where: str) -> dict[str, Any] | None:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    parts: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for block, block_where in _objects(content, f"{where}.content"):
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": _expect_str(block.get("text"), f"{block_where}.text")})
        elif kind == "thinking":
            text = _expect_str(block.get("thinking"), f"{block_where}.thinking")
            decoded = decode_signature(block.get("signature"))
            if decoded is not None:  # else signed elsewhere: no model could take it back
                model, upstream = decoded
                parts.append({"type": "reasoning", "text": text, "model": model, "signature": upstream})
        elif kind == "redacted_thinking":
            continue  # encrypted by Anthropic for one of its own models: nothing Puter can use
        elif kind == "tool_use":
            arguments = block.get("input", {})
            tool_calls.append(
                {
                    "id": _expect_str(block.get("id"), f"{block_where}.id"),
                    "name": _expect_str(block.get("name"), f"{block_where}.name"),
                    "arguments": _expect_object(arguments, f"{block_where}.input"),
                }
            )
        else:
            raise _bad(
                f"{block_where}.type",
                f"assistant messages take {', '.join(_ASSISTANT_BLOCKS)} blocks here, got {kind!r}",
            )
    if not tool_calls and not any(part["type"] != "text" or part["text"].strip() for part in parts):
        return None  # it held only thinking another gateway signed: nothing is left to send
    return {"role": "assistant", "content": parts, "tool_calls": tool_calls}


def _tools(value: Any) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    server_tools: list[str] = []
    for tool, where in _objects(value, "tools"):
        if tool.get("type") not in _CUSTOM_TOOL_TYPES:
            server_tools.append(f"{tool.get('name', '?')} ({tool.get('type')})")
            continue
        schema = tool.get("input_schema", {"type": "object", "properties": {}})
        entry = {
            "name": _expect_str(tool.get("name"), f"{where}.name"),
            "description": (
                None
                if tool.get("description") is None
                else _expect_str(tool["description"], f"{where}.description")
            ),
            "parameters": dict(_expect_object(schema, f"{where}.input_schema")),
        }
        try:
            Tool.model_validate(entry)
        except ValidationError as exc:
            raise _bad(where, exc.errors()[0]["msg"].removeprefix("Value error, ")) from exc
        tools.append(entry)
    if server_tools:
        raise _bad(
            "tools",
            "server tools run on Anthropic's own servers and Puter has none: "
            f"remove {', '.join(server_tools)}",
        )
    return tools


def _tool_choice(value: Any) -> str | dict[str, Any] | None:
    if value is None:
        return None
    choice = _expect_object(value, "tool_choice")
    kind = choice.get("type")
    if kind in ("auto", "none"):
        return kind
    if kind == "any":
        return "required"
    if kind == "tool":
        return {"name": _expect_str(choice.get("name"), "tool_choice.name")}
    raise _bad("tool_choice.type", f"one of auto, any, tool, none; got {kind!r}")


# Anthropic's effort levels above Puter's highest.
_EFFORTS: dict[str, ReasoningEffort] = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}


def _effort(body: Mapping[str, Any]) -> ReasoningEffort | None:
    """The one effort to ask Puter for: from ``thinking.budget_tokens`` when thinking is
    enabled with a budget, else from ``output_config.effort``, else none."""
    thinking = body.get("thinking")
    if thinking is not None:
        thinking = _expect_object(thinking, "thinking")
        kind = thinking.get("type")
        if not isinstance(kind, str):
            raise _bad("thinking.type", f"expected a string, got {_type_name(kind)}")
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                raise _bad("thinking.budget_tokens", f"a positive number of tokens, got {budget!r}")
            return effort_from_thinking_budget(budget)
        if kind == "disabled":
            return None
        # adaptive, between_tools and modes to come leave the amount to the model (and to
        # output_config.effort): nothing here to refuse a newer client for.
    output_config = body.get("output_config")
    if output_config is None:
        return None
    effort = _expect_object(output_config, "output_config").get("effort")
    if effort is None:
        return None
    if effort not in _EFFORTS:
        raise _bad("output_config.effort", f"one of {', '.join(_EFFORTS)}; got {effort!r}")
    return _EFFORTS[effort]


def _stop_sequences(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(
        _expect_str(item, f"stop_sequences.{index}")
        for index, item in enumerate(_expect_list(value, "stop_sequences"))
    )


def parse_messages_request(body: Mapping[str, Any], *, counting: bool = False) -> MessagesRequest:
    """A Messages request body as the core's call.

    Args:
        counting: the body is a ``count_tokens`` request, which has no ``max_tokens``.

    Unknown fields are ignored (the API grows faster than this gateway); known ones of the
    wrong type are refused.

    Raises:
        BadRequest: what is wrong, and where (``messages.2.content.0.source``).
    """
    model = _expect_str(body.get("model"), "model")
    if not model.strip():
        raise _bad("model", "name a model")
    max_tokens = body.get("max_tokens")
    if max_tokens is None and not counting:
        raise _bad("max_tokens", "this field is required")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise _bad("max_tokens", f"a positive number of tokens, got {max_tokens!r}")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", f"expected a boolean, got {_type_name(stream)}")
    temperature = _optional_number(body, "temperature")
    # Accepted and not passed on: Puter takes neither.
    _optional_number(body, "top_p")
    _optional_number(body, "top_k")
    if body.get("metadata") is not None:
        _expect_object(body["metadata"], "metadata")

    turns: list[dict[str, Any]] = []
    system = _system_text(body.get("system"))
    if system.strip():
        turns.append({"role": "system", "content": system})
    for index, message in enumerate(_expect_list(body.get("messages"), "messages")):
        where = f"messages.{index}"
        message = _expect_object(message, where)
        role = message.get("role")
        if role == "user":
            turns.extend(_user_turns(message.get("content"), where))
        elif role == "assistant":
            turn = _assistant_turn(message.get("content"), where)
            if turn is not None:
                turns.append(turn)
        else:
            raise _bad(f"{where}.role", f"`user` or `assistant` (system goes in `system`), got {role!r}")

    stop_sequences = _stop_sequences(body.get("stop_sequences"))
    tools = _tools(body["tools"]) if body.get("tools") is not None else []
    tool_choice = _tool_choice(body.get("tool_choice"))
    if not tools and tool_choice in ("auto", "none"):
        tool_choice = None  # vendors refuse a tool choice without tools; with none it says nothing
    call = ChatCall.parse(
        {
            "messages": turns,
            "model": model.strip(),
            "temperature": temperature,
            "max_tokens": max_tokens,
            "reasoning_effort": _effort(body),
            "tools": tools,
            "tool_choice": tool_choice,
            "stop": list(stop_sequences) or None,
        }
    )
    return MessagesRequest(call=call, stream=stream)


# --------------------------------------------------------------------------------------------
# Answers


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


StopReason = Literal["end_turn", "max_tokens", "tool_use", "stop_sequence"]


def stop_reason(finish_reason: str | None, *, called_tools: bool) -> StopReason:
    """Anthropic's stop reason from the core's finish reason (OpenAI's words).

    Puter reports a stop sequence and a natural end both as ``stop``, so ``stop_sequence`` is
    never known to have happened and ``end_turn`` stands for both.
    """
    if called_tools or finish_reason == "tool_calls":
        return "tool_use"
    if finish_reason == "length":
        return "max_tokens"
    return "end_turn"


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def _output_estimate(outcome: ChatOutcome) -> int:
    pieces = [outcome.text, outcome.reasoning or ""]
    pieces.extend(call.name + call.arguments_json for call in outcome.tool_calls)
    return max(1, sum(estimate_tokens(piece) for piece in pieces))


def message_body(
    outcome: ChatOutcome, *, message_id: str, input_estimate: int
) -> tuple[dict[str, Any], bool]:
    """A whole answer as a ``message`` object, and whether its usage is estimated (Puter
    reported none: then `input_estimate` and an estimate of the output stand in)."""
    content: list[dict[str, Any]] = []
    if outcome.reasoning:
        content.append(
            {"type": "thinking", "thinking": outcome.reasoning, "signature": encode_signature(outcome.model)}
        )
    if outcome.text:
        content.append({"type": "text", "text": outcome.text})
    content.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in outcome.tool_calls
    )
    estimated = outcome.usage.input_tokens == 0 and outcome.usage.output_tokens == 0
    usage = (
        _usage(input_estimate, _output_estimate(outcome))
        if estimated
        else _usage(outcome.usage.input_tokens, outcome.usage.output_tokens)
    )
    body = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": outcome.model,
        "content": content,
        "stop_reason": stop_reason(outcome.finish_reason, called_tools=bool(outcome.tool_calls)),
        "stop_sequence": None,
        "usage": usage,
    }
    return body, estimated


def _sse(kind: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


BlockKind = Literal["thinking", "text", "tool_use"]


class MessageStream:
    """The SSE events of one streamed message, from the core's events.

    Each method returns the bytes to send (possibly none). The core interleaves reasoning,
    text and tool-call deltas freely; a block holds one kind, so a change of kind (or of tool
    call) closes the open block and opens the next, at the next index.

    Usage:
        stream = MessageStream(message_id=..., model=answered, input_estimate=n)
        send(stream.start())
        for event in events: send(stream.feed(event))   # content and usage
        send(stream.finish(outcome))   or   send(stream.fail(error_type, message))
    """

    def __init__(self, *, message_id: str, model: str, input_estimate: int) -> None:
        self.message_id = message_id
        self.model = model
        self.input_estimate = input_estimate
        self._index = -1
        self._open: BlockKind | None = None
        self._open_tool: int | None = None
        self._tools_seen: set[int] = set()
        self._output: list[str] = []
        self._usage: UsageUpdate | None = None

    def start(self) -> bytes:
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(self.input_estimate, 0),
        }
        return _sse("message_start", {"type": "message_start", "message": message})

    @staticmethod
    def ping() -> bytes:
        return _sse("ping", {"type": "ping"})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        out = b""
        if self._open == "thinking":
            # The block's signature names the model that wrote it (see the module docstring).
            out = self._delta({"type": "signature_delta", "signature": encode_signature(self.model)})
        self._open = None
        self._open_tool = None
        return out + _sse("content_block_stop", {"type": "content_block_stop", "index": self._index})

    def _begin(self, kind: BlockKind, block: dict[str, Any]) -> bytes:
        out = self._close()
        self._index += 1
        self._open = kind
        return out + _sse(
            "content_block_start",
            {"type": "content_block_start", "index": self._index, "content_block": block},
        )

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _sse(
            "content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta}
        )

    def feed(self, event: TextDelta | ReasoningDelta | ToolCallDelta | UsageUpdate) -> bytes:
        """The events for one content (or usage) event of the core."""
        match event:
            case TextDelta(text=text):
                self._output.append(text)
                out = b"" if self._open == "text" else self._begin("text", {"type": "text", "text": ""})
                return out + self._delta({"type": "text_delta", "text": text})
            case ReasoningDelta(text=text):
                self._output.append(text)
                out = (
                    b""
                    if self._open == "thinking"
                    else self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                )
                return out + self._delta({"type": "thinking_delta", "thinking": text})
            case ToolCallDelta(index=index, id=call_id, name=name, arguments=arguments):
                self._output.append((name or "") + arguments)
                out = b""
                if not (self._open == "tool_use" and self._open_tool == index):
                    if index in self._tools_seen:
                        # The core sends each tool call whole (one delta), so a call never
                        # resumes after another block; a block cannot be reopened anyway.
                        return b""
                    self._tools_seen.add(index)
                    out = self._begin(
                        "tool_use",
                        {
                            "type": "tool_use",
                            "id": call_id or f"toolu_{secrets.token_hex(12)}",
                            "name": name or "",
                            "input": {},
                        },
                    )
                    self._open_tool = index
                if arguments:
                    out += self._delta({"type": "input_json_delta", "partial_json": arguments})
                return out
            case UsageUpdate():
                self._usage = event
                return b""
        return b""  # pragma: no cover - the union above is exhaustive

    def usage(self, outcome: ChatOutcome | None) -> tuple[int, int]:
        """(input, output) tokens: as Puter reported them, else estimated."""
        if outcome is not None and (outcome.usage.input_tokens or outcome.usage.output_tokens):
            return outcome.usage.input_tokens, outcome.usage.output_tokens
        if self._usage is not None and self._usage.total_tokens:
            return self._usage.input_tokens, self._usage.output_tokens
        return self.input_estimate, max(1, estimate_tokens("".join(self._output)))

    def finish(self, outcome: ChatOutcome | None) -> bytes:
        """Close the open block, then ``message_delta`` (stop reason, real counts) and
        ``message_stop``."""
        input_tokens, output_tokens = self.usage(outcome)
        called_tools = bool(self._tools_seen) or bool(outcome and outcome.tool_calls)
        reason = stop_reason(outcome.finish_reason if outcome else None, called_tools=called_tools)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": None},
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        return self._close() + _sse("message_delta", delta) + _sse("message_stop", {"type": "message_stop"})

    @staticmethod
    def fail(error_type: str, message: str) -> bytes:
        """The ``error`` event that ends a stream broken after its content began: what was
        sent stands, and nothing follows (Anthropic's own streams end this way)."""
        return _sse("error", error_body(error_type, message))


# --------------------------------------------------------------------------------------------
# Errors

_ERROR_TYPES_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_ERROR_TYPES_BY_CATEGORY = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "overloaded": "overloaded_error",
    "api_error": "api_error",
}


def error_type(status: int, category: str | None = None) -> str:
    """Anthropic's error type for an HTTP status (the gateway's category for other statuses)."""
    known = _ERROR_TYPES_BY_STATUS.get(status)
    if known is not None:
        return known
    if category is not None and category in _ERROR_TYPES_BY_CATEGORY:
        return _ERROR_TYPES_BY_CATEGORY[category]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _request_id() -> str:
    return "req_" + secrets.token_hex(12)


class AnthropicApi:
    """Anthropic's error shape: ``{"type": "error", "error": {"type", "message"}}``."""

    name = "anthropic"

    def error_response(self, error: GatewayError) -> Response:
        headers = {**error.headers(), "request-id": _request_id()}
        body = error_body(error_type(error.status, error.category), error.message)
        return JSONResponse(body, status_code=error.status, headers=headers)


ANTHROPIC = AnthropicApi()


def messages_request(body: Mapping[str, Any], *, counting: bool = False) -> MessagesRequest:
    """`parse_messages_request`, refusing with the gateway's 400.

    Raises:
        GatewayError: 400 naming the field (``messages.2.content.0.source``).
    """
    try:
        return parse_messages_request(body, counting=counting)
    except BadRequest as exc:
        raise GatewayError(400, exc.message, param=exc.argument) from exc


class MessageEncoder:
    """The SSE body of one streamed message (`puter_mcp.gateway.gate.EventEncoder`):
    `MessageStream` over the answer's events, ending with an ``error`` event when the answer
    breaks off."""

    def __init__(self, *, message_id: str, input_estimate: int) -> None:
        self.message_id, self.input_estimate = message_id, input_estimate
        self._stream: MessageStream | None = None

    def opening(self, opened: OpenedAnswer) -> bytes:
        self._stream = MessageStream(
            message_id=self.message_id, model=opened.model, input_estimate=self.input_estimate
        )
        return self._stream.start()

    def encode(self, event: ChatEvent) -> bytes:
        stream = self._stream
        assert stream is not None, "opening() comes first"
        if isinstance(event, TextDelta | ReasoningDelta | ToolCallDelta | UsageUpdate):
            return stream.feed(event) or b""
        if isinstance(event, Finished):
            return stream.finish(event.outcome)
        if isinstance(event, StreamFailed):
            error = from_backend_error(event.error, now=time.time())
            return stream.fail(error_type(error.status, error.category), error.message)
        return b""


def routes(gateway: Gateway) -> list[BaseRoute]:
    async def admitted(request: Request, exchange: Exchange, *, counting: bool) -> MessagesRequest:
        # The key first: a caller without one learns nothing about what is wrong with its body.
        body = await read_json(request)
        # Claude Code counts tokens before every turn: that needs a valid key, not a place.
        await gateway.admit(
            request,
            exchange,
            requested_model(body, gateway.backend.settings.default_model),
            spend=not counting,
        )
        return messages_request(body, counting=counting)

    async def messages(request: Request, exchange: Exchange) -> Response:
        parsed = await admitted(request, exchange, counting=False)
        call = parsed.call
        message_id = new_message_id()
        input_estimate = estimate_call_tokens(call)
        if parsed.stream:
            return gateway.stream(
                ANTHROPIC,
                exchange,
                call,
                encoder=MessageEncoder(message_id=message_id, input_estimate=input_estimate),
                media_type="text/event-stream",
                headers={USAGE_HEADER: "estimated-input", "request-id": _request_id()},
                ping=MessageStream.ping(),
                ping_every=PING_INTERVAL_S,
            )
        outcome = await gateway.whole(request, exchange, call)
        body, estimated = message_body(outcome, message_id=message_id, input_estimate=input_estimate)
        headers = {**answer_headers(exchange), "request-id": _request_id()}
        if estimated:
            headers[USAGE_HEADER] = "estimated"
        return JSONResponse(body, headers=headers)

    async def count_tokens(request: Request, exchange: Exchange) -> Response:
        # Claude Code asks before every turn: answered here, from the parsed call, never upstream.
        parsed = await admitted(request, exchange, counting=True)
        return JSONResponse(
            {"input_tokens": estimate_call_tokens(parsed.call)},
            headers={USAGE_HEADER: "estimated-input", "request-id": _request_id()},
        )

    table = [
        ("/v1/messages", messages, ["POST"]),
        ("/v1/messages/count_tokens", count_tokens, ["POST"]),
    ]
    return routes_for(gateway, ANTHROPIC, table)
