"""The accounts overview: every account with its credit, tier and state, and the cooldowns.

What Puter says while the overview is built is news for the router too: the cooldown book is
the one record of an account's state, so a refused token or an empty account found here is
written there, and the lines shown are read back from it.
"""

from __future__ import annotations

import anyio

from puter_mcp.accounts.secrets import mask_token, redact
from puter_mcp.core.accounts_view import ENV_ACCOUNT, AccountsView, account_id, env_account_id
from puter_mcp.core.results import AccountsOverview, AccountStatus, CooldownInfo, Credits
from puter_mcp.puter.errors import FailureKind, PuterError, account_state
from puter_mcp.routing.cooldowns import CooldownBook, Scope
from puter_mcp.routing.pacing import Pacer

__all__ = ["accounts_overview"]


async def accounts_overview(
    accounts: AccountsView, book: CooldownBook, pacer: Pacer, *, gui_origin: str, sandbox: bool
) -> AccountsOverview:
    client = accounts.client
    saved, default, problem = accounts.saved()
    statuses: list[AccountStatus] = []
    refs: list[tuple[AccountStatus, str, str]] = []
    if accounts.env_token:
        status = AccountStatus(
            name=ENV_ACCOUNT, token=mask_token(accounts.env_token), source="environment", default=not saved
        )
        statuses.append(status)
        refs.append((status, env_account_id(accounts.env_token), accounts.env_token))
    for account in saved:
        status = AccountStatus(
            name=account.name,
            username=account.username,
            token=account.masked_token,
            source="sandbox" if sandbox else "saved",
            default=account.name == default,
            is_temp=account.is_temp,
            tier=accounts.known_tier(account),
            state="active" if account.enabled else "disabled",
        )
        statuses.append(status)
        refs.append((status, account_id(account), account.token.get_secret_value()))

    async def fill(status: AccountStatus, state_id: str, token: str) -> None:
        try:
            who = await client.whoami(token)
        except PuterError as exc:
            status.error = redact(exc.message, [token])
            if exc.kind in (FailureKind.AUTH, FailureKind.EMAIL_UNCONFIRMED):
                await book.account_checked(state_id, exc.kind, reason=exc.message)
            return
        status.username = status.username or who.username
        status.is_temp = who.is_temp
        status.tier = status.tier or who.tier
        accounts.learn(state_id, who)
        await book.account_checked(state_id, None if who.email_confirmed else FailureKind.EMAIL_UNCONFIRMED)
        try:
            usage = await client.usage(token)
        except PuterError as exc:
            status.error = redact(exc.message, [token])
            return
        status.credits = Credits(
            remaining_usd=usage.remaining_usd,
            allowance_usd=usage.allowance_usd,
            used_usd=usage.used_usd,
        )
        await book.credit_checked(state_id, usage.remaining_usd > 0)

    async with anyio.create_task_group() as group:
        for status, state_id, token in refs:
            group.start_soon(fill, status, state_id, token)

    names = {state_id: status.name for status, state_id, _ in refs}
    model_cooldowns: list[CooldownInfo] = []
    for cooldown in await book.snapshot():
        info = CooldownInfo(
            scope=cooldown.scope.value,
            account=names.get(cooldown.account, cooldown.account) if cooldown.account else None,
            model=cooldown.model or None,
            kind=cooldown.kind.value,
            until=None if cooldown.until == float("inf") else cooldown.until,
            reason=cooldown.reason,
        )
        if cooldown.scope is Scope.ACCOUNT:
            for status, state_id, _ in refs:
                if state_id == cooldown.account and status.state in ("active", "cooling"):
                    state, advice = account_state(cooldown.kind, gui_origin)
                    status.state = state  # type: ignore[assignment]
                    reason = f" ({cooldown.reason})" if advice and cooldown.reason else ""
                    status.detail = advice + reason if advice else info.describe().split(": ", 1)[-1]
        else:
            model_cooldowns.append(info)
    for status, state_id, _ in refs:
        status.requests_in_window, status.in_flight = await pacer.usage(state_id)
    return AccountsOverview(
        accounts=statuses,
        model_cooldowns=model_cooldowns,
        sandbox=sandbox,
        problems=[problem] if problem else [],
    )
