"""OpenAI's Chat Completions API: ``/v1/chat/completions``, ``/v1/models``, and ``/chat``.

Every route also answers without the ``/v1`` prefix (some clients are set up with a base URL
that lacks it). What is taken, ignored and refused is listed in docs/gateway-reference.md ("OpenAI").

The streamed answer is OpenAI's SSE: ``data: <chunk>`` lines, the role in the first delta,
each tool-call fragment with its ``index`` (and ``id``, ``type``, ``function.name`` in its
first), one last chunk with the finish reason, a usage chunk only when
``stream_options.include_usage`` asks, then exactly one ``data: [DONE]``. An answer that
breaks off after its content began ends with a ``data:`` line holding an ``error`` object, then
``[DONE]``: what was sent stays, nothing is replayed.
"""

from __future__ import annotations

import difflib
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from puter_mcp.core import (
    BadRequest,
    ChatCall,
    ChatEvent,
    ChatOutcome,
    Finished,
    ModelsQuery,
    ReasoningDelta,
    StreamFailed,
    TextDelta,
    ToolCallDelta,
)
from puter_mcp.gateway.estimate import estimate_call_tokens, estimate_tokens
from puter_mcp.gateway.exchange import Exchange
from puter_mcp.gateway.failures import GatewayError, from_backend_error
from puter_mcp.gateway.gate import OpenedAnswer
from puter_mcp.gateway.handling import Gateway, answer_headers, read_json, requested_model, routes_for

__all__ = ["OPENAI", "OpenAIApi", "chat_call", "routes"]

AUTO = "auto"

# OpenAI's error `type` for each category of refusal.
_ERROR_TYPE = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "overloaded": "server_error",
    "api_error": "server_error",
}


class OpenAIApi:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``."""

    name = "openai"

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        return {
            "error": {
                "message": error.message,
                "type": _ERROR_TYPE[error.category],
                "param": error.param,
                "code": error.code,
            }
        }

    def error_response(self, error: GatewayError) -> Response:
        return JSONResponse(self.error_body(error), status_code=error.status, headers=error.headers())


OPENAI = OpenAIApi()


# -- the request ---------------------------------------------------------------------------

_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A Chat Completions request, checked: the core's call and how to answer it."""

    call: ChatCall
    stream: bool
    include_usage: bool


