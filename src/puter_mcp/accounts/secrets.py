"""Keeping Puter tokens out of sight: short masks for display, redaction for logs and errors.

A Puter token is a full-access credential, so it must never reach a log line, a tool result or
an error message. Code that shows an account to a person uses `mask_token` (enough of the ends
to tell two tokens apart, never enough to use one); code that turns foreign text into a
message (an exception, a response body, a URL) passes it through `redact` first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import SecretStr

__all__ = ["FULL_MASK", "MASK_GAP", "mask_token", "redact"]

MASK_GAP = "…"
"""What stands for the hidden middle of a masked token."""

FULL_MASK = "****"
"""The mask of a token too short to show any of it."""

_SHOWN_EACH_END = 4
# Showing 8 characters of a short token would reveal a large share of it; below this length
# nothing is shown. Real Puter tokens are JWTs of well over a hundred characters.
_MIN_LENGTH_TO_SHOW_ENDS = 24

# Tokens are JWTs: three base64url segments, the first always starting with `eyJ` (`{"`).
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
# A bearer credential in a header or a logged request, whatever its shape. The length floor
# keeps an already masked token (`eyJh…k9Qz`) from being masked again into `****…k9Qz`.
_BEARER = re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/-]{16,}=*)")
# The gateway's API keys (`pmk-` and 43 url-safe characters), wherever a client put one.
_GATEWAY_KEY = re.compile(r"\bpmk-[A-Za-z0-9_-]{20,}")


def _plain(token: str | SecretStr) -> str:
    return token.get_secret_value() if isinstance(token, SecretStr) else token


def mask_token(token: str | SecretStr) -> str:
    """A display form of a token: ``eyJh…k9Qz`` (first 4 and last 4 characters).

    Never more than 8 characters of the token appear, and none at all when the token is
    shorter than 24 characters (``****``), so a mask can be shown anywhere.
    """
    value = _plain(token)
    if len(value) < _MIN_LENGTH_TO_SHOW_ENDS:
        return FULL_MASK
    return f"{value[:_SHOWN_EACH_END]}{MASK_GAP}{value[-_SHOWN_EACH_END:]}"


def redact(text: str, tokens: Iterable[str | SecretStr] = ()) -> str:
    """Return `text` with every known token, JWT, gateway API key and bearer credential
    replaced by its mask.

    Known tokens are replaced first, longest first, so that a token containing another is
    masked whole. JWT-shaped strings and ``Bearer <credential>`` values are masked too, so a
    token the caller did not know about (one just received, say) is still caught.
    """
    known = sorted({_plain(t) for t in tokens} - {""}, key=len, reverse=True)
    for token in known:
        if token in text:
            text = text.replace(token, mask_token(token))
    text = _JWT.sub(lambda m: mask_token(m.group(0)), text)
    text = _GATEWAY_KEY.sub(lambda m: mask_token(m.group(0)), text)
    return _BEARER.sub(lambda m: m.group(1) + mask_token(m.group(2)), text)
