"""Reasoning effort: the one level Puter takes, from either way a caller may ask for it.

Puter reads ``reasoning.effort`` (low, medium, high) and ignores Anthropic-style thinking
budgets, so a budget is translated here. A module of its own, without pydantic, because the
core checks every call's effort at import-light speed (docs/puter-protocol.md).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["EFFORTS", "ReasoningEffort", "effort_from_thinking_budget", "reasoning_effort"]

ReasoningEffort = Literal["low", "medium", "high"]
EFFORTS: tuple[ReasoningEffort, ...] = get_args(ReasoningEffort)
"""The effort levels Puter takes, lowest first."""


def effort_from_thinking_budget(budget_tokens: int) -> ReasoningEffort:
    """Translate an Anthropic-style ``thinking.budget_tokens`` into the effort Puter understands.

    Puter silently ignores ``thinking`` and maps efforts to budgets 1024/4096/8192 for Claude,
    so the nearest effort at or above the budget is the faithful translation: up to 1024 tokens
    is low, up to 4096 medium, more is high.
    """
    if budget_tokens <= 1024:
        return "low"
    if budget_tokens <= 4096:
        return "medium"
    return "high"


def reasoning_effort(effort: str | None, thinking_budget: int | None) -> ReasoningEffort | None:
    """The one reasoning effort to send to Puter, from either way a caller may ask for it.

    Puter takes an effort level (low/medium/high) and ignores a thinking budget, so a budget is
    translated by `effort_from_thinking_budget`.

    Raises:
        ValueError: both are given (they could disagree, and Puter must never get both), the
            effort is not low/medium/high, or the budget is not a positive whole number.
    """
    if effort is not None and thinking_budget is not None:
        raise ValueError(
            "give either reasoning_effort or a thinking budget, not both: Puter takes a single "
            "effort level and the two could disagree"
        )
    if effort is not None:
        normalised = effort.strip().lower()
        for known in EFFORTS:
            if normalised == known:
                return known
        raise ValueError(f"reasoning_effort must be one of {', '.join(EFFORTS)}; got {effort!r}")
    if thinking_budget is not None:
        if isinstance(thinking_budget, bool) or not isinstance(thinking_budget, int) or thinking_budget < 1:
            raise ValueError(
                f"a thinking budget must be a positive number of tokens, got {thinking_budget!r}; "
                "leave it out for no extended reasoning"
            )
        return effort_from_thinking_budget(thinking_budget)
    return None
