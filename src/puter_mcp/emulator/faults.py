"""Scripted faults: every way Puter can fail, as a catalogue and the rules that apply them.

A test (or `/__emulator/faults`) adds a `FaultRule`; the next matching `/drivers/call`
`complete` request gets the fault *instead of* its normal answer. The members cover every row
of the error table in docs/puter-protocol.md in the v2 envelope, the older v1 and usage-limited forms, the
stand-in answer of the `abuse` model, and the transport-level failures (stalls, truncated
streams, garbage bodies, dropped connections) a client must survive.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STREAM_ONLY_FAULTS", "Fault", "FaultRule"]


class Fault(enum.StrEnum):
    """What a rule makes the emulator answer. Values are the names `/__emulator/faults` takes.

    Parameters (`**params` of `EmulatorState.add_fault`) are noted per member; every error
    fault also takes `message` to override its text.
    """

    # --- v2 envelope: real status, body {"error", "message", "code", ...} ---------------
    TOKEN_MISSING = "token_missing"  # noqa: S105 (a fault name, not a secret)
    """401 `token_missing`."""
    REAUTH_REQUIRED = "reauth_required"
    """401 `reauth_required` with `reason` (param `reason`: `token_format` by default,
    `session_revoked` for a session signed out elsewhere)."""
    EMAIL_CONFIRMATION_REQUIRED = "email_confirmation_required"
    """403 `email_confirmation_required`: the account's e-mail address is not confirmed."""
    TOKEN_AUTH_FAILED = "token_auth_failed"  # noqa: S105 (a fault name, not a secret)
    """401 `token_auth_failed`."""
    CLIENT_BAD_JSON = "client_bad_json"
    """400 `client_bad_json`."""
    BAD_REQUEST = "bad_request"
    """400 `bad_request` (default message: a missing `method`)."""
    NOT_FOUND = "not_found"
    """404 `not_found`: unknown interface or driver."""
    INSUFFICIENT_FUNDS = "insufficient_funds"
    """402 `insufficient_funds` with header `X-Needs-Upgrade: true`."""
    FORBIDDEN = "forbidden"
    """403 `forbidden`: permission denied for the driver."""
    PERMISSION_DENIED = "permission_denied"
    """403 `permission_denied`: subscriber-only model."""
    TOO_MANY_REQUESTS = "too_many_requests"
    """429 `too_many_requests`, "Too many requests." (the 10 s window)."""
    TOO_MANY_CONCURRENT = "too_many_concurrent"
    """429 `too_many_requests`, "Too many concurrent requests." (the in-flight cap)."""
    UPSTREAM_RATE_LIMITED = "upstream_rate_limited"
    """429 `upstream_rate_limited` with `attempts: [...]`."""
    UPSTREAM_PROVIDER_UNAVAILABLE = "upstream_provider_unavailable"
    """400 (sic) `upstream_provider_unavailable`."""
    UPSTREAM_AUTH_FAILED = "upstream_auth_failed"
    """500 `upstream_auth_failed`."""
    UPSTREAM_BAD_REQUEST = "upstream_bad_request"
    """400 `upstream_bad_request`."""
    UPSTREAM_FAILED = "upstream_failed"
    """400 `upstream_failed` (mixed upstream failures)."""
    MODEL_NOT_FOUND = "model_not_found"
    """400 `bad_request`, "Model not found: <asked>"."""
    MODERATION_FLAGGED = "moderation_flagged"
    """400 `bad_request` with `errorCode: "moderation_flagged"`."""
    METHOD_NOT_FOUND = "method_not_found"
    """404 `not_found`: unknown driver method."""
    INTERNAL_ERROR = "internal_error"
    """500 `internal_error`."""

    # --- older deployments ------------------------------------------------------------
    V1_INSUFFICIENT_FUNDS = "v1_insufficient_funds"
    """HTTP 200 `{"success": false, "error": {"code": "insufficient_funds", "status": 402,
    "delegate": "usage-limited-chat", "$": "heyputer:api/APIError", ...}}` (params `code`,
    `status` to send another v1 error in the same envelope)."""
    V1_DELEGATE_ERROR = "v1_delegate_error"
    """400 `error_400_from_delegate` naming `usage-limited-chat` ("Permission denied.")."""
    V1_MODEL_NOT_FOUND = "v1_model_not_found"
    """400 `field_invalid` for the `model` field ("Model not found: <asked>")."""
    USAGE_LIMITED_ANSWER = "usage_limited_answer"
    """HTTP 200 answer from model `usage-limited-chat` with `metadata.usage_limited: true`
    (always JSON, even for a streaming request, as old deployments did)."""
    ABUSE_STANDIN = "abuse_standin"
    """A normal answer, but from Puter's `abuse` test model instead of the one asked."""

    # --- streams (only streaming requests match these rules) --------------------------
    STREAM_ERROR_AFTER_TEXT = "stream_error_after_text"
    """HTTP 200 NDJSON: `text_lines` (default 2) text lines, then `{"type": "error", "message":
    ...}` (param `message`, default a vendor 429), no usage line."""
    STREAM_ERROR_ONLY = "stream_error_only"
    """HTTP 200 NDJSON with a single `error` line and nothing else (Claude's way of reporting
    a vendor failure after opening the stream); param `message`."""
    STALL_MID_STREAM = "stall_mid_stream"
    """The normal stream, silent for `seconds` (default 30) after `after_lines` (default 1) lines."""
    STREAM_CUT_MID_LINE = "stream_cut_mid_line"
    """The normal stream, ended cleanly at the HTTP level in the middle of a line after
    `after_lines` (default 2) complete lines."""
    STREAM_NO_USAGE = "stream_no_usage"
    """The normal stream without its final usage line."""

    # --- transport --------------------------------------------------------------------
    STALL_BEFORE_HEADERS = "stall_before_headers"
    """Nothing for `seconds` (default 30), then the normal answer (streaming or not)."""
    INVALID_JSON = "invalid_json"
    """HTTP 200 `application/json` whose body is cut short (not JSON)."""
    HTML_502 = "html_502"
    """HTTP 502 with a proxy's HTML error page."""
    DROP_CONNECTION = "drop_connection"
    """The socket is closed without any HTTP answer."""