def chat_call(body: dict[str, Any], *, default_model: str | None = None) -> ChatRequest:
    """The core's call for a Chat Completions body.

    Raises:
        GatewayError: 400 naming the parameter (OpenAI's ``messages[2].content`` form).
    """
    n = body.get("n", 1)
    if n not in (None, 1):
        raise GatewayError(400, f"only n=1 is supported (one answer per request), got n={n!r}", param="n")
    stream = _flag(body, "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise GatewayError(400, "`stream_options` must be an object", param="stream_options")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    effort = body.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or (effort.lower() not in _EFFORTS and effort.lower() != "none"):
            raise GatewayError(
                400,
                f"`reasoning_effort` must be minimal, low, medium or high, got {effort!r}",
                param="reasoning_effort",
            )
        effort = _EFFORTS.get(effort.lower())
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise GatewayError(400, "`messages` must be a non-empty list of messages", param="messages")
    data: dict[str, Any] = {
        "model": body.get("model") or default_model,
        "messages": [_turn(message, index) for index, message in enumerate(messages)],
        "temperature": body.get("temperature"),
        "max_tokens": max_tokens,
        "reasoning_effort": effort,
        "stop": body.get("stop"),
        "tools": [_tool(tool, index) for index, tool in enumerate(_list(body, "tools"))],
        "tool_choice": _tool_choice(body.get("tool_choice")),
        "stream": True,
    }
    if not data["tools"] and data["tool_choice"] == "none":
        data["tool_choice"] = None
    try:
        call = ChatCall.parse({key: value for key, value in data.items() if value is not None})
    except BadRequest as exc:
        raise GatewayError(400, exc.message, param=_openai_param(exc.argument)) from exc
    return ChatRequest(call=call, stream=stream, include_usage=bool(options.get("include_usage")))


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise GatewayError(400, f"`{name}` must be true or false, got {value!r}", param=name)
    return value


def _list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise GatewayError(400, f"`{name}` must be a list", param=name)
    return value


def _openai_param(argument: str | None) -> str | None:
    """``messages.2.content`` (the core's form) as ``messages[2].content`` (OpenAI's)."""
    if argument is None:
        return None
    return re.sub(r"\.(\d+)", r"[\1]", argument)


def _turn(message: Any, index: int) -> dict[str, Any]:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise GatewayError(400, f"`{where}` must be an object with a role", param=where)
    role = message.get("role")
    if role == "developer":
        role = "system"
    if role not in ("system", "user", "assistant", "tool"):
        raise GatewayError(
            400,
            f"`{where}.role` must be system, developer, user, assistant or tool, got {role!r}",
            param=f"{where}.role",
        )
    turn: dict[str, Any] = {"role": role, "content": _content(message.get("content"), f"{where}.content")}
    if role == "assistant":
        calls = message.get("tool_calls") or []
        if not isinstance(calls, list):
            raise GatewayError(400, f"`{where}.tool_calls` must be a list", param=f"{where}.tool_calls")
        turn["tool_calls"] = [_tool_call(call, f"{where}.tool_calls[{i}]") for i, call in enumerate(calls)]
    if role == "tool":
        turn["tool_call_id"] = message.get("tool_call_id")
    return turn


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise GatewayError(400, f"`{where}` must be a string or a list of parts", param=where)
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        here = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append({"type": "image", "url": url})
        elif kind in ("refusal",):
            parts.append({"type": "text", "text": part.get("refusal")})
        else:
            raise GatewayError(
                400,
                f"`{here}` has type {kind!r}; this gateway takes text and image_url parts",
                param=here,
            )
    return parts


def _tool_call(call: Any, where: str) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise GatewayError(400, f"`{where}` must be a function tool call", param=where)
    function = call["function"]
    return {
        "id": call.get("id"),
        "name": function.get("name"),
        "arguments": function.get("arguments") or "{}",
    }


def _tool(tool: Any, index: int) -> dict[str, Any]:
    where = f"tools[{index}]"
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
        raise GatewayError(
            400, f"`{where}` has type {kind!r}; only function tools are supported", param=where
        )
    function = tool.get("function")
    if not isinstance(function, dict):
        raise GatewayError(400, f"`{where}.function` must be an object", param=f"{where}.function")
    made: dict[str, Any] = {"name": function.get("name"), "description": function.get("description")}
    if function.get("parameters") is not None:
        made["parameters"] = function["parameters"]
    return {key: value for key, value in made.items() if value is not None}


def _tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"name": choice["function"].get("name")}
    raise GatewayError(
        400,
        "`tool_choice` must be auto, none, required or {type: function, function: {name}}",
        param="tool_choice",
    )


# -- the answer ----------------------------------------------------------------------------


def finish_reason(outcome: ChatOutcome) -> str:
    """OpenAI's finish reason for an outcome (Puter passes on the vendors' own words)."""
    reason = (outcome.finish_reason or "").lower()
    if outcome.tool_calls or reason in ("tool_calls", "tool_use", "function_call"):
        return "tool_calls"
    if reason in ("length", "max_tokens", "max_output_tokens"):
        return "length"
    if reason == "content_filter":
        return "content_filter"
    return "stop"


def usage_of(outcome: ChatOutcome, call: ChatCall) -> tuple[dict[str, int], bool]:
    """OpenAI's usage object, and whether it is an estimate (Puter reported no counts)."""
    prompt, completion = outcome.usage.input_tokens, outcome.usage.output_tokens
    estimated = prompt == 0 and completion == 0
    if estimated:
        prompt = estimate_call_tokens(call)
        arguments = "".join(tool_call.arguments_json for tool_call in outcome.tool_calls)
        completion = estimate_tokens(outcome.text + (outcome.reasoning or "") + arguments)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }, estimated


