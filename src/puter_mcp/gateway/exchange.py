"""The record of one HTTP request, and the hooks told of it when it ends.

As stamina reports attempts to hooks instead of writing records itself, the gateway tells its
`ExchangeHook`s of each request once, when its last byte is sent: the access log, the metrics
and the per-key counts are hooks. A hook must not block and must not raise (a hook that raises
is logged and the others are still told).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from puter_mcp.core import ChatOutcome
    from puter_mcp.gateway.failures import GatewayError
    from puter_mcp.gateway.gate import OpenedAnswer

__all__ = ["Exchange", "ExchangeHook", "tell_hooks"]

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class Exchange:
    """One request, filled in as it goes.

    Attributes:
        api: ``openai``, ``anthropic``, ``ollama`` or ``gateway`` (health, stats...).
        key: the API key's name (never the key), None when no key was sent.
        model_asked / model_answered: what the request named, and who answered.
        status: the HTTP status sent (0 until the headers went out).
        failure: why it failed: a failure kind, or the refusal's category.
        ms: from the request's start to its last byte.
    """

    api: str
    method: str
    path: str
    started: float
    """`time.perf_counter()` when the request arrived."""
    key: str | None = None
    model_asked: str | None = None
    model_answered: str | None = None
    account: str | None = None
    status: int = 0
    stream: bool = False
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    failure: str | None = None
    fallback: str | None = None
    ms: float = 0.0

    def refused(self, error: GatewayError) -> None:
        self.status = error.status
        self.failure = error.code or error.category

    def answering(self, opened: OpenedAnswer) -> None:
        self.model_answered, self.account = opened.model, opened.account
        self.ttft_ms, self.fallback = opened.ttft_ms, opened.fallback

    def ended(self, opened: OpenedAnswer) -> None:
        """A streamed answer ended: whole (its outcome) or broken off (its failure)."""
        if opened.outcome is not None:
            self.answered(opened.outcome)
        elif opened.failure is not None:
            self.failure = opened.failure.kind.value if opened.failure.kind else "failed"
        else:
            self.failure = self.failure or "client_closed"

    def answered(self, outcome: ChatOutcome) -> None:
        self.model_answered, self.account = outcome.model, outcome.account
        self.input_tokens = outcome.usage.input_tokens
        self.output_tokens = outcome.usage.output_tokens
        self.cost_usd = outcome.cost_usd
        self.fallback = self.fallback or outcome.fallback

    def finish(self) -> None:
        self.ms = (time.perf_counter() - self.started) * 1000


ExchangeHook = Callable[[Exchange], None]
"""Told once of each request when it ends. Must not block."""


def tell_hooks(hooks: Sequence[ExchangeHook], exchange: Exchange) -> None:
    for hook in hooks:
        try:
            hook(exchange)
        except Exception:
            _log.exception("a gateway hook failed")
