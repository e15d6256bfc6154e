"""Keep tokens out of what we print: diffs, dry runs and the Claude Code command.

The files we write must hold the real token (the client sends it), but terminal output ends up
in scrollback, screenshots and bug reports. Masking keeps the first and last four characters of a long
token, enough to tell two tokens apart and nothing more, and hides a short one entirely.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from puter_mcp.accounts.secrets import mask_token

_BEARER = re.compile(r"(Bearer\s+)([A-Za-z0-9._~+/=…-]+)")
# `"PUTER_MCP_TOKEN": "..."`, `PUTER_MCP_TOKEN=...`, `PUTER_MCP_TOKEN: ...`: env-style names only.
_SENSITIVE_VAR = r"[A-Z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|PRIVATE_KEY|COOKIE|CREDENTIALS?)[A-Z0-9_]*"
_SENSITIVE_ASSIGNMENT = re.compile(r"(\"?" + _SENSITIVE_VAR + r"\"?\s*[:=]\s*\"?)([^\"\s,'$][^\"\s,']*)")


def mask(secret: str) -> str:
    """The product's one masking rule (`accounts.secrets.mask_token`): `abcd…wxyz` for a long
    secret, short ones hidden entirely."""
    return mask_token(secret)


def is_secret_name(name: str) -> bool:
    return re.fullmatch(_SENSITIVE_VAR, name.upper()) is not None


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secrets, bearer tokens and values of secret-looking env variables."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, mask(secret))
    text = _BEARER.sub(lambda m: m.group(1) + (m.group(2) if "…" in m.group(2) else mask(m.group(2))), text)
    return _SENSITIVE_ASSIGNMENT.sub(
        lambda m: m.group(1) + (m.group(2) if "…" in m.group(2) else mask(m.group(2))), text
    )
