"""The two pieces of an answer that arrive as they are written: text and reasoning.

Puter's stream yields them (`puter_mcp.puter.wire`) and the backend's event stream passes the
very same objects on to its caller (`puter_mcp.core.events`): one is made per NDJSON line, so
they are plain frozen dataclasses, made once and never converted. A module of their own, with
no imports, so that the core can name them without loading the wire models at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReasoningDelta", "TextDelta"]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning, when it shares it."""

    text: str