def routing_note(outcome: ChatOutcome) -> dict[str, Any]:
    """What the gateway adds to OpenAI's shape: how the answer was routed (clients ignore it)."""
    note: dict[str, Any] = {"model_requested": outcome.model_requested}
    if outcome.chain:
        note["chain"] = outcome.chain
    if outcome.auto:
        note["auto"] = outcome.auto.model_dump()
    if outcome.fallback:
        note["fallback"] = outcome.fallback
    if outcome.sandbox:
        note["sandbox"] = True
    return note


def completion(outcome: ChatOutcome, call: ChatCall, *, created: int, id: str) -> tuple[dict[str, Any], bool]:
    message: dict[str, Any] = {"role": "assistant", "content": outcome.text or None}
    if outcome.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
            for c in outcome.tool_calls
        ]
    if outcome.reasoning:
        # Clients read one or the other (DeepSeek's name, and OpenRouter's).
        message["reasoning_content"] = message["reasoning"] = outcome.reasoning
    usage, estimated = usage_of(outcome, call)
    body = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": outcome.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason(outcome), "logprobs": None}
        ],
        "usage": usage,
        "system_fingerprint": None,
        "puter": routing_note(outcome),
    }
    return body, estimated


_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
"""Compact JSON, made once: ``json.dumps`` with any option builds a new encoder per call."""


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: " + _to_json(data).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


