"""Puter's failures, as one typed exception carrying its *failure kind*.

Every way a call to Puter can go wrong (an HTTP error in either envelope, a usage-limited
answer disguised as a success, a mid-stream ``error`` line, a truncated stream, a timeout)
ends up as a `PuterError` whose `kind` tells the router what to do next. The kind is
decided here, from the status, Puter's ``code`` and the body, never later from the text
of an exception: that is the only place where the whole response is still at hand.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "SESSION_REVOKED_MESSAGE",
    "FailureKind",
    "PuterError",
    "account_state",
    "classify",
    "classify_stream_error",
    "credit_advice",
    "site_of",
]


class FailureKind(enum.StrEnum):
    """What went wrong, in the terms the router acts on (docs/architecture.md, "Failure kinds")."""

    RATE_LIMITED = "rate_limited"
    """Puter throttled this account (requests per 10 s or in flight): try another account."""
    OUT_OF_CREDITS = "out_of_credits"
    """The account has no allowance left, on every model: try another account."""
    MODEL_FORBIDDEN = "model_forbidden"
    """This model is for paying subscribers; this account may not use it."""
    MODEL_DOWN = "model_down"
    """Every provider behind the model failed or is throttled: try another model."""
    MODEL_UNKNOWN = "model_unknown"
    """Puter does not know the model name."""
    AUTH = "auth"
    """The token is missing, expired or revoked: the account must sign in again."""
    EMAIL_UNCONFIRMED = "email_unconfirmed"
    """Puter refuses the account until its e-mail address is confirmed (403
    ``email_confirmation_required``): signing in again does not help."""
    BAD_REQUEST = "bad_request"
    """The request itself is wrong (or moderated): retrying elsewhere will not help."""
    TRANSPORT = "transport"
    """No usable answer arrived: connection failure, timeout, stall, truncated or garbled body."""


class PuterError(Exception):
    """A call to Puter failed.

    Attributes:
        kind: the `FailureKind` the router acts on.
        message: a sentence a person can read (Puter's own message when it gave one).
        status: the HTTP status of the answer, if one arrived (a v1 error keeps the status
            it names inside its body, e.g. 402 for ``insufficient_funds``).
        code: Puter's machine-readable ``code``, if any.
        partial_text: text streamed before the failure, so that nothing is lost.
        after_output: content of this answer had already been passed on to the caller when it
            failed (set by whoever passed it on); such an answer is not replayed elsewhere
            unless the caller can take back what it showed.
    """

    after_output: bool = False

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.code = code
        self.partial_text = partial_text

    def __repr__(self) -> str:
        return (
            f"PuterError(kind={self.kind.value!r}, status={self.status!r}, "
            f"code={self.code!r}, message={self.message!r})"
        )


# Codes that mean the same thing whatever the status says.
_CODE_KINDS: Mapping[str, FailureKind] = {
    "insufficient_funds": FailureKind.OUT_OF_CREDITS,
    "too_many_requests": FailureKind.RATE_LIMITED,
    "upstream_rate_limited": FailureKind.MODEL_DOWN,
    "upstream_provider_unavailable": FailureKind.MODEL_DOWN,
    "upstream_failed": FailureKind.MODEL_DOWN,
    "upstream_auth_failed": FailureKind.MODEL_DOWN,
    "permission_denied": FailureKind.MODEL_FORBIDDEN,
    "forbidden": FailureKind.AUTH,
    "token_missing": FailureKind.AUTH,
    "reauth_required": FailureKind.AUTH,
    "token_auth_failed": FailureKind.AUTH,
    "email_confirmation_required": FailureKind.EMAIL_UNCONFIRMED,
    "upstream_bad_request": FailureKind.BAD_REQUEST,
    "client_bad_json": FailureKind.BAD_REQUEST,
}

_USAGE_LIMITED = "usage-limited-chat"
_SESSION_REVOKED = "session_revoked"
SESSION_REVOKED_MESSAGE = "this session was signed out elsewhere; sign in again"
_MODEL_NOT_FOUND = re.compile(r"model not found", re.IGNORECASE)


def _error_fields(body: Any) -> tuple[str | None, str | None, Mapping[str, Any]]:
    """Pull (code, message, error object) out of either envelope.

    v2 puts ``code`` and ``message`` at the top level; v1 nests them under ``error`` (an
    object) and answers HTTP 200 with ``success: false``.
    """
    if not isinstance(body, Mapping):
        return None, None, {}
    error = body.get("error")
    if isinstance(error, Mapping):
        code = error.get("code")
        message = error.get("message")
        return (
            code if isinstance(code, str) else None,
            message if isinstance(message, str) else None,
            error,
        )
    code = body.get("code")
    message = body.get("message")
    if not isinstance(message, str):
        message = error if isinstance(error, str) else None
    return (code if isinstance(code, str) else None), message, body


def classify(status: int, body: Any) -> tuple[FailureKind, str | None, str]:
    """Decide the failure kind of an error answer.

    Args:
        status: the HTTP status (200 for a v1 ``success: false`` envelope).
        body: the decoded JSON body, or anything else (an HTML page is passed as `None`).

    Returns:
        ``(kind, code, message)``; the message is Puter's own when it gave one.
    """
    code, message, fields = _error_fields(body)
    if isinstance(fields.get("status"), int) and status == 200:
        # v1 keeps the real status inside the body of a 200.
        status = fields["status"]
    text = message or ""
    delegate = fields.get("delegate")
    if delegate == _USAGE_LIMITED or _USAGE_LIMITED in text:
        return FailureKind.OUT_OF_CREDITS, code, message or "No usage left for request."
    if code == "reauth_required" and fields.get("reason") == _SESSION_REVOKED:
        return FailureKind.AUTH, code, SESSION_REVOKED_MESSAGE
    if code is not None and code in _CODE_KINDS:
        return _CODE_KINDS[code], code, message or code
    if code == "field_invalid" and fields.get("key") == "model":
        # v1 named an unknown model this way: 'Field "model" is invalid ...'.
        return FailureKind.MODEL_UNKNOWN, code, message or "Model not found."
    if code in ("bad_request", "field_invalid"):
        if fields.get("errorCode") == "moderation_flagged":
            return FailureKind.BAD_REQUEST, code, message or "The request was refused by moderation."
        if _MODEL_NOT_FOUND.search(text):
            return FailureKind.MODEL_UNKNOWN, code, text
        return FailureKind.BAD_REQUEST, code, message or "Puter rejected the request."
    if _MODEL_NOT_FOUND.search(text):
        return FailureKind.MODEL_UNKNOWN, code, text
    # No code we know: fall back on the status.
    if status == 401:
        return FailureKind.AUTH, code, message or "Puter did not accept the token."
    if status == 402:
        return FailureKind.OUT_OF_CREDITS, code, message or "No usage left for request."
    if status == 403:
        return FailureKind.AUTH, code, message or "Puter refused access."
    if status == 429:
        return FailureKind.RATE_LIMITED, code, message or "Too many requests."
    if status >= 500:
        if body is None:
            return FailureKind.TRANSPORT, code, f"Puter answered HTTP {status} with a page that is not JSON."
        return FailureKind.MODEL_DOWN, code, message or f"Puter answered HTTP {status}."
    if status in (400, 404, 413, 422):
        return FailureKind.BAD_REQUEST, code, message or f"Puter answered HTTP {status}."
    return FailureKind.TRANSPORT, code, message or f"Unexpected answer from Puter (HTTP {status})."


def site_of(origin: str) -> str:
    """How to name a Puter origin to a person: its host (``puter.com``), or the origin itself."""
    return urlsplit(origin).netloc or origin


def credit_advice(gui_origin: str) -> str:
    """Where more AI credit comes from: puter.com sells it; a self-hosted Puter's allowances
    are set by whoever runs it."""
    site = site_of(gui_origin)
    if site == "puter.com" or site.endswith(".puter.com"):
        return "add credit at puter.com"
    return f"ask whoever runs {site} to raise the account's allowance"


def account_state(kind: FailureKind, gui_origin: str) -> tuple[str, str]:
    """The state of an account that Puter refuses for `kind`, and what the user can do about it.

    The one wording every place that shows accounts uses (``status``, ``accounts``,
    ``puter-account``, ``doctor``, a failed call), so they never disagree. It names no command:
    signing in is done differently in each front end, which says how next to it.
    """
    site = site_of(gui_origin)
    if kind is FailureKind.AUTH:
        return "sign-in-again", "Puter refuses its token: sign the account in again"
    if kind is FailureKind.EMAIL_UNCONFIRMED:
        return (
            "confirm-email",
            f"Puter refuses its calls until its e-mail address is confirmed: confirm it at {site} "
            "(the link in Puter's e-mail), signing in again does not help",
        )
    if kind is FailureKind.OUT_OF_CREDITS:
        return (
            "out-of-credits",
            f"no AI credit left: {credit_advice(gui_origin)}, wait for the monthly allowance, "
            "or sign in another account",
        )
    return "cooling", ""


_VENDOR_STATUS = re.compile(r"^\s*(\d{3})\b")


def classify_stream_error(message: str) -> FailureKind:
    """Decide the kind of an ``error`` line that arrived inside an NDJSON stream.

    Such a line carries no code. For Claude models Puter opens the stream before calling the
    vendor, so a vendor failure arrives here with the vendor's status in front ("429 {...}",
    "503 ..."): that is the model failing, as it would have been reported before the stream.
    Anything else is treated as a broken transport.
    """
    match = _VENDOR_STATUS.match(message)
    if match:
        status = int(match.group(1))
        if status == 429 or status >= 500:
            return FailureKind.MODEL_DOWN
        if status == 402:
            return FailureKind.OUT_OF_CREDITS
        if status in (401, 403):
            return FailureKind.MODEL_DOWN  # the vendor's credentials, not the user's
        if status == 400:
            return FailureKind.BAD_REQUEST
    return FailureKind.TRANSPORT