STREAM_ONLY_FAULTS: frozenset[Fault] = frozenset(
    {
        Fault.STREAM_ERROR_AFTER_TEXT,
        Fault.STREAM_ERROR_ONLY,
        Fault.STALL_MID_STREAM,
        Fault.STREAM_CUT_MID_LINE,
        Fault.STREAM_NO_USAGE,
    }
)
"""Faults that only make sense in a stream: a non-streaming request skips (and does not
consume) a rule carrying one."""

_rule_ids = itertools.count(1)


@dataclass
class FaultRule:
    """Apply `fault` to the next `times` matching requests (`times=None`: forever).

    `model` matches when it designates the same catalogue model as the request's (any of its
    names, any case), or, for names outside the catalogue, the same string ignoring case.
    `account` is a username. `None` matches anything.
    """

    fault: Fault
    model: str | None = None
    account: str | None = None
    times: int | None = 1
    params: dict[str, Any] = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_rule_ids))
    hits: int = 0
    """How many requests this rule has answered so far."""

    def __post_init__(self) -> None:
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1, or None for a rule that never runs out")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def matches(self, *, model_keys: frozenset[str], username: str, stream: bool) -> bool:
        """Whether this rule applies; `model_keys` are the request model's names, lower-cased."""
        if self.exhausted:
            return False
        if self.fault in STREAM_ONLY_FAULTS and not stream:
            return False
        if self.account is not None and self.account != username:
            return False
        return self.model is None or self.model.strip().lower() in model_keys

    def param(self, name: str, default: Any) -> Any:
        return self.params.get(name, default)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "fault": self.fault.value,
            "model": self.model,
            "account": self.account,
            "times": self.times,
            "hits": self.hits,
            "params": self.params,
        }
