"""Ollama's API over the backend: `/api/chat`, `/api/generate`, `/api/tags`, `/api/show`, ...

Ollama's clients (Open WebUI, VS Code's Ollama provider, the `ollama` libraries) speak a small
JSON API, streamed as NDJSON by default. This module translates it both ways; docs/gateway-ollama.md
says what maps to what, for users.

```
POST /api/chat       messages (+images, tool calls, tool results), tools, think, options,
                     format, stream  ->  ChatCall  ->  NDJSON lines {"message": ..., "done"}
POST /api/generate   prompt, system, images, think, options, format, stream  ->  the same,
                     lines {"response": ..., "thinking": ...}
GET  /api/tags       the catalogue, the virtual models and `auto`, as Ollama model entries
POST /api/show       capabilities, model_info, details of one of them
GET  /api/ps         nothing is ever loaded: an empty list
GET  /api/version    a bare semver (`OLLAMA_VERSION`)
GET  /               "Ollama is running"
```

Ollama has no ids for tool calls: the calls of an assistant message get ids made here, and each
tool message is paired with the call it answers, in order (`_pair_tool_results`). The answer's
tool calls are sent whole, one per line, as Ollama does, gathered from the core's fragments
(`ToolCallGatherer`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import difflib
import hashlib
import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute

from puter_mcp.core import (
    BadRequest,
    ChatCall,
    ChatEvent,
    ChatOutcome,
    Finished,
    ImagePart,
    ModelRecord,
    ModelsQuery,
    ReasoningDelta,
    ReasoningEffort,
    StreamFailed,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallRecord,
    Turn,
    VirtualModelRecord,
)
from puter_mcp.gateway.estimate import estimate_call_tokens, estimate_tokens
from puter_mcp.gateway.exchange import Exchange
from puter_mcp.gateway.failures import GatewayError, from_backend_error
from puter_mcp.gateway.gate import OpenedAnswer
from puter_mcp.gateway.handling import Gateway, answer_headers, read_json, routes_for

__all__ = [
    "DEFAULT_THINK_EFFORT",
    "OLLAMA_VERSION",
    "Catalogue",
    "Durations",
    "GatheredCall",
    "ToolCallGatherer",
    "catalogue_name",
    "chat_call",
    "generate_call",
    "image_media_type",
    "reasoning_effort",
]

OLLAMA_VERSION = "0.13.0"
"""What `/api/version` answers. Clients compare it number by number: VS Code's Ollama provider
refuses a server older than 0.6.4, and clients offer `think` (0.9) and its levels (0.12) only to
servers that have them. A bare semver: some clients parse each segment as an integer."""

DEFAULT_THINK_EFFORT: ReasoningEffort = "medium"
"""The reasoning effort `think: true` asks for: Ollama's own default level for models that take
levels (gpt-oss), and the middle of the three Puter takes."""

_Model = TypeVar("_Model", Tool, ToolCall, Turn)

OWNER = "puter-mcp"
"""The family of the virtual models (chains and `auto`), which no single provider serves."""

_LATEST = ":latest"

# Ollama's `done_reason` for the core's finish reasons; a tool call ends a turn as "stop" there.
_DONE_REASONS = {"length": "length", "max_tokens": "length", "max_output_tokens": "length"}

# Puter's catalogue does not say which models reason; these names do (see docs/gateway-ollama.md).
_REASONING_MODEL = re.compile(
    r"claude-(?:3-7|(?:opus|sonnet|haiku)-[4-9]|[4-9])|gpt-5|(?:^|[/:])o[1-9](?:-|$)|gpt-oss"
    r"|gemini-(?:2\.5|[3-9])|deepseek-(?:reasoner|r1)|grok-(?:3-mini|[4-9])|qwen3|magistral|qwq"
    r"|thinking|reasoning|kimi-k2",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------------------------
# Requests: Ollama's JSON -> a ChatCall


def catalogue_name(name: str) -> str:
    """The name the backend knows for a model an Ollama client names.

    Ollama clients append the tag `:latest` to a name without a tag (and may lower-case it:
    the catalogue matches names in any case), so ``gpt-5-nano:latest`` asks for ``gpt-5-nano``.
    """
    name = name.strip()
    if name.lower().endswith(_LATEST):
        return name[: -len(_LATEST)]
    return name


def reasoning_effort(think: Any) -> ReasoningEffort | None:
    """The effort Puter takes for Ollama's `think`: true is `DEFAULT_THINK_EFFORT`, a level is
    itself, false or absent is none.

    Raises:
        BadRequest: `think` is something else.
    """
    if think is None or think is False:
        return None
    if think is True:
        return DEFAULT_THINK_EFFORT
    if isinstance(think, str) and think.strip().lower() in ("low", "medium", "high"):
        return think.strip().lower()  # type: ignore[return-value]
    raise BadRequest(
        f'`think` must be true, false, "low", "medium" or "high", got {think!r}', argument="think"
    )


# The first bytes of each image format vendors take, and its media type.
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),  # after "RIFF" and the file's length
)


def image_media_type(data: bytes) -> str | None:
    """The media type of an image from its first bytes (PNG, JPEG, GIF, WebP), else None."""
    for magic, offset, media_type in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            if media_type == "image/webp" and not data.startswith(b"RIFF"):
                continue
            return media_type
    return None


def _image_part(given: Any, where: str) -> ImagePart:
    """An Ollama image (base64, no data: prefix) as an inline image part, its type read from
    its bytes (Ollama says nothing of it, vendors need it)."""
    if not isinstance(given, str) or not given.strip():
        raise BadRequest(f"`{where}` must be an image as a base64 string", argument=where)
    text = given.strip()
    if text.startswith("data:"):  # some clients send a data: URL anyway; its type is re-read
        text = text.partition(",")[2]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"`{where}` is not valid base64", argument=where) from None
    media_type = image_media_type(data)
    if media_type is None:
        raise BadRequest(
            f"`{where}` is not a PNG, JPEG, GIF or WebP image (the formats models take)", argument=where
        )
    return ImagePart(url=f"data:{media_type};base64,{text}")


def _object(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest(f"`{key}` must be an object", argument=key)
    return value


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        model = body.get("name")  # Ollama's older spelling, still sent by some clients
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("`model` is required: name a model, a virtual model or auto", argument="model")
    return model


def stream_wanted(body: Mapping[str, Any]) -> bool:
    """`stream`, true when absent (as Ollama)."""
    stream = body.get("stream", True)
    if stream is None:
        return True
    if not isinstance(stream, bool):
        raise BadRequest("`stream` must be true or false", argument="stream")
    return stream


@dataclass(frozen=True)
class _Options:
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None


def _options(body: Mapping[str, Any]) -> _Options:
    """`options.temperature`, `num_predict` and `stop`; Ollama's other options (sampling,
    context size, GPU layers...) tune a local runtime and are ignored."""
    options = _object(body, "options")
    temperature = options.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        raise BadRequest(
            f"`options.temperature` must be a number from 0 to 2, got {temperature!r}",
            argument="options.temperature",
        )
    limit = options.get("num_predict")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit == 0):
        raise BadRequest(
            f"`options.num_predict` must be a whole number of tokens (-1 for no limit), got {limit!r}",
            argument="options.num_predict",
        )
    stop = options.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop)):
        raise BadRequest("`options.stop` must be a list of non-empty strings", argument="options.stop")
    return _Options(
        temperature=float(temperature) if temperature is not None else None,
        # Ollama's -1 (no limit) and -2 (fill the context) leave the length to the model.
        max_tokens=limit if limit is not None and limit > 0 else None,
        stop=stop or None,
    )


def format_instruction(given: Any) -> str | None:
    """A system instruction for Ollama's `format`, or None when there is none.

    Puter offers no constrained decoding, so `"json"` and a JSON schema become an instruction
    to the model; the answer is passed on as it comes, never rewritten.
    """
    if given is None or given == "":
        return None
    if given == "json":
        return "Answer with one JSON value only: no prose before or after it, no code fences."
    if isinstance(given, Mapping):
        schema = json.dumps(given, separators=(",", ":"))
        return (
            "Answer with one JSON value only, valid against this JSON schema: no prose before or "
            f"after it, no code fences.\nSchema: {schema}"
        )
    raise BadRequest('`format` must be "json" or a JSON schema (an object)', argument="format")


def _tools(given: Any) -> list[Tool]:
    if given is None:
        return []
    if not isinstance(given, list):
        raise BadRequest("`tools` must be a list of tools", argument="tools")
    tools: list[Tool] = []
    for index, item in enumerate(given):
        function = item.get("function") if isinstance(item, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise BadRequest(
                f'`tools[{index}]` must be {{"type": "function", "function": {{"name", "description", "parameters"}}}}',
                argument=f"tools.{index}",
            )
        tools.append(
            _checked(
                Tool,
                f"tools.{index}",
                name=function["name"],
                description=function.get("description"),
                parameters=function.get("parameters") or {"type": "object", "properties": {}},
            )
        )
    return tools


def _checked(kind: type[_Model], where: str, **fields: Any) -> _Model:
    """`kind(**fields)`, its validation error worded as a BadRequest naming `where`."""
    from pydantic import ValidationError

    try:
        return kind(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        problem = error["msg"].removeprefix("Value error, ")
        # The field at fault, when it is one of the model's own (not a union branch's name).
        inner = [str(part) for part in error["loc"] if isinstance(part, str) and part in kind.model_fields]
        where = ".".join([where, *inner[:1]])
        raise BadRequest(f"bad chat argument `{where}`: {problem}", argument=where) from None


@dataclass
class _PendingCalls:
    """The tool calls of the last assistant message that no tool message has answered yet."""

    calls: list[ToolCall] = field(default_factory=list)

    def answer(self, name: Any, given_id: Any, where: str) -> str:
        """The id of the call a tool message answers: the one it names by id, else the first
        unanswered call of that tool, else the first unanswered call."""
        chosen: ToolCall | None = None
        if isinstance(given_id, str) and given_id:
            chosen = next((call for call in self.calls if call.id == given_id), None)
        elif isinstance(name, str) and name:
            chosen = next((call for call in self.calls if call.name == name), None)
            if chosen is None:
                waiting = ", ".join(call.name for call in self.calls) or "none"
                raise BadRequest(
                    f"`{where}` is the result of tool {name!r}, but the calls the assistant made "
                    f"before it and not yet answered are: {waiting}",
                    argument=where,
                )
        elif self.calls:
            chosen = self.calls[0]
        if chosen is None:
            raise BadRequest(
                f"`{where}` is a tool result, but no earlier assistant message made a tool call "
                "it could answer (assistant messages carry them in `tool_calls`)",
                argument=where,
            )
        self.calls.remove(chosen)
        return chosen.id


def _assistant_calls(given: Any, index: int) -> list[ToolCall]:
    where = f"messages.{index}.tool_calls"
    if given is None:
        return []
    if not isinstance(given, list):
        raise BadRequest(f"`{where}` must be a list", argument=where)
    calls: list[ToolCall] = []
    for number, item in enumerate(given):
        function = item.get("function") if isinstance(item, Mapping) else None
        if not isinstance(function, Mapping):
            raise BadRequest(
                f'`{where}[{number}]` must be {{"function": {{"name", "arguments"}}}}', argument=where
            )
        given_id = item.get("id")
        calls.append(
            _checked(
                ToolCall,
                f"{where}.{number}",
                # Ollama has no ids (newer servers send one, kept when it comes back): a made
                # one pairs the call with the tool message that answers it.
                id=given_id if isinstance(given_id, str) and given_id else f"call_{index}_{number}",
                name=function.get("name") or "",
                arguments=function.get("arguments") if function.get("arguments") is not None else {},
            )
        )
    return calls


def _turns(messages: Any) -> list[Turn]:
    """Ollama's messages as the core's turns, tool results paired with their calls."""
    if not isinstance(messages, list) or not messages:
        raise BadRequest("`messages` must be a non-empty list of messages", argument="messages")
    turns: list[Turn] = []
    pending = _PendingCalls()
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, Mapping):
            raise BadRequest(f"`{where}` must be an object with `role` and `content`", argument=where)
        role = message.get("role")
        content = message.get("content") or ""
        if not isinstance(content, str):
            raise BadRequest(f"`{where}.content` must be a string", argument=f"{where}.content")
        images = message.get("images") or []
        if not isinstance(images, list):
            raise BadRequest(f"`{where}.images` must be a list of base64 strings", argument=f"{where}.images")
        # `thinking` of earlier answers is dropped: vendors take back only reasoning signed by the
        # model that wrote it, and Ollama's messages carry no signature.
        fields: dict[str, Any] = {"role": role}
        if images:
            parts: list[TextPart | ImagePart] = [TextPart(text=content)] if content else []
            parts.extend(_image_part(image, f"{where}.images.{n}") for n, image in enumerate(images))
            fields["content"] = parts
        else:
            fields["content"] = content
        if role == "assistant":
            calls = _assistant_calls(message.get("tool_calls"), index)
            if not calls and not content.strip():
                # An empty assistant message (a client's placeholder for an answer that never
                # came) says nothing; vendors refuse it.
                continue
            fields["tool_calls"] = calls
            pending = _PendingCalls(list(calls))
        elif role == "tool":
            fields["tool_call_id"] = pending.answer(
                message.get("tool_name") or message.get("name"), message.get("tool_call_id"), where
            )
        turns.append(_checked(Turn, where, **fields))
    return turns


def _with_format(turns: list[Turn], body: Mapping[str, Any]) -> list[Turn]:
    instruction = format_instruction(body.get("format"))
    if instruction is None:
        return turns
    # After the caller's own system messages, so that theirs come first as they wrote them.
    leading = next((i for i, turn in enumerate(turns) if turn.role != "system"), len(turns))
    return [*turns[:leading], Turn(role="system", content=instruction), *turns[leading:]]


def _call(body: Mapping[str, Any], turns: list[Turn]) -> ChatCall:
    options = _options(body)
    effort = reasoning_effort(body.get("think"))
    # Turns and tools are checked already: pydantic takes the instances as they are.
    fields: dict[str, Any] = {
        "messages": turns,
        "model": catalogue_name(_model(body)),
        "temperature": options.temperature,
        "max_tokens": options.max_tokens,
        "stop": options.stop,
        "reasoning_effort": effort,
        "tools": _tools(body.get("tools")),
        # Streamed from Puter even when the client wants the answer whole: a stall is noticed
        # sooner, and a broken answer is started again before anything was sent.
        "stream": True,
    }
    return ChatCall.parse({key: value for key, value in fields.items() if value is not None})


def chat_call(body: Mapping[str, Any]) -> ChatCall:
    """The call an `/api/chat` body asks for.

    Raises:
        BadRequest: a wrong shape, named by where it is (``messages.2.images.0``).
    """
    stream_wanted(body)  # checked here, so that a wrong one is refused before anything is asked
    return _call(body, _with_format(_turns(body.get("messages")), body))


_GENERATE_UNSUPPORTED = {
    "suffix": "a suffix (fill-in-the-middle completion) cannot be sent: Puter's models take chat "
    "messages; leave `suffix` out",
    "template": "a prompt template cannot be applied: Puter's models take chat messages, not "
    "templated text; leave `template` out",
    "context": "`context` (the tokens of an earlier answer) cannot be continued: this server "
    "answers with an empty context; send the conversation to /api/chat instead",
}


def generate_call(body: Mapping[str, Any]) -> ChatCall:
    """The call an `/api/generate` body asks for: `system` and `prompt` (with `images`) as one
    exchange.

    Raises:
        BadRequest: a wrong shape, or what cannot be honoured: `raw` prompts, `suffix`,
            `template`, a non-empty `context`.
    """
    stream_wanted(body)
    if body.get("raw") is True:
        raise BadRequest(
            "raw prompts (already in a model's template) cannot be sent: Puter's models take chat "
            "messages; leave `raw` out and send the prompt alone",
            argument="raw",
        )
    for key, why in _GENERATE_UNSUPPORTED.items():
        if body.get(key):
            raise BadRequest(why, argument=key)
    prompt = body.get("prompt") or ""
    system = body.get("system") or ""
    if not isinstance(prompt, str):
        raise BadRequest("`prompt` must be a string", argument="prompt")
    if not isinstance(system, str):
        raise BadRequest("`system` must be a string", argument="system")
    message: dict[str, Any] = {"role": "user", "content": prompt}
    if body.get("images"):
        message["images"] = body["images"]
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system.strip() else []
    turns = _turns([*messages, message])
    return _call(body, _with_format(turns, body))


def wants_thinking(body: Mapping[str, Any]) -> bool:
    """Whether to pass the model's reasoning on: not when `think` is false (a model that always
    reasons still does; the caller said it does not want to see it)."""
    return body.get("think") is not False


# --------------------------------------------------------------------------------------------
# Answers: the core's events -> Ollama's lines


def created_at(epoch: float) -> str:
    """Ollama's `created_at`: RFC 3339 in UTC."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def done_reason(finish_reason: str | None) -> str:
    """Ollama's `done_reason` for the core's finish reason (`stop` or `length`)."""
    return _DONE_REASONS.get((finish_reason or "").lower(), "stop")


