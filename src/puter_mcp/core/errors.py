"""The errors the backend raises, one tree, so each front end can word them for its users.

```
BackendError                 the root: what happened, in a sentence that names no command
├── BadRequest               the call itself is wrong (an argument, a file); `argument` names it
├── NotSignedIn              no account can be used; `problem` says why the saved ones cannot
├── ModelNotFound            the model is not in Puter's catalogue; `closest` names look-alikes
├── NoCandidateLeft          every (model, account) failed or is cooling down; `kind`, `retry_at`
│                            and `partial_text` say why, when to try again, and what arrived
└── UpstreamRefused          Puter refused the request itself (`BAD_REQUEST`): nobody else would
                             answer it differently
```

Hints are fields, never sentences about commands: `action` names what the person can do
(`Action`), and each front end words it: the MCP server and the CLI say "run `puter-mcp
login`", the gateway answers 401 with its own body. `kind` (a `FailureKind`) is set wherever a
failure kind applies, so a front end can map it to an HTTP status or a retry hint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from puter_mcp.puter.errors import FailureKind

__all__ = [
    "Action",
    "BackendError",
    "BadRequest",
    "ModelNotFound",
    "NoCandidateLeft",
    "NotSignedIn",
    "UpstreamRefused",
]


Action = Literal["sign_in", "list_models"]
"""What a person can do about an error, for a front end to word: sign in (again), or look up
the available models."""


class BackendError(Exception):
    """A failure the caller can act on: the message says what happened.

    Attributes:
        kind: the failure kind behind it, when one applies.
        partial_text: text the model produced before the failure (kept, never lost).
        action: what the person can do about it, when a front end has words for it.
        summary: the message without the partial text (a front end adds its hint after it).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind | None = None,
        partial_text: str = "",
        action: Action | None = None,
        summary: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.partial_text = partial_text
        self.action: Action | None = action
        self.summary = message if summary is None else summary


class BadRequest(BackendError):
    """The call is wrong as given; `argument` names the offending argument when one does."""

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message, kind=FailureKind.BAD_REQUEST)
        self.argument = argument


class NotSignedIn(BackendError):
    """No account can be used. `problem`: why the saved accounts cannot (unreadable file...)."""

    def __init__(self, message: str, *, problem: str | None = None) -> None:
        super().__init__(message, kind=FailureKind.AUTH, action="sign_in")
        self.problem = problem


class ModelNotFound(BackendError):
    """The model (or every model of a chain) is not in Puter's catalogue."""

    def __init__(self, message: str, *, model: str, closest: Sequence[str] = ()) -> None:
        super().__init__(message, kind=FailureKind.MODEL_UNKNOWN, action="list_models")
        self.model = model
        self.closest = tuple(closest)


class NoCandidateLeft(BackendError):
    """Every candidate failed or is cooling down.

    Attributes:
        retry_at: epoch seconds when the first candidate frees up, when known.
        attempts: what was tried, in order (`puter_mcp.core.results.AttemptRecord`).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind | None,
        retry_at: float | None = None,
        partial_text: str = "",
        attempts: Sequence[object] = (),
        summary: str | None = None,
    ) -> None:
        # Signing in (again, or another account) is what helps when tokens are refused or
        # every account is out of credit.
        action: Action | None = "sign_in" if kind in (FailureKind.AUTH, FailureKind.OUT_OF_CREDITS) else None
        super().__init__(message, kind=kind, partial_text=partial_text, action=action, summary=summary)
        self.retry_at = retry_at
        self.attempts = list(attempts)


class UpstreamRefused(BackendError):
    """Puter refused the request itself; sending it elsewhere would not help."""

    def __init__(self, message: str, *, partial_text: str = "", summary: str | None = None) -> None:
        super().__init__(message, kind=FailureKind.BAD_REQUEST, partial_text=partial_text, summary=summary)
