"""What the backend answers with: plain pydantic records, free of MCP, shared by every front end.

The MCP tools publish these as output schemas; the coming HTTP gateway will map them onto
OpenAI's and Anthropic's shapes. How a person sees them is each front end's business
(`puter_mcp.display` for the MCP server and the CLI).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

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
    "ToolCallRecord",
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


class ToolCallRecord(BaseModel):
    """A tool the model asked to call."""

    id: str = Field(description="The call's id; a tool turn that answers it names it.")
    name: str = Field(description="The tool's name.")
    arguments: dict[str, Any] = Field(description="The arguments, parsed.")
    arguments_json: str = Field(description="The arguments as the model wrote them (JSON text).")


class ChatOutcome(ChatMetadata):
    """A chat answer and its metadata: the text, and the tool calls the model made."""

    text: str = Field(description="The answer.")
    tool_calls: list[ToolCallRecord] = Field(
        default_factory=list, description="The tools the model asked to call (finish reason `tool_calls`)."
    )

    def metadata(self) -> ChatMetadata:
        return ChatMetadata.model_validate(self.model_dump(exclude={"text", "tool_calls"}))


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


class VirtualModelRecord(BaseModel):
    """A virtual model (a chain) and the models it resolves to right now."""

    name: str
    description: str = ""
    members: list[str] = Field(description="Models tried in this order, as found in the live catalogue.")
    skipped: list[str] = Field(default_factory=list, description="Entries not in the catalogue today.")
    free_fallback: bool = True


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


class AccountsOverview(BaseModel):
    accounts: list[AccountStatus] = Field(default_factory=list)
    model_cooldowns: list[CooldownInfo] = Field(default_factory=list)
    sandbox: bool = Field(
        default=False, description="True when answers come from the built-in emulator, not Puter."
    )
    problems: list[str] = Field(default_factory=list)