@dataclass
class Durations:
    """Ollama's timings, measured from the request's arrival (`time.perf_counter()` seconds):
    to the first content (`prompt_eval_duration`: routing, failover and the model's time to
    first token), from there to the end (`eval_duration`), and in all (`total_duration`).
    Nothing is loaded here, so `load_duration` is 0. A whole answer's first content is not
    observed: its time is all `eval_duration`."""

    started: float
    first_content: float | None = None
    ended: float | None = None

    def fields(self) -> dict[str, int]:
        ended = self.ended if self.ended is not None else time.perf_counter()
        first = self.first_content if self.first_content is not None else self.started
        to_first, after = _ns(first - self.started), _ns(ended - first)
        return {
            "total_duration": to_first + after,
            "load_duration": 0,
            "prompt_eval_duration": to_first,
            "eval_duration": after,
        }


def _ns(seconds: float) -> int:
    return max(0, round(seconds * 1e9))


def usage_estimated(outcome: ChatOutcome) -> bool:
    """Whether Puter reported no token counts for this answer (they are estimated then)."""
    return outcome.usage.input_tokens == 0 and outcome.usage.output_tokens == 0


def counts(outcome: ChatOutcome, call: ChatCall) -> tuple[int, int]:
    """`prompt_eval_count` and `eval_count`: Puter's counts, or estimates when it reported none
    (never zeros passed off as measured)."""
    usage = outcome.usage
    if not usage_estimated(outcome):
        return usage.input_tokens, usage.output_tokens
    arguments = "".join(tool_call.arguments_json for tool_call in outcome.tool_calls)
    return estimate_call_tokens(call), estimate_tokens(outcome.text + (outcome.reasoning or "") + arguments)


