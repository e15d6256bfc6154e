"""Puter's chat wire format: what we send to ``/drivers/call`` and how we read what comes back.

Pure functions and models, no I/O, so every shape Puter can answer with is testable on its own.

Puter answers a chat in two shapes depending on the provider behind the model (Anthropic's raw
Message, or OpenAI's ``choices[0]``), spells token usage three ways, streams NDJSON lines, and
disguises some failures as successes (a v1 ``success: false`` envelope in a 200, a
usage-limited answer, a prompt answered by a stand-in test model). Everything here turns those
into one `ChatResult` or one `PuterError`, so that nothing above this module has to know.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from puter_mcp.puter.deltas import ReasoningDelta, TextDelta
from puter_mcp.puter.effort import EFFORTS, ReasoningEffort, effort_from_thinking_budget, reasoning_effort
from puter_mcp.puter.errors import FailureKind, PuterError, classify, classify_stream_error

__all__ = [
    "EFFORTS",
    "ChatAccumulator",
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "ReasoningDelta",
    "ReasoningEffort",
    "StreamEvent",
    "TextDelta",
    "ToolCall",
    "ToolCallEvent",
    "Usage",
    "UsageEvent",
    "effort_from_thinking_budget",
    "error_from_body",
    "events_from_result",
    "normalise_finish_reason",
    "parse_chat_answer",
    "parse_stream_line",
    "parse_usage",
    "reasoning_effort",
]

Role = Literal["system", "user", "assistant", "tool"]

# Puter's driver coordinates for chat; fixed by its API, not configuration.
_INTERFACE = "puter-chat-completion"
_DRIVER = "ai-chat"
_METHOD = "complete"

# Models Puter substitutes for the one asked. Their answers are not answers to the prompt.
_USAGE_LIMITED_MODELS = frozenset({"usage-limited", "usage-limited-chat"})
_USAGE_LIMITED_SERVICE = "usage-limited-chat"
_STAND_IN_MODELS = frozenset({"fake", "abuse"})


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


class ChatMessage(BaseModel):
    """One message of a conversation, in the OpenAI-style format Puter accepts for every model.

    ``tool_calls`` (OpenAI format) lets an assistant turn that called tools be sent back
    together with the ``tool`` results that answer it; Puter converts both for Claude models.
    """

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str | list[dict[str, Any]]
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    def to_wire(self) -> dict[str, Any]:
        """The message as Puter expects it, without the fields that are not set."""
        wire: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_call_id is not None:
            wire["tool_call_id"] = self.tool_call_id
        if self.tool_calls is not None:
            wire["tool_calls"] = self.tool_calls
        return wire


class ChatRequest(BaseModel):
    """A chat completion request, independent of streaming (chosen when it is sent)."""

    model_config = ConfigDict(frozen=True)

    messages: list[ChatMessage] = Field(min_length=1)
    model: str = Field(min_length=1)
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    reasoning_effort: ReasoningEffort | None = None
    tools: list[dict[str, Any]] | None = None
    """Tool definitions in OpenAI's function format (``{"type": "function", "function": ...}``)."""
    tool_choice: str | dict[str, Any] | None = None
    """``auto``, ``none``, ``required`` or ``{"type": "function", "function": {"name": ...}}``."""
    stop: str | list[str] | None = None
    provider: str | None = None
    """Pins one of Puter's providers for the model; usually left unset."""

    def to_driver_call(self, stream: bool) -> dict[str, Any]:
        """The exact JSON body for ``POST /drivers/call``.

        Optional arguments are left out rather than sent as null: Puter forwards some of them to
        the vendor as they are, and a null there is not the same as "not set".
        """
        args: dict[str, Any] = {
            "messages": [message.to_wire() for message in self.messages],
            "model": self.model,
            "stream": stream,
        }
        if self.max_tokens is not None:
            args["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            args["temperature"] = self.temperature
        if self.tools:
            args["tools"] = self.tools
        if self.tool_choice is not None:
            args["tool_choice"] = self.tool_choice
        if self.stop is not None:
            args["stop"] = self.stop
        if self.reasoning_effort is not None:
            # Puter reads an effort level; Anthropic-style `thinking` budgets are ignored by it.
            args["reasoning"] = {"effort": self.reasoning_effort}
        if self.provider is not None:
            args["provider"] = self.provider
        return {"interface": _INTERFACE, "driver": _DRIVER, "method": _METHOD, "args": args}


def unicode_text(text: str) -> str:
    """`text` as valid Unicode: a surrogate pair split over two code points joined back into
    its character, a lone surrogate made U+FFFD (the replacement character).

    Python's JSON parser turns JSON's ``"\\ud83d"`` (half of an emoji, as a JavaScript string
    sliced in two writes it) into a lone surrogate, which no UTF-8 output can carry: an answer
    holding one could not be written to an MCP client or an HTTP response.
    """
    if text.isascii():
        return text  # the usual case, checked without a copy
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def json_body(value: Any) -> bytes:
    """`value` as the JSON body of a request: compact UTF-8, as Puter reads it.

    Text a client sent may hold what UTF-8 cannot carry (half of an emoji: see `unicode_text`);
    it is sent as `unicode_text` makes it rather than failing the request.

    Raises:
        PuterError: `BAD_REQUEST`, for a number JSON has no word for (NaN, infinity), which
            Python's own JSON parser lets into a tool's schema.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:
        raise PuterError(FailureKind.BAD_REQUEST, f"The request cannot be written as JSON: {exc}.") from exc
    return unicode_text(text).encode("utf-8")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


class ToolCall(BaseModel):
    """A tool the model asked to call, with its arguments decoded and as the model wrote them."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str = ""
    """The JSON text of the arguments: OpenAI-shaped answers give it; for Anthropic-shaped ones
    (an object) it is that object written as JSON. Empty when the call was built without it."""

    @property
    def arguments_json(self) -> str:
        return self.raw_arguments or json.dumps(self.arguments)

    def __eq__(self, other: object) -> bool:
        # The raw text is one spelling of `arguments`: two calls that decode the same are equal.
        if not isinstance(other, ToolCall):
            return NotImplemented
        return (self.id, self.name, self.arguments) == (other.id, other.name, other.arguments)

    def __hash__(self) -> int:
        return hash((self.id, self.name, json.dumps(self.arguments, sort_keys=True)))


def _raw_arguments(raw: Any) -> str:
    """The arguments as JSON text (an object is written out; a string is kept as sent)."""
    if isinstance(raw, str):
        return raw or "{}"
    if raw is None:
        return "{}"
    return json.dumps(raw, separators=(",", ":"), ensure_ascii=False)


class Usage(BaseModel):
    """Token counts of one call, whatever the provider's spelling.

    ``input_tokens`` counts every input token, cached or not (Puter reports cache reads and
    writes apart from the rest; they are added back here), and ``cached_tokens`` is the part
    read from a cache. ``reasoning_tokens`` is informational: vendors count it inside the output.
    Puter never sends a total, so it is computed.
    """

    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @computed_field
    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ChatResult(BaseModel):
    """One finished answer, normalised from either of Puter's answer shapes or from a stream."""

    model_config = ConfigDict(frozen=True)

    text: str
    reasoning: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: str | None = None
    """OpenAI's vocabulary (``stop``, ``length``, ``tool_calls``, ``content_filter``) when the
    provider's reason maps onto it, else the provider's own word."""
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None
    """What Puter charged for the call; None when it did not say (its test models)."""
    model: str | None = None
    """The canonical id of the model that answered (may differ from the alias asked for)."""
    provider: str | None = None
    """Puter's provider key that served the call (``metadata.service_used``)."""


# --------------------------------------------------------------------------------------------
# Stream events
# --------------------------------------------------------------------------------------------
# Plain frozen dataclasses: one is built per NDJSON line, and they never cross a process boundary.


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    call: ToolCall


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """The last line of a complete stream; its arrival is what proves the stream was not cut."""

    usage: Usage
    cost_usd: float | None
    finish_reason: str | None = None


StreamEvent = TextDelta | ReasoningDelta | ToolCallEvent | UsageEvent


# --------------------------------------------------------------------------------------------
# Small readers, tolerant of what a JSON body may hold
# --------------------------------------------------------------------------------------------


def _int(value: Any) -> int:
    """A token count, or 0 for anything that is not a number (null, absent, garbage)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return 0


def _first_int(usage: Mapping[str, Any], *keys: str) -> int:
    for key in keys:
        if key in usage and usage[key] is not None:
            return _int(usage[key])
    return 0


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _cost_usd(usage: Mapping[str, Any] | None) -> float | None:
    """``usd_cents`` as dollars; absent or null (Puter's test models) stays None."""
    if usage is None:
        return None
    cents = usage.get("usd_cents")
    if isinstance(cents, bool) or not isinstance(cents, int | float):
        return None
    return cents / 100


def parse_usage(raw: Any) -> Usage:
    """Normalise any of Puter's usage spellings (Anthropic's, OpenAI's, OpenRouter's).

    Puter meters uncached input apart from cache reads and writes, for every provider
    (``input_tokens`` + ``cache_read_input_tokens`` + ``ephemeral_*``; ``prompt_tokens`` +
    ``cached_tokens``; ``prompt`` + ``input_cache_read``), so the parts are summed back. A raw
    vendor OpenAI usage (``prompt_tokens_details.cached_tokens``) already includes its cache reads.
    """
    if not isinstance(raw, Mapping):
        return Usage()
    usage: Mapping[str, Any] = raw
    uncached = _first_int(usage, "input_tokens", "prompt_tokens", "prompt")
    output = _first_int(usage, "output_tokens", "completion_tokens", "completion")
    cache_read = _first_int(usage, "cache_read_input_tokens", "cached_tokens", "input_cache_read")
    cache_write = (
        _int(usage.get("ephemeral_5m_input_tokens"))
        + _int(usage.get("ephemeral_1h_input_tokens"))
        + _first_int(usage, "cache_creation_input_tokens", "input_cache_write")
    )
    input_tokens = uncached + cache_read + cache_write
    details = usage.get("prompt_tokens_details")
    if not cache_read and isinstance(details, Mapping):
        cache_read = _int(details.get("cached_tokens"))  # already inside prompt_tokens
    reasoning = _first_int(usage, "thinking_tokens", "reasoning_tokens")
    completion_details = usage.get("completion_tokens_details")
    if not reasoning and isinstance(completion_details, Mapping):
        reasoning = _int(completion_details.get("reasoning_tokens"))
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output,
        cached_tokens=cache_read,
        reasoning_tokens=reasoning,
    )


_ANTHROPIC_STOP_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def normalise_finish_reason(reason: Any) -> str | None:
    """Map Anthropic's stop reasons onto OpenAI's words; others pass through unchanged."""
    if not isinstance(reason, str) or not reason:
        return None
    return _ANTHROPIC_STOP_REASONS.get(reason, reason)


def _decode_arguments(raw: Any, *, tool_name: str) -> dict[str, Any]:
    """Decode tool-call arguments, given as an object or (OpenAI) as a JSON string.

    A model that emits arguments that are not a JSON object has not made a usable call; that is
    reported as an error naming the tool, never replaced by ``{}`` (which would run the tool with
    no arguments).
    """
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            return decoded
        preview = raw if len(raw) <= 200 else raw[:200] + "..."
        raise PuterError(
            FailureKind.BAD_REQUEST,
            f"The model called tool {tool_name!r} with arguments that are not a JSON object: {preview}",
        )
    raise PuterError(
        FailureKind.BAD_REQUEST,
        f"The model called tool {tool_name!r} with arguments of type {type(raw).__name__}, not an object.",
    )


# --------------------------------------------------------------------------------------------
# Error envelopes
# --------------------------------------------------------------------------------------------


def error_from_body(status: int, body: Any) -> PuterError:
    """Build the `PuterError` for an error answer (either envelope; body None when not JSON).

    The status recorded is the one the error names: a v1 ``success: false`` envelope arrives as
    HTTP 200 but carries its real status (e.g. 402) inside.
    """
    kind, code, message = classify(status, body)
    if status == 200 and isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("status"), int):
            status = error["status"]
    return PuterError(kind, message, status=status, code=code)


