"""What each scripted `Fault` looks like on the wire.

Bodies follow docs/puter-protocol.md ("Errors"): the v2 envelope with the real status for every row of
the error table, the v1 forms of older deployments, the usage-limited answer, the `abuse`
stand-in, broken streams and broken transports. The request being faulted is described by a
`FaultedCall`, which also knows how to build the answer the request would normally have had
(stalls deliver it late; stream faults break it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from starlette.responses import Response
from starlette.types import ASGIApp

from .answers import Answer, stream_lines
from .auth import EMAIL_UNCONFIRMED_MESSAGE
from .catalogue import ModelSpec
from .faults import Fault, FaultRule
from .responses import (
    JSON_CONTENT_TYPE,
    Delayed,
    DropConnection,
    json_response,
    ndjson,
    ndjson_response,
    v2_error,
)

__all__ = ["FaultedCall", "render_fault"]

USAGE_LIMITED_MODEL = "usage-limited-chat"
VENDOR_429 = (
    '429 {"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed '
    'the rate limit for your organization. Please try again later."}}'
)
HTML_502_PAGE = """<!DOCTYPE html>
<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>cloudflare</center>
</body>
</html>
"""


class FaultedCall(Protocol):
    """The `complete` request a fault replaces, as the fault needs to see it."""

    @property
    def asked_model(self) -> str: ...

    @property
    def model(self) -> ModelSpec | None: ...

    @property
    def stream(self) -> bool: ...

    def normal_reply(self, *, stall_after: int | None = None, stall_seconds: float = 0.0) -> ASGIApp:
        """The answer this request gets without a fault (charged as usual)."""
        ...

    def uncharged_answer(self, model: ModelSpec | None = None, text: str | None = None) -> Answer:
        """An answer from `model` (default: the one asked, else `fake`), not charged."""
        ...

    def answer_reply(self, answer: Answer) -> ASGIApp:
        """`answer` as JSON or as a stream, whichever the request asked for."""
        ...

    def stream_delay(self) -> float: ...

    def find_model(self, name: str) -> ModelSpec | None: ...


@dataclass(frozen=True)
class _V2:
    status: int
    code: str
    message: str


def _v2_table(call: FaultedCall) -> dict[Fault, _V2]:
    model = call.asked_model
    return {
        Fault.TOKEN_MISSING: _V2(401, "token_missing", "Missing authentication token."),
        Fault.REAUTH_REQUIRED: _V2(
            401, "reauth_required", "This session is no longer valid. Please sign in again."
        ),
        Fault.TOKEN_AUTH_FAILED: _V2(401, "token_auth_failed", "Authentication failed."),
        Fault.EMAIL_CONFIRMATION_REQUIRED: _V2(403, "email_confirmation_required", EMAIL_UNCONFIRMED_MESSAGE),
        Fault.CLIENT_BAD_JSON: _V2(400, "client_bad_json", "The request body is not valid JSON."),
        Fault.BAD_REQUEST: _V2(400, "bad_request", "Missing required field: method."),
        Fault.NOT_FOUND: _V2(404, "not_found", "Interface not found: puter-chat-completion."),
        Fault.INSUFFICIENT_FUNDS: _V2(402, "insufficient_funds", "No usage left for request."),
        Fault.FORBIDDEN: _V2(403, "forbidden", "Permission denied."),
        Fault.PERMISSION_DENIED: _V2(
            403, "permission_denied", f"Model {model} is only available to subscribers."
        ),
        Fault.TOO_MANY_REQUESTS: _V2(429, "too_many_requests", "Too many requests."),
        Fault.TOO_MANY_CONCURRENT: _V2(429, "too_many_requests", "Too many concurrent requests."),
        Fault.UPSTREAM_RATE_LIMITED: _V2(
            429, "upstream_rate_limited", f"Every provider of {model} is rate-limited. Try again later."
        ),
        Fault.UPSTREAM_PROVIDER_UNAVAILABLE: _V2(
            400, "upstream_provider_unavailable", f"The providers of {model} are unavailable."
        ),
        Fault.UPSTREAM_AUTH_FAILED: _V2(
            500, "upstream_auth_failed", "The upstream provider rejected our credentials."
        ),
        Fault.UPSTREAM_BAD_REQUEST: _V2(
            400, "upstream_bad_request", "The upstream provider rejected the request."
        ),
        Fault.UPSTREAM_FAILED: _V2(400, "upstream_failed", f"Every provider of {model} failed."),
        Fault.MODEL_NOT_FOUND: _V2(400, "bad_request", f"Model not found: {model}"),
        Fault.MODERATION_FLAGGED: _V2(400, "bad_request", "The request was flagged by moderation."),
        Fault.METHOD_NOT_FOUND: _V2(404, "not_found", "Method not found: complete."),
        Fault.INTERNAL_ERROR: _V2(500, "internal_error", "An internal error occurred."),
    }


def _v2_extra_fields(rule: FaultRule, call: FaultedCall) -> dict[str, Any]:
    if rule.fault is Fault.REAUTH_REQUIRED:
        return {"reason": rule.param("reason", "token_format")}
    if rule.fault is Fault.MODERATION_FLAGGED:
        return {"errorCode": "moderation_flagged"}
    if rule.fault is Fault.UPSTREAM_RATE_LIMITED:
        provider = call.model.provider if call.model else "unknown"
        return {
            "attempts": [
                {"provider": provider, "model": call.asked_model, "status": 429, "code": "rate_limited"}
            ]
        }
    return {}


def _v1_error(code: str, message: str, status: int, **fields: Any) -> dict[str, Any]:
    return {"$": "heyputer:api/APIError", "code": code, "message": message, "status": status, **fields}


def _usage_limited_body(call: FaultedCall) -> dict[str, Any]:
    text = "You have reached your AI usage limit for this account."
    message = {
        "id": "msg_usage_limited",
        "type": "message",
        "role": "assistant",
        "model": USAGE_LIMITED_MODEL,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    usage = {
        "input_tokens": 0,
        "ephemeral_5m_input_tokens": 0,
        "ephemeral_1h_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
        "thinking_tokens": 0,
        "usd_cents": 0,
    }
    return {
        "success": True,
        "service": {"name": "ai-chat"},
        "result": {"message": message, "usage": usage, "finish_reason": "stop", "via_ai_chat_service": True},
        "metadata": {
            "service_used": USAGE_LIMITED_MODEL,
            "providerUsed": USAGE_LIMITED_MODEL,
            "usage_limited": True,
        },
    }


def _stream_fault(rule: FaultRule, call: FaultedCall) -> ASGIApp:
    """The stream faults: all answer HTTP 200 NDJSON and break the stream in their own way."""
    if rule.fault is Fault.STALL_MID_STREAM:
        return call.normal_reply(
            stall_after=int(rule.param("after_lines", 1)), stall_seconds=float(rule.param("seconds", 30.0))
        )
    if rule.fault is Fault.STREAM_ERROR_ONLY:
        return ndjson_response(
            [ndjson({"type": "error", "message": rule.param("message", VENDOR_429)})], delay=call.stream_delay
        )
    lines = stream_lines(call.uncharged_answer())
    chunks = [ndjson(line) for line in lines]
    if rule.fault is Fault.STREAM_ERROR_AFTER_TEXT:
        texts = [ndjson(line) for line in lines if line["type"] == "text"][: int(rule.param("text_lines", 2))]
        error = ndjson({"type": "error", "message": rule.param("message", VENDOR_429)})
        return ndjson_response([*texts, error], delay=call.stream_delay)
    if rule.fault is Fault.STREAM_CUT_MID_LINE:
        keep = min(int(rule.param("after_lines", 2)), len(chunks) - 1)
        cut = chunks[keep][: max(1, len(chunks[keep]) // 2)]
        return ndjson_response([*chunks[:keep], cut], delay=call.stream_delay)
    # STREAM_NO_USAGE
    return ndjson_response(chunks[:-1], delay=call.stream_delay)


def render_fault(rule: FaultRule, call: FaultedCall) -> ASGIApp:
    """The answer `rule` gives instead of the normal one."""
    fault = rule.fault
    table = _v2_table(call)
    if fault in table:
        entry = table[fault]
        return v2_error(
            entry.status, entry.code, rule.param("message", entry.message), **_v2_extra_fields(rule, call)
        )
    if fault is Fault.V1_INSUFFICIENT_FUNDS:
        error = _v1_error(
            rule.param("code", "insufficient_funds"),
            rule.param("message", "Insufficient funds: no usage left for request."),
            int(rule.param("status", 402)),
            delegate=USAGE_LIMITED_MODEL,
        )
        return json_response({"success": False, "error": error})
    if fault is Fault.V1_DELEGATE_ERROR:
        message = rule.param(
            "message", f"Error 400 from delegate `{USAGE_LIMITED_MODEL}`: Permission denied."
        )
        return json_response(
            _v1_error("error_400_from_delegate", message, 400, delegate=USAGE_LIMITED_MODEL), 400
        )
    if fault is Fault.V1_MODEL_NOT_FOUND:
        message = rule.param("message", f"Field `model` is invalid. Model not found: {call.asked_model}")
        return json_response(_v1_error("field_invalid", message, 400, key="model", got=call.asked_model), 400)
    if fault is Fault.USAGE_LIMITED_ANSWER:
        return json_response(_usage_limited_body(call))
    if fault is Fault.ABUSE_STANDIN:
        return _abuse_standin(call)
    if fault is Fault.STALL_BEFORE_HEADERS:
        return Delayed(float(rule.param("seconds", 30.0)), call.normal_reply())
    if fault is Fault.INVALID_JSON:
        return Response(b'{"success":true,"service":{"name":"ai-chat"},"result":{"message":{"id":"msg_', 200,
                        media_type=JSON_CONTENT_TYPE)  # fmt: skip
    if fault is Fault.HTML_502:
        return Response(HTML_502_PAGE, 502, media_type="text/html")
    if fault is Fault.DROP_CONNECTION:
        return DropConnection()
    return _stream_fault(rule, call)


def _abuse_standin(call: FaultedCall) -> ASGIApp:
    """Puter answered a blocked prompt with its `abuse` test model instead of the one asked."""
    text = (
        "[abuse] This request was answered by Puter's abuse model instead of "
        f"{call.asked_model}: the prompt was flagged."
    )
    return call.answer_reply(call.uncharged_answer(call.find_model("abuse"), text))