def final_fields(outcome: ChatOutcome, call: ChatCall, durations: Durations) -> dict[str, Any]:
    """What the last line (or a whole answer) adds: `done`, why, the timings and the counts."""
    input_tokens, output_tokens = counts(outcome, call)
    return {
        "done": True,
        "done_reason": done_reason(outcome.finish_reason),
        **durations.fields(),
        "prompt_eval_count": input_tokens,
        "eval_count": output_tokens,
    }


def tool_call_entry(index: int, call_id: str, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """One tool call as Ollama writes it: arguments as an object, plus the id and index newer
    Ollama servers send (a client that sends the id back gets its tool result paired by it)."""
    return {"id": call_id, "function": {"index": index, "name": name, "arguments": dict(arguments)}}


def tool_calls_of(records: Sequence[ToolCallRecord]) -> list[dict[str, Any]]:
    return [tool_call_entry(i, call.id, call.name, call.arguments) for i, call in enumerate(records)]


def ndjson(line: Mapping[str, Any]) -> bytes:
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


@dataclass(frozen=True)
class GatheredCall:
    """A whole tool call, gathered from the core's fragments."""

    index: int
    id: str
    name: str
    arguments: dict[str, Any]

    def entry(self) -> dict[str, Any]:
        return tool_call_entry(self.index, self.id, self.name, self.arguments)


@dataclass
class _OpenCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def decoded(self) -> dict[str, Any] | None:
        text = "".join(self.arguments).strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class ToolCallGatherer:
    """Gathers the core's `ToolCallDelta` fragments into whole calls, which Ollama sends each
    in one line with its arguments as an object.

    A call is complete when another call's fragment, other content or the end arrives and its
    arguments read as a JSON object (fragments of calls that interleave stay open until
    theirs do).
    """

    def __init__(self) -> None:
        self._open: dict[int, _OpenCall] = {}
        self._current: int | None = None
        self.sent = 0

    def add(self, delta: ToolCallDelta) -> list[GatheredCall]:
        """Take a fragment; returns the calls it shows to be complete."""
        done = self.flush(final=False) if delta.index != self._current else []
        call = self._open.setdefault(delta.index, _OpenCall())
        if delta.id:
            call.id = delta.id
        if delta.name and not call.name:
            call.name = delta.name
        call.arguments.append(delta.arguments)
        self._current = delta.index
        return done

    def flush(self, *, final: bool = True) -> list[GatheredCall]:
        """The open calls whose arguments are complete. With `final` (the answer ended), every
        open call, and a ValueError for arguments that are not a JSON object."""
        done: list[GatheredCall] = []
        for index in sorted(self._open):
            call = self._open[index]
            arguments = call.decoded()
            if arguments is None:
                if final:
                    raise ValueError(f"the model's arguments for tool {call.name!r} are not a JSON object")
                continue
            del self._open[index]
            done.append(GatheredCall(index, call.id or f"call_{index}", call.name, arguments))
        if final:
            self._current = None
        self.sent += len(done)
        return done


# --------------------------------------------------------------------------------------------
# Models: the catalogue as Ollama model entries


def reasons(model_id: str) -> bool:
    """Whether a model reasons, guessed from its name (Puter's catalogue does not say)."""
    return _REASONING_MODEL.search(model_id) is not None


def digest(name: str) -> str:
    """A stable digest for a model entry: Ollama identifies a model's weights by one."""
    return hashlib.sha256(name.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One model as Ollama lists it: a catalogue model, a virtual model or `auto`."""

    name: str
    family: str
    context: int | None
    tools: bool
    vision: bool
    thinking: bool
    description: str = ""
    members: tuple[str, ...] = ()

    @property
    def capabilities(self) -> list[str]:
        """What VS Code and Open WebUI read to offer tools, images and a thinking toggle."""
        found = ["completion"]
        found += ["tools"] if self.tools else []
        found += ["vision"] if self.vision else []
        found += ["thinking"] if self.thinking else []
        return found

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "puter",
            "family": self.family,
            "families": [self.family],
            "parameter_size": "",
            "quantization_level": "",
        }

    def tag(self, modified_at: str) -> dict[str, Any]:
        """The entry `/api/tags` lists."""
        return {
            "name": self.name,
            "model": self.name,
            "modified_at": modified_at,
            "size": 0,
            "digest": digest(self.name),
            "details": self.details(),
        }

    def show(self, modified_at: str) -> dict[str, Any]:
        """What `/api/show` answers for it."""
        architecture = re.sub(r"[^a-z0-9_]+", "_", self.family.lower()) or "puter"
        model_info: dict[str, Any] = {
            "general.architecture": architecture,
            "general.basename": self.name,
            "general.parameter_count": 0,
        }
        if self.context:
            model_info[f"{architecture}.context_length"] = self.context
        served = (
            f"# {self.name}: {self.description or 'a virtual model'}; tries {', '.join(self.members)}"
            if self.members
            else f"# {self.name} is served by Puter ({self.family}) through puter-mcp"
        )
        return {
            "modelfile": f"{served}\nFROM {self.name}\n",
            "parameters": "",
            "template": "",
            "details": self.details(),
            "model_info": model_info,
            "capabilities": self.capabilities,
            "modified_at": modified_at,
        }


def _model_entry(model: ModelRecord) -> Entry:
    return Entry(
        name=model.id,
        family=model.provider or "puter",
        context=model.context,
        tools=model.tool_calling is not False,  # as routing counts it: unknown is able
        vision="image" in model.input_modalities,
        thinking=reasons(model.id),
    )


def _group_entry(name: str, description: str, members: Sequence[Entry]) -> Entry:
    """A virtual model: routing picks the members that can do what a call needs, so it can do
    what any of them can; its context is the smallest, since any of them may answer."""
    contexts = [member.context for member in members if member.context]
    return Entry(
        name=name,
        family=OWNER,
        context=min(contexts) if contexts else None,
        tools=any(member.tools for member in members),
        vision=any(member.vision for member in members),
        thinking=any(member.thinking for member in members),
        description=description,
        members=tuple(member.name for member in members),
    )


class Catalogue:
    """The models Ollama clients see: every catalogue model, the virtual models and `auto`."""

    def __init__(self, models: Iterable[ModelRecord], virtual: Iterable[VirtualModelRecord]) -> None:
        records = list(models)
        self.models = [_model_entry(model) for model in records]
        by_id = {entry.name.lower(): entry for entry in self.models}
        self._names: dict[str, Entry] = {}
        for model, entry in zip(records, self.models, strict=True):
            for alias in model.aliases:
                self._names.setdefault(alias.lower(), entry)
        self.virtual: list[Entry] = []
        every_member: list[Entry] = []
        for chain in virtual:
            members = [by_id[m.lower()] for m in chain.members if m.lower() in by_id]
            every_member += members
            self.virtual.append(_group_entry(chain.name, chain.description, members))
        self.virtual.append(
            _group_entry("auto", "chooses a virtual model from each request's message", every_member)
        )
        for entry in self.models + self.virtual:
            self._names[entry.name.lower()] = entry

    @property
    def entries(self) -> list[Entry]:
        return [*self.virtual, *self.models]

    def find(self, name: str) -> Entry | None:
        return self._names.get(catalogue_name(name).lower())

    def closest(self, name: str, n: int = 3) -> list[str]:
        names = [entry.name for entry in self.entries]
        lowered = {entry.lower(): entry for entry in names}
        found = difflib.get_close_matches(catalogue_name(name).lower(), list(lowered), n=n, cutoff=0.5)
        return [lowered[match] for match in found]


# --------------------------------------------------------------------------------------------
# The routes


class OllamaApi:
    """Ollama's error shape: ``{"error": "..."}`` with the status."""

    name = "ollama"

    def error_response(self, error: GatewayError) -> Response:
        return JSONResponse({"error": error.message}, status_code=error.status, headers=error.headers())


OLLAMA = OllamaApi()

NDJSON = "application/x-ndjson"

_METHODS = {"chat": "POST", "generate": "POST", "tags": "GET", "show": "POST", "ps": "GET", "version": "GET"}
"""The endpoints served, and the method each takes (GET ones answer HEAD too)."""

_NOT_SERVED = {
    "pull": "models are not downloaded here: every model of Puter's catalogue is ready (GET /api/tags)",
    "push": "models cannot be uploaded: this server serves Puter's catalogue",
    "create": "models cannot be created: define a virtual model (a chain) in puter-mcp's config.toml",
    "copy": "models cannot be copied: define a virtual model (a chain) in puter-mcp's config.toml",
    "delete": "models cannot be deleted: this server serves Puter's catalogue",
    "embed": "embeddings are not served: Puter's chat models only",
    "embeddings": "embeddings are not served: Puter's chat models only",
    "blobs": "model files are not stored here: this server serves Puter's catalogue",
}


def _refusal(error: BadRequest) -> GatewayError:
    return GatewayError(400, error.message, param=error.argument)


class _Lines:
    """The NDJSON body of one streamed answer: a line per piece of text or reasoning, a line
    per whole tool call, then the final line, or an ``{"error"}`` line after what was sent
    when the answer breaks off.

    Args:
        key: where the text goes: ``message`` (`/api/chat`: a message object) or ``response``
            (`/api/generate`: the text itself).
        thinking: pass the model's reasoning on (not when `think` is false).
    """

    def __init__(self, call: ChatCall, durations: Durations, *, key: str, thinking: bool) -> None:
        self.call, self.durations, self.key, self.thinking = call, durations, key, thinking
        self._gatherer = ToolCallGatherer()
        self._model = ""

    def _line(self, model: str, text: str = "", **extra: Any) -> bytes:
        line: dict[str, Any] = {"model": model, "created_at": created_at(time.time())}
        if self.key == "message":
            message: dict[str, Any] = {"role": "assistant", "content": text}
            for name in ("thinking", "tool_calls"):
                if name in extra:
                    message[name] = extra.pop(name)
            line["message"] = message
        else:
            line["response"] = text
        line.update(extra)
        line.setdefault("done", False)
        return ndjson(line)

    def opening(self, opened: OpenedAnswer) -> bytes:
        self.durations.first_content = self.durations.started + opened.ttft_ms / 1000
        self._model = opened.model
        return b""

    def encode(self, event: ChatEvent) -> bytes:
        model, gatherer = self._model, self._gatherer
        if isinstance(event, TextDelta):
            head = b"".join(
                self._line(model, tool_calls=[call.entry()]) for call in gatherer.flush(final=False)
            )
            return head + self._line(model, event.text)
        if isinstance(event, ReasoningDelta):
            return self._line(model, thinking=event.text) if self.thinking else b""
        if isinstance(event, ToolCallDelta):
            return b"".join(self._line(model, tool_calls=[call.entry()]) for call in gatherer.add(event))
        if isinstance(event, Finished):
            try:
                calls = gatherer.flush()
            except ValueError as exc:
                return ndjson({"error": str(exc)})
            lines = b"".join(self._line(model, tool_calls=[call.entry()]) for call in calls)
            self.durations.ended = time.perf_counter()
            outcome = event.outcome
            fields = final_fields(outcome, self.call, self.durations)
            if self.key == "response":
                fields["context"] = []
            return lines + self._line(outcome.model, **fields)
        if isinstance(event, StreamFailed):
            # What was sent stays; the client is told why the rest will not come.
            return ndjson({"error": from_backend_error(event.error, now=time.time()).message})
        return b""


def whole_body(
    outcome: ChatOutcome, call: ChatCall, durations: Durations, *, key: str, thinking: bool
) -> dict[str, Any]:
    """A non-streamed answer: one object with the whole message (or response) and the counts."""
    body: dict[str, Any] = {"model": outcome.model, "created_at": created_at(time.time())}
    reasoning = outcome.reasoning if thinking else None
    if key == "message":
        message: dict[str, Any] = {"role": "assistant", "content": outcome.text}
        if reasoning:
            message["thinking"] = reasoning
        if outcome.tool_calls:
            message["tool_calls"] = tool_calls_of(outcome.tool_calls)
        body["message"] = message
    else:
        body["response"] = outcome.text
        if reasoning:
            body["thinking"] = reasoning
    durations.ended = time.perf_counter()
    body.update(final_fields(outcome, call, durations))
    if key == "response":
        body["context"] = []
    return body


def routes(gateway: Gateway) -> list[BaseRoute]:
    """Ollama's routes over `gateway`."""
    since = created_at(gateway.clock())
    """`modified_at` of every model: when this gateway began serving them."""

    async def catalogue() -> Catalogue:
        backend = gateway.backend
        page = await backend.list_models(ModelsQuery(limit=100_000))
        virtual = await backend.list_models(ModelsQuery(virtual=True))
        return Catalogue(page.models, virtual.virtual_models)

    async def loaded(request: Request, exchange: Exchange, body: Mapping[str, Any], key: str) -> Response:
        """Ollama's answer to a request with nothing to say: the model is "loaded" (clients
        send one to warm a model up). Ollama checks the model exists; so does this."""
        # Nothing is asked of Puter: the key must be valid, its limits are not spent.
        await gateway.admit(request, exchange, _named(body), spend=False)
        try:
            name = _model(body)
        except BadRequest as exc:
            raise _refusal(exc) from exc
        entry = (await catalogue()).find(name)
        if entry is None:
            raise _unknown(name, await catalogue())
        answer = {"model": entry.name, "created_at": created_at(time.time()), key: _empty(key)}
        answer.update(done=True, done_reason="load")
        return JSONResponse(answer, media_type=NDJSON if stream_wanted(body) else None)

    async def answer(request: Request, exchange: Exchange, body: Mapping[str, Any], key: str) -> Response:
        durations = Durations(started=exchange.started)
        # The key first: a caller without a valid one learns nothing about the body.
        await gateway.admit(request, exchange, _named(body))
        try:
            call = chat_call(body) if key == "message" else generate_call(body)
            stream = stream_wanted(body)
        except BadRequest as exc:
            raise _refusal(exc) from exc
        thinking = wants_thinking(body)
        if stream:
            lines = _Lines(call, durations, key=key, thinking=thinking)
            return gateway.stream(OLLAMA, exchange, call, encoder=lines, media_type=NDJSON)
        outcome = await gateway.whole(request, exchange, call)
        whole = whole_body(outcome, call, durations, key=key, thinking=thinking)
        headers = answer_headers(exchange)
        if usage_estimated(outcome):
            headers["X-Puter-Usage"] = "estimated"
        return JSONResponse(whole, headers=headers)

    async def chat(request: Request, exchange: Exchange) -> Response:
        body = await read_json(request)
        if not body.get("messages"):
            return await loaded(request, exchange, body, "message")
        return await answer(request, exchange, body, "message")

    async def generate(request: Request, exchange: Exchange) -> Response:
        body = await read_json(request)
        if not body.get("prompt") and not body.get("images"):
            return await loaded(request, exchange, body, "response")
        return await answer(request, exchange, body, "response")

    async def tags(request: Request, exchange: Exchange) -> Response:
        await gateway.admit(request, exchange, None, spend=False)
        return JSONResponse({"models": [entry.tag(since) for entry in (await catalogue()).entries]})

    async def show(request: Request, exchange: Exchange) -> Response:
        body = await read_json(request)
        await gateway.admit(request, exchange, None, spend=False)
        try:
            name = _model(body)
        except BadRequest as exc:
            raise _refusal(exc) from exc
        models = await catalogue()
        entry = models.find(name)
        if entry is None:
            raise _unknown(name, models)
        return JSONResponse(entry.show(since))

    async def running(request: Request, exchange: Exchange) -> Response:
        # Nothing is loaded in memory here: Puter runs the models.
        await gateway.admit(request, exchange, None, spend=False)
        return JSONResponse({"models": []})

    async def version(request: Request, exchange: Exchange) -> Response:
        return JSONResponse({"version": OLLAMA_VERSION})

    async def root(request: Request, exchange: Exchange) -> Response:
        return PlainTextResponse("Ollama is running")

    async def not_served(request: Request, exchange: Exchange) -> Response:
        endpoint: str = request.path_params["endpoint"]
        if endpoint in _METHODS:
            raise GatewayError(405, f"/api/{endpoint} takes {_METHODS[endpoint]}, not {request.method}")
        why = _NOT_SERVED.get(endpoint.split("/", 1)[0])
        if why is None or "/" in endpoint:
            # Recorded under one name: a path per request (a scanner's) would make a metric
            # series per path.
            exchange.path = "/api/{endpoint}"
        if why is not None:
            raise GatewayError(501, f"/api/{endpoint} is not served by puter-mcp's Ollama API: {why}")
        raise GatewayError(
            404,
            f"/api/{endpoint} is not an endpoint of Ollama's API here; served: /api/chat, "
            "/api/generate, /api/tags, /api/show, /api/ps, /api/version",
        )

    handlers = {
        "chat": chat,
        "generate": generate,
        "tags": tags,
        "show": show,
        "ps": running,
        "version": version,
    }
    table = [(f"/api/{name}", handlers[name], [method]) for name, method in _METHODS.items()]
    table += [
        ("/", root, ["GET"]),
        # Last: what the routes above do not take (another endpoint, or another method).
        ("/api/{endpoint:path}", not_served, ["GET", "POST", "PUT", "DELETE", "HEAD"]),
    ]
    return routes_for(gateway, OLLAMA, table)


def _named(body: Mapping[str, Any]) -> str | None:
    """The model a body names, as the catalogue knows it: what a key's model list is checked
    against (None when it names none; the body is refused for that afterwards)."""
    model = body.get("model", body.get("name"))
    return catalogue_name(model) if isinstance(model, str) and model.strip() else None


def _empty(key: str) -> Any:
    return {"role": "assistant", "content": ""} if key == "message" else ""


def _unknown(name: str, models: Catalogue) -> GatewayError:
    closest = models.closest(name)
    hint = f"; did you mean {', '.join(closest)}?" if closest else "; GET /api/tags lists them"
    return GatewayError(404, f"model {name!r} not found{hint}", param="model", code="model_not_found")