# --------------------------------------------------------------------------------------------
# Non-streaming answers
# --------------------------------------------------------------------------------------------


def _is_anthropic_message(message: Mapping[str, Any]) -> bool:
    return message.get("type") == "message" or isinstance(message.get("content"), list)


def _from_anthropic(message: Mapping[str, Any]) -> tuple[str, str | None, list[ToolCall], str | None]:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    content = message.get("content")
    if isinstance(content, str):  # an already-normalised message
        texts.append(content)
        content = []
    for block in content or []:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thoughts.append(block["thinking"])
        elif kind == "tool_use":
            name = str(block.get("name") or "")
            calls.append(
                ToolCall(
                    id=str(block.get("id") or ""),
                    name=name,
                    arguments=_decode_arguments(block.get("input"), tool_name=name),
                    raw_arguments=_raw_arguments(block.get("input")),
                )
            )
    reasoning = "".join(thoughts) or None
    return "".join(texts), reasoning, calls, normalise_finish_reason(message.get("stop_reason"))


def _openai_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some providers answer with a list of parts
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""


def _from_openai(choice: Mapping[str, Any]) -> tuple[str, str | None, list[ToolCall], str | None]:
    message = choice.get("message")
    if not isinstance(message, Mapping):
        message = {}
    calls: list[ToolCall] = []
    for raw_call in message.get("tool_calls") or []:
        if not isinstance(raw_call, Mapping):
            continue
        function = raw_call.get("function")
        if not isinstance(function, Mapping):
            function = {}
        name = str(function.get("name") or "")
        calls.append(
            ToolCall(
                id=str(raw_call.get("id") or ""),
                name=name,
                arguments=_decode_arguments(function.get("arguments"), tool_name=name),
                raw_arguments=_raw_arguments(function.get("arguments")),
            )
        )
    reasoning = _str_or_none(message.get("reasoning")) or _str_or_none(message.get("reasoning_content"))
    return (
        _openai_text(message.get("content")),
        reasoning,
        calls,
        normalise_finish_reason(choice.get("finish_reason")),
    )


