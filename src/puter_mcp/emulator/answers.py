"""Deterministic chat answers, in both of Puter's answer shapes and as NDJSON stream lines.

Pure functions: the same request always yields the same answer. The text names the model
that answered and echoes the start of the last user message (`[gpt-5-nano-2025-08-07] You
said: "hi". ...`), so a test can tell which model answered which prompt. The request drives
the rest: "call tool NAME [with {json}]" in the last user message (and NAME among `tools`)
gives a tool call; a reasoning effort adds reasoning; `max_tokens` truncates the text; image
parts are counted in the answer ("with 1 image"). The echo is of the message's last text part,
so context put before the question (files) does not hide it.

Requests a vendor would refuse are refused with 400 (`refusal`): an image for a model whose
entry takes none, tools for a model that cannot call them, and a thinking block signed for
another model (Anthropic signs each block for the model that wrote it; `thinking_signature`).

Token counts are ~len(text)/4 (at least 1); usage is spelled the way each provider spells it
(docs/puter-protocol.md, "Non-streamed answers") and never includes a `total_tokens`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .catalogue import DEFAULT_MODEL, ModelSpec

__all__ = [
    "EFFORTS",
    "Answer",
    "ArgsError",
    "ChatArgs",
    "ToolCall",
    "compose_answer",
    "count_tokens",
    "parse_chat_args",
    "refusal",
    "stream_lines",
    "success_body",
    "text_pieces",
    "thinking_signature",
    "usage_fields",
]

EFFORTS = ("low", "medium", "high")
_ECHO_CHARS = 60
_WORDS_PER_PIECE = 4
_TOOL_REQUEST = re.compile(
    r"call tool\s+([A-Za-z0-9_.:-]+)(?:\s+with\s+(\{.*\}))?", re.IGNORECASE | re.DOTALL
)


class ArgsError(ValueError):
    """A chat argument Puter refuses with 400 `bad_request`."""


@dataclass(frozen=True)
class ChatArgs:
    """The `args` of a `complete` call, checked."""

    messages: tuple[dict[str, Any], ...]
    model: str
    stream: bool
    max_tokens: int | None
    tools: tuple[dict[str, Any], ...]
    effort: str | None
    """The reasoning effort asked for (`reasoning.effort` or `reasoning_effort`); Anthropic's
    `thinking` is ignored, as Puter ignores it."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """What a model answered, before it is dressed in the provider's shape."""

    model: ModelSpec
    message_id: str
    text: str
    reasoning: str | None
    tool_calls: tuple[ToolCall, ...]
    truncated: bool
    input_tokens: int
    output_tokens: int
    """Every output token, reasoning included (that is what is billed)."""
    reasoning_tokens: int
    usd_cents: float | None = None
    """The call's cost; None for Puter's test models."""


def count_tokens(text: str) -> int:
    """The emulator's tokenizer: one token per 4 characters, at least 1."""
    return max(1, math.ceil(len(text) / 4))


def _content_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, dict):
                texts.append(f"[{part.get('type', 'part')}]")
            else:
                raise ArgsError(f"{where}: each content part must be an object")
        return " ".join(texts)
    raise ArgsError(f"{where}: content must be a string or a list of parts")


