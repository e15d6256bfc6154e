"""What the backend answers with: plain pydantic records, free of MCP, shared by every front end.

The MCP tools publish these as output schemas; the coming HTTP gateway will map them onto
OpenAI's and Anthropic's shapes. Each record that a person may read also knows how to render
itself as a short text (`display_text`), because many clients show only the text content.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "AccountStatus",
    "AccountsOverview",
    "AttemptRecord",
    "AutoInfo",
    "ChatMetadata",
    "ChatOutcome",
    "CooldownInfo",
    "Credits",
    "ModelRecord",
    "ModelsPage",
    "StreamProgress",
    "UsageInfo",
    "VirtualModelRecord",
]


def _when(epoch: float | None) -> str:
    """How long something lasts, as a phrase that follows a state: "until 12:00:00 UTC"."""
    if epoch is None:
        return "until further notice"
    return "until " + dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%H:%M:%S UTC")


@dataclass(frozen=True, slots=True)
class StreamProgress:
    """How far a streamed answer has come, for progress notifications (one per text delta,
    so a plain dataclass: cheap to make)."""

    model: str = ""
    tokens: int = 0
    attempt: int = 0
    delta: str = ""
    """The text that just arrived (for terminals that stream it)."""
    previous_failure: str = ""
    """On the first progress of an attempt after a failed one: why that one failed (a failure
    kind such as ``model_down``), so that a terminal can say why a shown answer broke off."""

    def describe(self, elapsed: float) -> str:
        if not self.model:
            return f"waiting for the first token ({elapsed:.0f} s)"
        return f"{self.model}: {self.tokens} tokens received ({elapsed:.0f} s)"


class UsageInfo(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class AttemptRecord(BaseModel):
    """One upstream request (or wait) made for a call."""

    model: str
    account: str = Field(description="The account's name (never its token).")
    outcome: str = Field(description="`ok`, a failure kind such as `rate_limited`, `wait` or `credit-check`.")
    ms: float
    message: str = ""


class AutoInfo(BaseModel):
    category: str
    chain: str
    reason: str


class ChatMetadata(BaseModel):
    """Everything a caller needs to trust a chat answer (the answer itself travels as text)."""

    model_requested: str = Field(description="What the caller asked for (a model, a virtual model or auto).")
    model: str = Field(description="The model that answered (canonical id).")
    chain: str | None = Field(default=None, description="The virtual model used, if any.")
    auto: AutoInfo | None = Field(default=None, description="Why `auto` chose its chain.")
    account: str = Field(description="The account that paid for it (its name, never its token).")
    finish_reason: str | None = None
    usage: UsageInfo = UsageInfo()
    cost_usd: float | None = Field(default=None, description="What the answer cost, in US dollars.")
    reasoning: str | None = Field(default=None, description="The model's reasoning, when it shared it.")
    fallback: str | None = Field(default=None, description="Why another model answered than the one named.")
    attempts: list[AttemptRecord] = Field(default_factory=list)
    waited_s: float = Field(default=0.0, description="Seconds spent waiting for a cooldown or a free slot.")
    sandbox: bool = Field(default=False, description="True when the answer comes from the built-in emulator.")


class ChatOutcome(ChatMetadata):
    """A chat answer and its metadata."""

    text: str = Field(description="The answer.")

    def metadata(self) -> ChatMetadata:
        return ChatMetadata.model_validate(self.model_dump(exclude={"text"}))

    def display_text(self) -> str:
        first = []
        if self.sandbox:
            first.append("SANDBOX: emulated answer, not real model output")
        if self.fallback:
            first.append(self.fallback)
        return "".join(f"[{line}]\n" for line in first) + ("\n" if first else "") + self.text


class ModelRecord(BaseModel):
    """A compact description of one model."""

    id: str
    provider: str
    name: str | None = None
    context: int | None = Field(default=None, description="Context window, in tokens.")
    max_output: int | None = Field(default=None, description="Longest answer, in tokens.")
    input_usd_per_mtok: float | None = Field(default=None, description="US dollars per 1M input tokens.")
    output_usd_per_mtok: float | None = Field(default=None, description="US dollars per 1M output tokens.")
    free: bool = False
    input_modalities: list[str] = Field(default_factory=list)
    output_modalities: list[str] = Field(default_factory=list)
    tool_calling: bool | None = None
    subscriber_only: bool = False
    aliases: list[str] = Field(default_factory=list)

    def line(self) -> str:
        def k(n: int | None) -> str:
            if n is None:
                return "?"
            return f"{n // 1000}k" if n >= 1000 else str(n)

        if self.free:
            price = "free"
        elif self.input_usd_per_mtok is None or self.output_usd_per_mtok is None:
            price = "price unknown"
        else:
            price = f"${self.input_usd_per_mtok:g}/${self.output_usd_per_mtok:g} per 1M in/out"
        extras = []
        if self.tool_calling:
            extras.append("tools")
        if "image" in self.input_modalities:
            extras.append("images")
        if self.subscriber_only:
            extras.append("subscribers only")
        tail = f", {', '.join(extras)}" if extras else ""
        return f"- {self.id} ({self.provider}): context {k(self.context)}, output {k(self.max_output)}, {price}{tail}"


class VirtualModelRecord(BaseModel):
    """A virtual model (a chain) and the models it resolves to right now."""

    name: str
    description: str = ""
    members: list[str] = Field(description="Models tried in this order, as found in the live catalogue.")
    skipped: list[str] = Field(default_factory=list, description="Entries not in the catalogue today.")
    free_fallback: bool = True

    def line(self) -> str:
        shown = ", ".join(self.members[:6]) + (
            f" (+{len(self.members) - 6} more)" if len(self.members) > 6 else ""
        )
        return f"- {self.name}: {self.description} -> {shown or 'no model available today'}"


class ModelsPage(BaseModel):
    """One page of a model search."""

    total: int = Field(description="How many models matched in all.")
    offset: int
    limit: int
    models: list[ModelRecord] = Field(default_factory=list)
    virtual_models: list[VirtualModelRecord] = Field(default_factory=list)
    stale: bool = Field(
        default=False, description="True when Puter could not be reached and a cached catalogue was used."
    )
    sandbox: bool = Field(default=False, description="True when the list comes from the built-in emulator.")

    def display_text(self) -> str:
        marker = "[SANDBOX: emulated catalogue, not Puter's real model list]\n\n" if self.sandbox else ""
        return marker + self._listing()

    def _listing(self) -> str:
        if self.virtual_models:
            lines = ["Virtual models (use the name as `model` in puter-chat):"]
            lines += [record.line() for record in self.virtual_models]
            lines.append("- auto: picks one of the chains above from the prompt")
            return "\n".join(lines)
        if not self.models and self.total and self.offset >= self.total:
            return (
                f"The offset {self.offset} is past the end: {self.total} model"
                f"{'' if self.total == 1 else 's'} matched. Use an offset from 0 to {self.total - 1}."
            )
        if not self.models:
            return "No model matched. Try fewer words, or drop a filter."
        shown = f"{self.offset + 1}-{self.offset + len(self.models)} of {self.total}"
        lines = [f"Models {shown}:"] + [record.line() for record in self.models]
        if self.offset + len(self.models) < self.total:
            lines.append(f"(more: call again with offset={self.offset + len(self.models)})")
        if self.stale:
            lines.append(
                "(Puter could not be reached: this list comes from the cache and may be out of date.)"
            )
        return "\n".join(lines)


class Credits(BaseModel):
    remaining_usd: float
    allowance_usd: float | None = None
    used_usd: float | None = None


class CooldownInfo(BaseModel):
    scope: str
    model: str | None = None
    account: str | None = None
    kind: str
    until: float | None = Field(
        default=None, description="Epoch seconds; null means until something changes."
    )
    reason: str = ""

    def describe(self) -> str:
        what = " x ".join(part for part in (self.account, self.model) if part)
        return f"{what}: {self.kind} {_when(self.until)}" + (f" ({self.reason})" if self.reason else "")


class AccountStatus(BaseModel):
    name: str
    username: str | None = None
    token: str = Field(description="The token, masked.")
    source: Literal["saved", "environment", "sandbox"] = "saved"
    default: bool = False
    is_temp: bool | None = None
    tier: str | None = None
    state: Literal[
        "active", "cooling", "out-of-credits", "sign-in-again", "confirm-email", "disabled", "unknown"
    ] = "active"
    detail: str = ""
    credits: Credits | None = None
    requests_in_window: int = 0
    in_flight: int = 0
    error: str | None = None

    def line(self) -> str:
        bits = [f"{self.name}{' (default)' if self.default else ''}"]
        if self.username and self.username != self.name:
            bits.append(f"user {self.username}")
        if self.tier:
            bits.append(self.tier)
        if self.credits is not None:
            credit = f"${self.credits.remaining_usd:.4f} left"
            if self.credits.allowance_usd is not None:
                credit += f" of ${self.credits.allowance_usd:.2f}/month"
            bits.append(credit)
        bits.append(self.state + (f": {self.detail}" if self.detail else ""))
        if self.error:
            bits.append(f"error: {self.error}")
        bits.append(f"token {self.token}")
        return "- " + ", ".join(bits)


class AccountsOverview(BaseModel):
    accounts: list[AccountStatus] = Field(default_factory=list)
    model_cooldowns: list[CooldownInfo] = Field(default_factory=list)
    sandbox: bool = Field(
        default=False, description="True when answers come from the built-in emulator, not Puter."
    )
    problems: list[str] = Field(default_factory=list)

    def display_text(self) -> str:
        lines = []
        if self.sandbox:
            lines += ["[SANDBOX: emulated accounts, nothing here is real]", ""]
        if not self.accounts:
            lines.append("No Puter account is signed in: run `puter-mcp login` (or set PUTER_AUTH_TOKEN).")
        else:
            lines.append("Accounts:")
            lines += [status.line() for status in self.accounts]
        if self.model_cooldowns:
            lines.append("Model cooldowns:")
            lines += ["- " + cooldown.describe() for cooldown in self.model_cooldowns]
        lines += [f"Problem: {problem}" for problem in self.problems]
        return "\n".join(lines)