def parse_chat_answer(body: Any, *, requested_model: str | None = None) -> ChatResult:
    """Turn a 200 JSON answer to a chat call into a `ChatResult`, or raise `PuterError`.

    Success bodies are inspected too, because Puter has disguised failures as successes:
    a v1 ``success: false`` envelope; a usage-limited account answered by the
    ``usage-limited`` stand-in (or flagged ``metadata.usage_limited``); a prompt blocked and
    answered by the ``fake``/``abuse`` test models instead of the model asked for.

    Args:
        body: the decoded JSON body.
        requested_model: the model name that was sent, to recognise a substituted answer.
    """
    if not isinstance(body, Mapping):
        raise PuterError(FailureKind.TRANSPORT, "Puter answered with JSON that is not an object.", status=200)
    if body.get("success") is False:
        raise error_from_body(200, body)
    result = body.get("result")
    if not isinstance(result, Mapping):
        raise PuterError(FailureKind.TRANSPORT, "Puter's answer has no result.", status=200)
    metadata = body.get("metadata")
    if not isinstance(metadata, Mapping):
        metadata = {}

    message = result.get("message")
    if not isinstance(message, Mapping):
        message = {}
    answered = _str_or_none(metadata.get("providerUsed")) or _str_or_none(message.get("model"))
    provider = _str_or_none(metadata.get("service_used"))

    if (
        metadata.get("usage_limited") is True
        or (answered or "").lower() in _USAGE_LIMITED_MODELS
        or provider == _USAGE_LIMITED_SERVICE
    ):
        raise PuterError(
            FailureKind.OUT_OF_CREDITS,
            "Puter answered with its usage-limit notice: this account has no AI usage left.",
            status=200,
        )
    asked = (requested_model or "").strip().lower()
    if answered is not None and answered.lower() in _STAND_IN_MODELS and answered.lower() != asked:
        raise PuterError(
            FailureKind.BAD_REQUEST,
            f"Puter replaced the model {requested_model!r} with its {answered!r} test model instead of "
            "answering; the prompt was probably blocked by its abuse or moderation checks.",
            status=200,
        )

    if _is_anthropic_message(message):
        text, reasoning, calls, finish = _from_anthropic(message)
        # Puter's `result.finish_reason` is always "stop" for this shape; the real one is above.
        finish = finish or normalise_finish_reason(result.get("finish_reason"))
    else:
        text, reasoning, calls, finish = _from_openai(result)
    raw_usage = result.get("usage")
    if not isinstance(raw_usage, Mapping):
        raw_usage = message.get("usage")
    usage_map = raw_usage if isinstance(raw_usage, Mapping) else None
    return ChatResult(
        text=unicode_text(text),
        reasoning=None if reasoning is None else unicode_text(reasoning),
        tool_calls=calls,
        finish_reason=finish,
        usage=parse_usage(usage_map),
        cost_usd=_cost_usd(usage_map),
        model=answered,
        provider=provider,
    )


