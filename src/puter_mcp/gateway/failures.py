"""What the gateway answers when it cannot answer: one error, rendered by each API in its shape.

```
GatewayError          status, message, category, param, code, retry_after
 ├─ from a BackendError (`from_backend_error`): the core's tree mapped onto HTTP
 └─ raised by the gateway itself: a body that is not JSON, a key refused, a limit reached
```

A handler raises `GatewayError` anywhere; `Gateway.endpoint` renders it with the API's own
`error_response` (OpenAI's ``{"error": {...}}``, Anthropic's ``{"type": "error", ...}``,
Ollama's ``{"error": "..."}``), so every path of one API answers in one shape
(docs/gateway-reference.md, "Errors").

How the core's errors map (clients retry on status codes, so the status must say what helps):

| core error        | status | why                                                           |
|-------------------|--------|---------------------------------------------------------------|
| BadRequest        | 400    | the request is wrong; `param` names the argument              |
| ModelNotFound     | 404    | `model_not_found`, the message names the closest ids           |
| NotSignedIn       | 401    | the gateway has no usable Puter account                        |
| NoCandidateLeft   | 429    | every account is throttled or out of credit                    |
|                   | 503    | the models are down or refused (another kind)                  |
| UpstreamRefused   | 400    | Puter refused the request itself; no other model would differ  |
| any other         | 500    |                                                               |
"""

from __future__ import annotations

import math
from typing import Literal

from puter_mcp.core import (
    BackendError,
    BadRequest,
    FailureKind,
    ModelNotFound,
    NoCandidateLeft,
    NotSignedIn,
    UpstreamRefused,
)

__all__ = ["Category", "GatewayError", "from_backend_error"]

Category = Literal[
    "invalid_request",
    "authentication",
    "permission",
    "not_found",
    "request_too_large",
    "rate_limit",
    "overloaded",
    "api_error",
]
"""What kind of refusal: each API names these its own way (OpenAI's `type`, Anthropic's
`error.type`)."""

_CATEGORY_OF_STATUS: dict[int, Category] = {
    400: "invalid_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    405: "invalid_request",
    408: "invalid_request",
    413: "request_too_large",
    415: "invalid_request",
    422: "invalid_request",
    429: "rate_limit",
    501: "not_found",
    503: "overloaded",
    529: "overloaded",
}

# Kinds that another account would fix: the caller is being throttled (429). Every other kind
# means the models cannot answer now (503).
_THROTTLED = frozenset({FailureKind.RATE_LIMITED, FailureKind.OUT_OF_CREDITS})


class GatewayError(Exception):
    """A refusal, with what each API needs to word it.

    Attributes:
        status: the HTTP status.
        message: a sentence saying what happened and what to do; never a key or a token.
        category: the kind of refusal (derived from the status when not given).
        param: the request field at fault, when one is.
        code: a machine-readable code (OpenAI's ``code``, e.g. ``model_not_found``).
        retry_after: seconds until trying again may succeed, when known.
        key: the name of the API key refused (expired, not allowed the model, over its limit),
            for the access log; never its secret.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        category: Category | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category: Category = category or _CATEGORY_OF_STATUS.get(status, "api_error")
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.key = key

    def headers(self) -> dict[str, str]:
        """``Retry-After`` (whole seconds, rounded up) when it is known."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}

    def __repr__(self) -> str:
        return f"GatewayError({self.status}, {self.message!r})"


def from_backend_error(error: BackendError, *, now: float) -> GatewayError:
    """The HTTP refusal for a core error (the table in the module docstring).

    `now` (epoch seconds) turns the core's `retry_at` into a Retry-After.
    """
    message = error.summary
    match error:
        case BadRequest():
            return GatewayError(400, message, param=error.argument)
        case ModelNotFound():
            return GatewayError(404, message, param="model", code="model_not_found")
        case NotSignedIn():
            detail = f" ({error.problem})" if error.problem else ""
            return GatewayError(
                401,
                "the gateway has no usable Puter account: sign one in on the gateway's machine "
                f"with `puter-mcp login`{detail}",
                code="puter_not_signed_in",
            )
        case NoCandidateLeft():
            retry_after = None if error.retry_at is None else max(0.0, error.retry_at - now)
            if error.kind in _THROTTLED:
                return GatewayError(429, message, code="rate_limit_exceeded", retry_after=retry_after)
            return GatewayError(
                503, message, code=error.kind.value if error.kind else None, retry_after=retry_after
            )
        case UpstreamRefused():
            return GatewayError(400, message, code="upstream_refused")
    return GatewayError(500, message or "the gateway failed; see its log")
