"""The events of a streamed chat, as `Backend.chat_stream` yields them.

```
AttemptStarted*   one per upstream request; no content, so failing over after it is silent
Answering         the model and account whose content follows (once, unless restarted)
TextDelta | ReasoningDelta | ToolCallDelta   content
UsageUpdate       the token counts and cost, when Puter sends them (at the end)
Finished | StreamFailed                      the last event
```

Failover is allowed until the first content event has been yielded, never after: a failure
after it ends the stream with `StreamFailed`, which carries the failure kind and the partial
text. So the first content event (always preceded by `Answering`) is also the moment a gateway
may send its response headers. A caller that delivers its result whole (`Backend.chat`, the
CLI) may ask for a restart instead: the next candidate's `AttemptStarted` (with
``previous_failure``) then says that what came before it is void.

Plain frozen dataclasses: one is made per delta, so they must cost next to nothing. The text
and reasoning deltas are the very objects Puter's stream yields (`puter_mcp.puter.deltas`),
passed on as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from puter_mcp.core.errors import BackendError
from puter_mcp.core.results import ChatOutcome
from puter_mcp.puter.deltas import ReasoningDelta, TextDelta
from puter_mcp.puter.errors import FailureKind

__all__ = [
    "CONTENT_EVENTS",
    "Answering",
    "AttemptStarted",
    "ChatEvent",
    "Finished",
    "ReasoningDelta",
    "StreamFailed",
    "TextDelta",
    "ToolCallDelta",
    "UsageUpdate",
]


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    """An upstream request begins (the first of a call, or one after a failure)."""

    model: str
    account: str
    """The account's name, never its token."""
    attempt: int
    """1 for the first upstream request of the call."""
    previous_failure: str = ""
    """Why the previous attempt failed (a failure kind), empty on the first."""


@dataclass(frozen=True, slots=True)
class Answering:
    """The model and account whose content follows: sent once, right before the first content."""

    model: str
    account: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a tool call: `index` orders the calls of one answer; `id` and `name` come
    with the first piece of a call, `arguments` is a fragment of its JSON arguments."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    input_tokens: int
    output_tokens: int
    cost_usd: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Finished:
    """The answer is complete: `outcome` holds the whole metadata (`ChatMetadata`'s fields:
    model, account, routing, usage, cost, attempts) and the assembled answer."""

    outcome: ChatOutcome


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The answer broke off after its content had started; nothing else will be tried."""

    error: BackendError

    @property
    def kind(self) -> FailureKind | None:
        return self.error.kind

    @property
    def partial_text(self) -> str:
        return self.error.partial_text


ChatEvent = (
    AttemptStarted
    | Answering
    | TextDelta
    | ReasoningDelta
    | ToolCallDelta
    | UsageUpdate
    | Finished
    | StreamFailed
)

CONTENT_EVENTS = (TextDelta, ReasoningDelta, ToolCallDelta)
"""The events that carry content: after the first of them, no other candidate is tried."""