def events_from_result(result: ChatResult) -> list[StreamEvent]:
    """The stream events equivalent to a whole answer (for a JSON answer to a streaming call)."""
    events: list[StreamEvent] = []
    if result.reasoning:
        events.append(ReasoningDelta(result.reasoning))
    if result.text:
        events.append(TextDelta(result.text))
    events.extend(ToolCallEvent(call) for call in result.tool_calls)
    events.append(UsageEvent(result.usage, result.cost_usd, result.finish_reason))
    return events


# --------------------------------------------------------------------------------------------
# Streaming answers
# --------------------------------------------------------------------------------------------


def _line_preview(line: bytes | str) -> str:
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    return text if len(text) <= 200 else text[:200] + "..."


def _vendor_status(message: str) -> int | None:
    head = message.lstrip()[:3]
    return int(head) if len(head) == 3 and head.isdigit() else None


def parse_stream_line(line: bytes | str) -> StreamEvent | None:
    """Read one NDJSON line of a streamed answer.

    Returns None for blank lines and for line types that carry nothing we use
    (``extra_content``, ``compaction``, ``image``, and any type Puter adds later).

    Raises:
        PuterError: for an ``error`` line (kind from the vendor status it starts with; status is
            that vendor status when there is one), for a usage line flagged ``usage_limited``
            (OUT_OF_CREDITS), for a line that is not a JSON object (TRANSPORT), and for a tool
            call whose arguments are not an object (BAD_REQUEST).
    """
    if not line.strip():
        return None
    try:
        # Decoded here rather than by `json.loads`, which would first guess the encoding of
        # bytes (a Python function, once a line): Puter sends UTF-8.
        data = json.loads(line.decode() if isinstance(line, bytes) else line)
    except ValueError:  # includes undecodable UTF-8
        raise PuterError(
            FailureKind.TRANSPORT, f"Puter sent a stream line that is not JSON: {_line_preview(line)}"
        ) from None
    if not isinstance(data, dict):  # what `json.loads` makes of an object, checked without the ABC
        raise PuterError(
            FailureKind.TRANSPORT,
            f"Puter sent a stream line that is not a JSON object: {_line_preview(line)}",
        )
    kind = data.get("type")
    if kind == "text":
        text = data.get("text")
        return TextDelta(text) if isinstance(text, str) and text else None
    if kind == "reasoning":
        text = data.get("reasoning")
        return ReasoningDelta(text) if isinstance(text, str) and text else None
    if kind == "tool_use":
        name = str(data.get("name") or "")
        call = ToolCall(
            id=str(data.get("id") or ""),
            name=name,
            arguments=_decode_arguments(data.get("input"), tool_name=name),
            raw_arguments=_raw_arguments(data.get("input")),
        )
        return ToolCallEvent(call)
    if kind == "usage":
        metadata = data.get("metadata")
        if isinstance(metadata, Mapping) and metadata.get("usage_limited") is True:
            raise PuterError(
                FailureKind.OUT_OF_CREDITS,
                "Puter streamed its usage-limit notice: this account has no AI usage left.",
                status=200,
            )
        raw_usage = data.get("usage")
        usage_map = raw_usage if isinstance(raw_usage, Mapping) else None
        cost = _cost_usd(usage_map)
        if cost is None:
            cost = _cost_usd(data)
        finish = normalise_finish_reason(data.get("finish_reason")) or normalise_finish_reason(
            data.get("stopReason")
        )
        return UsageEvent(parse_usage(usage_map), cost, finish)
    if kind == "error":
        raw_message = data.get("message")
        message = raw_message if isinstance(raw_message, str) and raw_message else "Puter's stream failed."
        raise PuterError(classify_stream_error(message), message, status=_vendor_status(message))
    return None


