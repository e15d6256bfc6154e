"""Tokens that look like Puter's JWTs, and the three ways Puter refuses one.

Puter tells apart a missing token (`token_missing`), something that is not a current-format
token at all (`reauth_required`) and a well-formed token that fails verification
(`token_auth_failed`); clients must map all three to "sign in again", so the emulator
reproduces the distinction. The tokens are random (from the state's seeded generator, so
tests can be deterministic) and carry no secret: the emulator only looks them up.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
from collections.abc import Mapping
from typing import Any

__all__ = ["bearer_token", "is_current_format", "make_token"]

_HEADER = {"alg": "HS256", "typ": "JWT"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def make_token(rng: random.Random, *, user_uuid: str, issued_at: int, kind: str = "session") -> str:
    """A JWT-shaped token: `<header>.<payload>.<signature>`, each base64url without padding."""
    payload = {
        "type": kind,
        "version": "0.0.0",
        "uuid": f"{rng.getrandbits(128):032x}",
        "user_uid": user_uuid,
        "iat": issued_at,
    }
    header = _b64url(json.dumps(_HEADER, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    signature = _b64url(rng.getrandbits(256).to_bytes(32, "big"))
    return f"{header}.{body}.{signature}"


def is_current_format(token: str) -> bool:
    """Whether `token` looks like a current Puter token (a JWT whose header names an `alg`)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return False
    try:
        header = json.loads(_b64url_decode(parts[0]))
        _b64url_decode(parts[1])
        _b64url_decode(parts[2])
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and "alg" in header


def bearer_token(headers: Mapping[str, str], body: Any = None) -> str | None:
    """The token a request carries: `Authorization: Bearer`, `x-api-key`, or `auth_token` in the body.

    Puter accepts all three (puter.js sends `auth_token` in the JSON body); an empty value
    counts as no token.
    """
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = headers.get("x-api-key", "").strip()
    if api_key:
        return api_key
    if isinstance(body, dict):
        candidate = body.get("auth_token")
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None
