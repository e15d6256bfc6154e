"""How the MCP server and the CLI show the core's records to a person, as short texts.

Many MCP clients show a tool's text content and nothing else, and the CLI prints the same
texts, so each record is rendered here once; what differs between the two is only how a
command or an argument is named (`Words`). The core's records hold the data and name no
command.
"""

from __future__ import annotations

from dataclasses import dataclass

from puter_mcp.core import (
    AccountsOverview,
    AccountStatus,
    ChatOutcome,
    ModelRecord,
    ModelsPage,
    VirtualModelRecord,
)

__all__ = ["CLI_WORDS", "MCP_WORDS", "Words", "accounts_text", "chat_text", "models_text"]


@dataclass(frozen=True)
class Words:
    """How a front end names the things a person types."""

    model_argument: str
    """Where a model name goes."""
    next_page: str
    """How to ask for the page after `offset` (``{offset}`` is replaced)."""
    sign_in: str
    """How to sign an account in."""


MCP_WORDS = Words(
    model_argument="`model` in puter-chat",
    next_page="call again with offset={offset}",
    sign_in="run `puter-mcp login` (or set PUTER_AUTH_TOKEN)",
)
CLI_WORDS = Words(
    model_argument="`--model` of `puter-mcp chat`",
    next_page="run again with --offset {offset}",
    sign_in="run `puter-mcp login` (or set PUTER_AUTH_TOKEN)",
)


def chat_text(outcome: ChatOutcome) -> str:
    """The answer, after a bracketed first line when it is emulated or came from another model."""
    first = []
    if outcome.sandbox:
        first.append("SANDBOX: emulated answer, not real model output")
    if outcome.fallback:
        first.append(outcome.fallback)
    return "".join(f"[{line}]\n" for line in first) + ("\n" if first else "") + outcome.text


def models_text(page: ModelsPage, words: Words = MCP_WORDS) -> str:
    marker = "[SANDBOX: emulated catalogue, not Puter's real model list]\n\n" if page.sandbox else ""
    return marker + _listing(page, words)


def _listing(page: ModelsPage, words: Words) -> str:
    if page.virtual_models:
        lines = [f"Virtual models (use the name as {words.model_argument}):"]
        lines += [_virtual_model_line(record) for record in page.virtual_models]
        lines.append("- auto: picks one of the chains above from the prompt")
        return "\n".join(lines)
    if not page.models and page.total and page.offset >= page.total:
        return (
            f"The offset {page.offset} is past the end: {page.total} model"
            f"{'' if page.total == 1 else 's'} matched. Use an offset from 0 to {page.total - 1}."
        )
    if not page.models:
        return "No model matched. Try fewer words, or drop a filter."
    shown = f"{page.offset + 1}-{page.offset + len(page.models)} of {page.total}"
    lines = [f"Models {shown}:"] + [_model_line(record) for record in page.models]
    if page.offset + len(page.models) < page.total:
        lines.append(f"(more: {words.next_page.format(offset=page.offset + len(page.models))})")
    if page.stale:
        lines.append("(Puter could not be reached: this list comes from the cache and may be out of date.)")
    return "\n".join(lines)


def _model_line(model: ModelRecord) -> str:
    def k(n: int | None) -> str:
        if n is None:
            return "?"
        return f"{n // 1000}k" if n >= 1000 else str(n)

    if model.free:
        price = "free"
    elif model.input_usd_per_mtok is None or model.output_usd_per_mtok is None:
        price = "price unknown"
    else:
        price = f"${model.input_usd_per_mtok:g}/${model.output_usd_per_mtok:g} per 1M in/out"
    extras = []
    if model.tool_calling:
        extras.append("tools")
    if "image" in model.input_modalities:
        extras.append("images")
    if model.subscriber_only:
        extras.append("subscribers only")
    tail = f", {', '.join(extras)}" if extras else ""
    return f"- {model.id} ({model.provider}): context {k(model.context)}, output {k(model.max_output)}, {price}{tail}"


def _virtual_model_line(record: VirtualModelRecord) -> str:
    shown = ", ".join(record.members[:6]) + (
        f" (+{len(record.members) - 6} more)" if len(record.members) > 6 else ""
    )
    return f"- {record.name}: {record.description} -> {shown or 'no model available today'}"


def accounts_text(overview: AccountsOverview, words: Words = MCP_WORDS) -> str:
    lines = []
    if overview.sandbox:
        lines += ["[SANDBOX: emulated accounts, nothing here is real]", ""]
    if not overview.accounts:
        lines.append(f"No Puter account is signed in: {words.sign_in}.")
    else:
        lines.append("Accounts:")
        lines += [_account_line(status) for status in overview.accounts]
        if any(status.state in ("sign-in-again", "out-of-credits") for status in overview.accounts):
            lines.append(f"To sign an account in (again, or another one): {words.sign_in}.")
    if overview.model_cooldowns:
        lines.append("Model cooldowns:")
        lines += ["- " + cooldown.describe() for cooldown in overview.model_cooldowns]
    lines += [f"Problem: {problem}" for problem in overview.problems]
    return "\n".join(lines)


def _account_line(status: AccountStatus) -> str:
    bits = [f"{status.name}{' (default)' if status.default else ''}"]
    if status.username and status.username != status.name:
        bits.append(f"user {status.username}")
    if status.tier:
        bits.append(status.tier)
    if status.credits is not None:
        credit = f"${status.credits.remaining_usd:.4f} left"
        if status.credits.allowance_usd is not None:
            credit += f" of ${status.credits.allowance_usd:.2f}/month"
        bits.append(credit)
    bits.append(status.state + (f": {status.detail}" if status.detail else ""))
    if status.error:
        bits.append(f"error: {status.error}")
    bits.append(f"token {status.token}")
    return "- " + ", ".join(bits)