def _inferred_finish_reason(usage: Usage, called_tools: bool, max_tokens: int | None) -> str:
    """The finish reason of an answer whose provider gave none."""
    if called_tools:
        return "tool_calls"
    if max_tokens is not None and usage.output_tokens >= max_tokens:
        return "length"
    return "stop"


class StreamText:
    """One stream's events as passed on, their text and reasoning valid Unicode (`unicode_text`),
    and the text passed on so far (the partial text of a stream that breaks off).

    A JavaScript string sliced between two lines can cut an emoji in two: a delta's trailing
    high surrogate waits for the next delta of its kind, and anything else coming first, or the
    stream's end, lets it go as U+FFFD.
    """

    def __init__(self) -> None:
        self._held: dict[type[TextDelta | ReasoningDelta], str] = {}
        self._text: list[str] = []

    def take(self, event: StreamEvent) -> list[StreamEvent]:
        """What to pass on for `event`: what it frees of the held halves, then itself, mended."""
        if not isinstance(event, TextDelta | ReasoningDelta):
            return [*self.rest(), event] if self._held else [event]
        kind = type(event)
        text = self._held.pop(kind, "") + event.text if self._held else event.text
        if text and "\ud800" <= text[-1] <= "\udbff":
            self._held[kind], text = text[-1], text[:-1]
        if not text:
            return []
        mended = unicode_text(text)
        return [self._passed(event if mended is event.text else kind(mended))]

    def rest(self) -> list[StreamEvent]:
        """The held halves, let go as U+FFFD."""
        held, self._held = self._held, {}
        return [self._passed(kind("\ufffd")) for kind in held]

    def received(self) -> str:
        """The answer's text passed on so far."""
        return "".join(self._text)

    def _passed(self, delta: TextDelta | ReasoningDelta) -> TextDelta | ReasoningDelta:
        if isinstance(delta, TextDelta):
            self._text.append(delta.text)
        return delta