def _last_text(content: Any) -> str:
    """The text the echo shows: a string, or the last text part of a list."""
    if isinstance(content, list):
        texts = [
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return texts[-1] if texts else ""
    return content if isinstance(content, str) else ""


def _parts(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [part for part in content if isinstance(part, dict) and part.get("type") == kind]


def _check_parts(message: dict[str, Any], where: str) -> None:
    """Image parts need a URL a vendor can read; a tool turn needs the id it answers."""
    if message.get("role") == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise ArgsError(f"{where}: a tool message needs a tool_call_id")
    for part in _parts(message, "image_url"):
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not (url.startswith("https://") or url.startswith("data:image/")):
            raise ArgsError(f"{where}: an image_url part needs an https or data:image URL")


def thinking_signature(model: ModelSpec) -> str:
    """The signature the emulator puts on `model`'s thinking blocks (and accepts back)."""
    return f"emulator-signature:{model.id}"


def refusal(model: ModelSpec, args: ChatArgs) -> str | None:
    """Why the vendor behind `model` would refuse this request (Puter answers 400), or None."""
    takes_images = model.input_modalities is None or "image" in model.input_modalities
    if not takes_images and any(_parts(message, "image_url") for message in args.messages):
        return f"Model {model.id} does not support image input."
    if args.tools and model.tool_call is False:
        return f"Model {model.id} does not support tool calling."
    for index, message in enumerate(args.messages):
        for part in _parts(message, "thinking"):
            if part.get("signature") != thinking_signature(model):
                return f"messages.{index}.content: Invalid `signature` in `thinking` block."
    return None


def parse_chat_args(args: Any) -> ChatArgs:
    """Check a `complete` call's `args`; raises `ArgsError` where Puter answers 400."""
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ArgsError("args must be an object")
    messages = args.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ArgsError("messages must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ArgsError(f"messages[{i}] must be an object with a role")
        _content_text(message.get("content"), f"messages[{i}]")
        _check_parts(message, f"messages[{i}]")
    model = args.get("model")
    if model is None:
        model = DEFAULT_MODEL
    if not isinstance(model, str) or not model.strip():
        raise ArgsError("model must be a string")
    max_tokens = args.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise ArgsError("max_tokens must be a positive integer")
    tools = args.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise ArgsError("tools must be a list of objects")
    effort = None
    reasoning = args.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        effort = reasoning["effort"]
    elif args.get("reasoning_effort") is not None:
        effort = args["reasoning_effort"]
    if effort is not None and effort not in EFFORTS:
        raise ArgsError(f"reasoning effort must be one of {', '.join(EFFORTS)}")
    return ChatArgs(
        messages=tuple(messages),
        model=model,
        stream=args.get("stream") is True,
        max_tokens=max_tokens,
        tools=tuple(tools),
        effort=effort,
    )


def _echo(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _ECHO_CHARS else flat[: _ECHO_CHARS - 3] + "..."


def _tool_names(tools: Sequence[dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for tool in tools:
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else tool.get("name")
        if isinstance(name, str):
            names.add(name)
    return names


def _requested_tool(args: ChatArgs) -> tuple[str, dict[str, Any]] | None:
    """The tool the last message asks for ("call tool NAME [with {json}]"), if it is offered."""
    last = args.messages[-1]
    if last.get("role") != "user" or not args.tools:
        return None
    match = _TOOL_REQUEST.search(_content_text(last.get("content"), "last message"))
    if match is None or match.group(1) not in _tool_names(args.tools):
        return None
    arguments: dict[str, Any] = {}
    if match.group(2):
        try:
            parsed = json.loads(match.group(2))
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            arguments = parsed
    return match.group(1), arguments


def _input_tokens(args: ChatArgs) -> int:
    text = " ".join(_content_text(m.get("content"), "message") for m in args.messages)
    if args.tools:
        text += json.dumps(list(args.tools), separators=(",", ":"))
    return count_tokens(text)


def compose_answer(
    model: ModelSpec,
    args: ChatArgs,
    *,
    new_id: Callable[[str], str],
    output_limit: int | None = None,
    text_override: str | None = None,
) -> Answer:
    """The answer `model` gives to `args`.

    Args:
        new_id: makes an id from a prefix (`msg`, `toolu`, `call`).
        output_limit: what the balance pays for; Puter lowers `max_tokens` to it.
        text_override: a fixed text (the stand-in answers), instead of the echo.
    """
    last = args.messages[-1]
    last_text = _content_text(last.get("content"), "last message")
    user_messages = [m for m in args.messages if m.get("role") == "user"]
    echo = _echo(_last_text(user_messages[-1].get("content")) if user_messages else "")
    images = len(_parts(user_messages[-1], "image_url")) if user_messages else 0
    with_images = f" (with {images} image{'s' if images > 1 else ''})" if images else ""
    anthropic = model.provider_spec.shape == "anthropic"

    tool_calls: tuple[ToolCall, ...] = ()
    requested = _requested_tool(args) if text_override is None else None
    if requested is not None:
        name, arguments = requested
        tool_calls = (ToolCall(id=new_id("toolu" if anthropic else "call"), name=name, input=arguments),)
        text = f"[{model.id}] Calling tool {name}." if anthropic else ""
    elif text_override is not None:
        text = text_override
    elif model.stream_seconds:
        # Many short pieces, so that a slow stream shows steady progress.
        counted = ", ".join(str(number) for number in range(1, 41))
        text = f'[{model.id}] You said: "{echo}". Counting slowly: {counted}. This answer comes from the Puter emulator.'

    elif last.get("role") == "tool":
        text = f'[{model.id}] The tool returned: "{_echo(last_text)}". This deterministic answer comes from the Puter emulator.'
    else:
        text = f'[{model.id}] You said: "{echo}"{with_images}. This deterministic answer comes from the Puter emulator.'

    reasoning = None
    if args.effort is not None:
        reasoning = f'[{model.id}] Reasoning with {args.effort} effort about: "{echo}".'

    truncated = False
    limits = [model.max_tokens]
    if args.max_tokens is not None:
        limits.append(args.max_tokens)
    if output_limit is not None:
        limits.append(max(1, output_limit))
    limit = min(limits)
    if not tool_calls and count_tokens(text) > limit:
        text = text[: limit * 4]
        truncated = True

    reasoning_tokens = count_tokens(reasoning) if reasoning else 0
    output_tokens = reasoning_tokens
    if text:
        output_tokens += count_tokens(text)
    for call in tool_calls:
        output_tokens += count_tokens(call.name + json.dumps(call.input))
    return Answer(
        model=model,
        message_id=new_id("msg"),
        text=text,
        reasoning=reasoning,
        tool_calls=tool_calls,
        truncated=truncated,
        input_tokens=_input_tokens(args),
        output_tokens=max(1, output_tokens),
        reasoning_tokens=reasoning_tokens,
    )


def usage_fields(answer: Answer) -> dict[str, Any]:
    """`result.usage` (and the stream's usage line) in the provider's own spelling."""
    style = answer.model.provider_spec.usage_style
    if style == "anthropic":
        return {
            "input_tokens": answer.input_tokens,
            "ephemeral_5m_input_tokens": 0,
            "ephemeral_1h_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": answer.output_tokens,
            "thinking_tokens": answer.reasoning_tokens,
            "usd_cents": answer.usd_cents,
        }
    if style == "openrouter":
        return {
            "prompt": answer.input_tokens,
            "completion": answer.output_tokens,
            "input_cache_read": 0,
            "request": 1,
            "usd_cents": answer.usd_cents,
        }
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "cached_tokens": 0,
        "usd_cents": answer.usd_cents,
    }


def _anthropic_result(answer: Answer) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if answer.reasoning:
        content.append(
            {"type": "thinking", "thinking": answer.reasoning, "signature": thinking_signature(answer.model)}
        )
    if answer.text:
        content.append({"type": "text", "text": answer.text})
    for call in answer.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input})
    if answer.tool_calls:
        stop_reason = "tool_use"
    elif answer.truncated:
        stop_reason = "max_tokens"
    else:
        stop_reason = "end_turn"
    message = {
        "id": answer.message_id,
        "type": "message",
        "role": "assistant",
        "model": answer.model.id,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": answer.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": answer.output_tokens,
            "service_tier": "standard",
        },
    }
    return {
        "message": message,
        "usage": usage_fields(answer),
        "finish_reason": "stop",
        "via_ai_chat_service": True,
    }


def _openai_result(answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.text or None,
        "refusal": None,
        "annotations": [],
    }
    if answer.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.input)},
            }
            for call in answer.tool_calls
        ]
    if answer.reasoning:
        message["reasoning"] = answer.reasoning
    if answer.tool_calls:
        finish_reason = "tool_calls"
    elif answer.truncated:
        finish_reason = "length"
    else:
        finish_reason = "stop"
    return {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason,
        "usage": usage_fields(answer),
        "via_ai_chat_service": True,
    }


def success_body(answer: Answer) -> dict[str, Any]:
    """The whole HTTP 200 body of a non-streaming `complete` call."""
    anthropic = answer.model.provider_spec.shape == "anthropic"
    return {
        "success": True,
        "service": {"name": "ai-chat"},
        "result": _anthropic_result(answer) if anthropic else _openai_result(answer),
        "metadata": {"service_used": answer.model.provider, "providerUsed": answer.model.id},
    }


def text_pieces(text: str) -> list[str]:
    """The text cut into stream pieces of a few words; joined back they give `text` exactly."""
    words = re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    return ["".join(words[i : i + _WORDS_PER_PIECE]) for i in range(0, len(words), _WORDS_PER_PIECE)]


def stream_lines(answer: Answer) -> list[dict[str, Any]]:
    """Every NDJSON line of the answer's stream, the usage line last (there is no done line)."""
    lines: list[dict[str, Any]] = []
    if answer.reasoning:
        lines.append({"type": "reasoning", "reasoning": answer.reasoning})
    lines.extend({"type": "text", "text": piece} for piece in text_pieces(answer.text))
    lines.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input, "text": ""}
        for call in answer.tool_calls
    )
    lines.append({"type": "usage", "usage": usage_fields(answer)})
    return lines
