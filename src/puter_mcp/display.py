"""How the MCP server and the CLI show the core's records to a person, as short texts.

Many MCP clients show a tool's text content and nothing else, and the CLI prints the same
texts, so each record is rendered here once; what differs between the two is only how a
command or an argument is named (`Words`). The core's records hold the data and name no
command.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from puter_mcp.core import (
    AccountsOverview,
    AccountStatus,
    ChatOutcome,
    ModelRecord,
    ModelsPage,
    UsageFigures,
    UsageReport,
    VirtualModelRecord,
)

__all__ = [
    "CLI_WORDS",
    "MCP_WORDS",
    "Words",
    "accounts_text",
    "chat_text",
    "models_text",
    "parse_window",
    "usage_text",
    "window_text",
]


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


# -- usage statistics (`puter-mcp stats`, the gateway's /stats) -----------------------------

_WINDOW = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_window(text: str) -> float:
    """A window such as ``24h``, ``90m``, ``7d``, ``1w`` or ``3600`` (seconds), in seconds.

    Raises:
        ValueError: with a sentence saying what is accepted.
    """
    match = _WINDOW.fullmatch(text.lower())
    seconds = float(match[1]) * _UNIT_SECONDS[match[2]] if match else 0.0
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a window: give a positive number and a unit, e.g. 24h, 90m, 7d")
    return seconds


def window_text(seconds: float) -> str:
    """``24 h``, ``90 min``, ``7 d``: a window as `parse_window` reads it back, in few digits."""
    # Days from two on: "24 h" reads better than "1 d" for the default window.
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= max(size, 2 * size if unit == "d" else size) and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _failures(figures: UsageFigures) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in figures.failures.items()) or "-"


def _table(title: str, rows: Mapping[str, UsageFigures]) -> list[str]:
    header = [
        title,
        "requests",
        "ok",
        "p50 ms",
        "p95 ms",
        "ttft p50",
        "ttft p95",
        "tokens in",
        "out",
        "cost $",
        "failures",
    ]
    body = [
        [
            name,
            str(f.requests),
            str(f.successes),
            _ms(f.latency_p50_ms),
            _ms(f.latency_p95_ms),
            _ms(f.ttft_p50_ms),
            _ms(f.ttft_p95_ms),
            str(f.input_tokens),
            str(f.output_tokens),
            f"{f.cost_usd:.4f}",
            _failures(f),
        ]
        for name, f in rows.items()
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        # Names and failures left-aligned, figures right-aligned; the last column is not padded.
        first = cells[0].ljust(widths[0])
        figures = [cell.rjust(width) for cell, width in zip(cells[1:-1], widths[1:-1], strict=True)]
        return "  ".join([first, *figures, cells[-1]])

    return [line(header), *map(line, body)]


def usage_text(report: UsageReport, keys: Mapping[str, tuple[int, int]] | None = None) -> str:
    """The report as tables, per model and per account; `keys` adds each API key's requests
    and refusals over its limits (429s), as the gateway counts them."""
    since = dt.datetime.fromtimestamp(report.since, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = []
    if report.sandbox:
        lines += ["[SANDBOX: emulated requests, nothing here is real]", ""]
    lines += [
        f"Usage over the last {window_text(round(report.until - report.since))} (since {since}),",
        f"counting {report.covers}.",
        f"{report.calls} calls, {report.total.requests} upstream requests, "
        f"{report.total.successes} answered, cost ${report.total.cost_usd:.4f}.",
    ]
    if not report.total.requests:
        lines.append("No upstream request in this window.")
    else:
        lines += ["", *_table("model", report.models), "", *_table("account", report.accounts)]
    if keys:
        width = max(len("key"), *map(len, keys))
        # The key store counts by the hour: its window starts at the top of `since`'s hour.
        lines += ["", f"{'key'.ljust(width)}  requests  429s   (API keys, counted by whole hours)"]
        lines += [f"{name.ljust(width)}  {n:>8}  {refused:>4}" for name, (n, refused) in keys.items()]
    return "\n".join(lines)