class ChatAccumulator:
    """Folds stream events into a `ChatResult`, remembering whether the stream was complete.

    A stream is complete only when its usage line arrived (Puter sends no "done" line), so
    `usage_seen` is what distinguishes a finished answer from a truncated one.
    """

    def __init__(self, *, max_tokens: int | None = None) -> None:
        """`max_tokens`: the request's limit; Puter's streams name no finish reason, so an
        answer whose output reached it is taken to have been cut there (``length``)."""
        self._max_tokens = max_tokens
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._tool_calls: list[ToolCall] = []
        self._usage: Usage | None = None
        self._cost_usd: float | None = None
        self._finish_reason: str | None = None

    def feed(self, event: StreamEvent) -> None:
        match event:
            case TextDelta(text=text):
                self._text.append(text)
            case ReasoningDelta(text=text):
                self._reasoning.append(text)
            case ToolCallEvent(call=call):
                self._tool_calls.append(call)
            case UsageEvent(usage=usage, cost_usd=cost, finish_reason=finish):
                self._usage = usage
                self._cost_usd = cost
                self._finish_reason = finish

    def extend(self, events: Sequence[StreamEvent]) -> None:
        for event in events:
            self.feed(event)

    @property
    def text(self) -> str:
        """The text received so far (what a failure reports as partial text)."""
        return "".join(self._text)

    @property
    def usage_seen(self) -> bool:
        return self._usage is not None

    def result(self, *, model: str | None = None, provider: str | None = None) -> ChatResult:
        """The answer so far; streams do not name the model, so the caller may supply it."""
        finish = self._finish_reason
        if finish is None and self._usage is not None:
            finish = _inferred_finish_reason(self._usage, bool(self._tool_calls), self._max_tokens)
        return ChatResult(
            text=self.text,
            reasoning="".join(self._reasoning) or None,
            tool_calls=list(self._tool_calls),
            finish_reason=finish,
            usage=self._usage or Usage(),
            cost_usd=self._cost_usd,
            model=model,
            provider=provider,
        )