class ChunkEncoder:
    """The SSE body of one streamed answer (see the module docstring)."""

    def __init__(self, call: ChatCall, *, include_usage: bool, id: str, created: int) -> None:
        self.call, self.include_usage = call, include_usage
        self.id, self.created = id, created
        self.started_calls: set[int] = set()
        self.answering = ""
        """The model that answers (the answer's `model` in every chunk)."""
        self._model = ""
        self._head = self._tail = b""

    def chunk(self, model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
        """One ``chat.completion.chunk`` event. Every chunk of a stream differs only in its
        delta and finish reason: the rest is encoded once per model (once per stream)."""
        if model != self._model:
            self._model = model
            head = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": model}
            self._head = b"data: " + _to_json(head)[:-1].encode() + b',"system_fingerprint":null,'
            self._head += b'"choices":[{"index":0,"delta":'
            self._tail = b',"logprobs":null}]' + (b',"usage":null' if self.include_usage else b"") + b"}\n\n"
        finish_json = b"null" if finish is None else _to_json(finish).encode()
        return self._head + _to_json(delta).encode() + b',"finish_reason":' + finish_json + self._tail

    # An `EventEncoder` (puter_mcp.gateway.gate): each event is encoded as the core hands it
    # over, with no task between the router and the client.

    def opening(self, opened: OpenedAnswer) -> bytes:
        self.answering = opened.model
        return self.chunk(self.answering, {"role": "assistant", "content": ""})

    def encode(self, event: ChatEvent) -> bytes:
        model = self.answering
        if isinstance(event, TextDelta):
            return self.chunk(model, {"content": event.text})
        if isinstance(event, ReasoningDelta):
            return self.chunk(model, {"reasoning_content": event.text, "reasoning": event.text})
        if isinstance(event, ToolCallDelta):
            return self.chunk(model, {"tool_calls": [self._tool_delta(event)]})
        if isinstance(event, Finished):
            outcome = event.outcome
            last = self.chunk(model, {}, finish_reason(outcome))
            if self.include_usage:
                usage, _estimated = usage_of(outcome, self.call)
                last += _sse(
                    {
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": model,
                        "system_fingerprint": None,
                        "choices": [],
                        "usage": usage,
                    }
                )
            return last + DONE
        if isinstance(event, StreamFailed):
            error = from_backend_error(event.error, now=time.time())
            return _sse(OPENAI.error_body(error)) + DONE
        return b""  # `UsageUpdate`: the whole usage comes with `Finished`

    def _tool_delta(self, event: ToolCallDelta) -> dict[str, Any]:
        delta: dict[str, Any] = {"index": event.index}
        function: dict[str, Any] = {"arguments": event.arguments}
        if event.index not in self.started_calls:
            self.started_calls.add(event.index)
            delta["id"] = event.id or f"call_{secrets.token_hex(12)}"
            delta["type"] = "function"
            function["name"] = event.name or ""
        delta["function"] = function
        return delta


# -- routes ------------------------------------------------------------------------------


def routes(gateway: Gateway) -> list[BaseRoute]:
    async def chat_completions(request: Request, exchange: Exchange) -> Response:
        return await _answer(gateway, request, exchange, await read_json(request), forced_model=None)

    async def auto_chat(request: Request, exchange: Exchange) -> Response:
        # The auto-routing endpoint of the proxy this gateway replaces: `auto` picks the chain.
        return await _answer(gateway, request, exchange, await read_json(request), forced_model=AUTO)

    async def list_models(request: Request, exchange: Exchange) -> Response:
        await gateway.admit(request, exchange, None, spend=False)
        entries = await model_entries(gateway)
        return JSONResponse({"object": "list", "data": [_public(entry) for entry in entries]})

    async def one_model(request: Request, exchange: Exchange) -> Response:
        await gateway.admit(request, exchange, None, spend=False)
        wanted: str = request.path_params["model"]
        entries = await model_entries(gateway)
        for entry in entries:
            if entry["id"].casefold() == wanted.casefold() or wanted.casefold() in entry.get("_names", ()):
                return JSONResponse(_public(entry))
        closest = difflib.get_close_matches(wanted, [entry["id"] for entry in entries], n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(closest)}?" if closest else "; GET /v1/models lists them"
        raise GatewayError(
            404, f"the model {wanted!r} does not exist{hint}", param="model", code="model_not_found"
        )

    table = [
        ("/v1/chat/completions", chat_completions, ["POST"]),
        ("/chat/completions", chat_completions, ["POST"]),
        ("/chat", auto_chat, ["POST"]),
        ("/v1/models", list_models, ["GET"]),
        ("/models", list_models, ["GET"]),
        ("/v1/models/{model:path}", one_model, ["GET"]),
        ("/models/{model:path}", one_model, ["GET"]),
    ]
    return routes_for(gateway, OPENAI, table)


async def _answer(
    gateway: Gateway, request: Request, exchange: Exchange, body: dict[str, Any], *, forced_model: str | None
) -> Response:
    if forced_model is not None:
        body = {**body, "model": forced_model}
    default = gateway.backend.settings.default_model
    await gateway.admit(request, exchange, requested_model(body, default))
    parsed = chat_call(body, default_model=default)
    call = parsed.call
    id, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
    if parsed.stream:
        encoder = ChunkEncoder(call, include_usage=parsed.include_usage, id=id, created=created)
        return gateway.stream(OPENAI, exchange, call, encoder=encoder, media_type="text/event-stream")
    outcome = await gateway.whole(request, exchange, call)
    body, estimated = completion(outcome, call, created=created, id=id)
    headers = answer_headers(exchange)
    if estimated:
        headers["X-Puter-Usage"] = "estimated"
    return JSONResponse(body, headers=headers)


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if not key.startswith("_")}


async def model_entries(gateway: Gateway) -> list[dict[str, Any]]:
    """Every catalogue model, then `auto` and the virtual models, as OpenAI model objects
    (with ``_names``, the other names a model answers to, for lookups)."""
    backend = gateway.backend
    page = await backend.list_models(ModelsQuery(limit=100_000))
    virtual = await backend.list_models(ModelsQuery(virtual=True))
    created = int(time.time())
    entries: list[dict[str, Any]] = [
        {
            "id": model.id,
            "object": "model",
            "created": created,
            "owned_by": model.provider,
            "_names": tuple(alias.casefold() for alias in model.aliases),
        }
        for model in page.models
    ]
    entries.append({"id": AUTO, "object": "model", "created": created, "owned_by": "puter-mcp"})
    entries.extend(
        {"id": chain.name, "object": "model", "created": created, "owned_by": "puter-mcp"}
        for chain in virtual.virtual_models
    )
    return entries
