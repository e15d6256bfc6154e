"""The accounts a call may use, as the router needs them, and what Puter says about them.

One `AccountsView` per backend: it reads the accounts file again only when it changed (another
process may sign in or out at any time), puts the ``PUTER_AUTH_TOKEN`` account first, learns
each account's tier from ``/whoami`` once, and answers the router's two questions (has this
account credit left? does Puter still accept its token?) with one request per account however
many calls ask at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import anyio

from puter_mcp.accounts.identity import ENV_ACCOUNT, account_id, choose_tier, env_account_id
from puter_mcp.accounts.store import Account, AccountsSnapshot, AccountsStore
from puter_mcp.logs import register_secret
from puter_mcp.puter.client import PuterClient, WhoAmI
from puter_mcp.puter.errors import FailureKind, PuterError
from puter_mcp.routing.pacing import Tier, limits_for
from puter_mcp.routing.router import AccountRef
from puter_mcp.settings import Settings

__all__ = ["ENV_ACCOUNT", "AccountsView", "account_id", "env_account_id"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long the first call of a process waits for an account's tier from /whoami (once per
# account). Puter answers it in well under a second; past this the call goes on at the cautious
# tier rather than making its caller wait on a slow lookup.
TIER_WAIT = 2.0


@dataclass
class _Flight:
    done: anyio.Event
    value: object = None
    error: PuterError | None = None


class _SharedChecks:
    """Concurrent callers asking Puter the same question about an account share one request
    (a burst of 402s on one account reads ``/metering/usage`` once, not once per call)."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, str], _Flight] = {}

    async def run(self, key: tuple[str, str], ask: Callable[[], Awaitable[T]]) -> T:
        flight = self._running.get(key)
        if flight is None:
            flight = self._running[key] = _Flight(anyio.Event())
            try:
                flight.value = await ask()
            except PuterError as exc:
                flight.error = exc
                raise
            finally:
                if flight.error is None and flight.value is None:
                    flight.error = PuterError(FailureKind.TRANSPORT, "the check was cut off")
                del self._running[key]
                flight.done.set()
        else:
            await flight.done.wait()
            if flight.error is not None:
                raise PuterError(
                    flight.error.kind,
                    flight.error.message,
                    status=flight.error.status,
                    code=flight.error.code,
                )
        return flight.value  # type: ignore[return-value]


class AccountsView:
    """The saved accounts and the environment's token, as `AccountRef`s the router can use."""

    def __init__(
        self, settings: Settings, store: AccountsStore, client: PuterClient, *, env_token: str | None
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.env_token = env_token or None
        register_secret(self.env_token)
        self.tiers: dict[str, Tier] = {}  # learned from /whoami, by account id
        self._tier_asked: set[str] = set()  # accounts whose tier /whoami was asked for once
        self._unknown_tiers: set[str] = set()  # routable accounts paced at the cautious tier
        self._checks = _SharedChecks()
        self._snapshot: tuple[tuple[int, int, int] | None, AccountsSnapshot] | None = None
        self._routable: (
            tuple[list[Account], str | None, tuple[tuple[str, Tier], ...], list[AccountRef]] | None
        ) = None

    def saved(self) -> tuple[list[Account], str | None, str | None]:
        """The saved accounts, the default's name, and why the file cannot be read (or None)."""
        # Read the file again only when it changed; a stat per call is much cheaper than
        # parsing and validating it.
        version = self.store.version()
        cached = self._snapshot
        # No file (version None) is a state like any other: it lasts until a file appears.
        if cached is not None and cached[0] == version:
            snapshot = cached[1]
        else:
            snapshot = self.store.load()
            self._snapshot = (version, snapshot) if snapshot.problem is None else None
            for account in snapshot.accounts:
                register_secret(account.token)  # whatever happens next, no log line shows it
        return snapshot.accounts, snapshot.default, snapshot.problem

    def routable(self) -> list[AccountRef]:
        """The accounts a request may use: the environment's token first, then saved ones.

        Worked out again only when the accounts file or a learned tier changed: this runs on
        every call.
        """
        saved, default, _problem = self.saved()
        tiers = tuple(self.tiers.items())
        cached = self._routable
        if cached is None or cached[0] is not saved or cached[1:3] != (default, tiers):
            cached = self._routable = (saved, default, tiers, self._build_routable(saved, default))
        return list(cached[3])

    def _build_routable(self, saved: list[Account], default: str | None) -> list[AccountRef]:
        refs: list[AccountRef] = []
        self._unknown_tiers = set()
        if self.env_token:
            state_id = env_account_id(self.env_token)
            tier = self._tier_of(state_id, None)
            refs.append(AccountRef(state_id, ENV_ACCOUNT, self.env_token, limits_for(tier), tier))
        ordered = sorted(saved, key=lambda account: account.name != default)  # default first
        for account in ordered:
            if not account.enabled:
                continue
            state_id = account_id(account)
            tier = self._tier_of(state_id, account)
            refs.append(
                AccountRef(state_id, account.name, account.token.get_secret_value(), limits_for(tier), tier)
            )
        return refs

    def known_tier(self, account: Account) -> Tier | None:
        """The tier the user set (config, then the account's override), else what sign-in learned."""
        return choose_tier(configured=self.settings.account_tiers.get(account.name), account=account).known

    def _tier_of(self, state_id: str, account: Account | None) -> Tier:
        """The tier to pace by (`choose_tier`); `account` None is the environment's token."""
        name = ENV_ACCOUNT if account is None else account.name
        configured = self.settings.account_tiers.get(name)
        choice = choose_tier(configured=configured, account=account, learned=self.tiers.get(state_id))
        if choice.known is None:
            self._unknown_tiers.add(state_id)
        return choice.tier

    # -- what Puter says about an account ----------------------------------------------------

    async def has_credit(self, account: AccountRef) -> bool:
        usage = await self._checks.run(("usage", account.id), lambda: self.client.usage(account.token))
        return usage.remaining_usd > 0

    async def refusal(self, account: AccountRef) -> FailureKind | None:
        """What ``/whoami`` says of the account: None (it may call), AUTH or EMAIL_UNCONFIRMED.

        Raises:
            PuterError: the check itself failed (a refusal it cannot confirm either way).
        """
        try:
            who = await self._checks.run(("whoami", account.id), lambda: self.client.whoami(account.token))
        except PuterError as exc:
            if exc.kind in (FailureKind.AUTH, FailureKind.EMAIL_UNCONFIRMED):
                return exc.kind
            raise
        self.learn(account.id, who)
        return None if who.email_confirmed else FailureKind.EMAIL_UNCONFIRMED

    def learn(self, state_id: str, who: WhoAmI) -> None:
        """Keep what ``/whoami`` said about an account: its tier paces its requests."""
        self.tiers[state_id] = Tier(who.tier)

    async def learn_tiers(self, accounts: Sequence[AccountRef]) -> bool:
        """Ask ``/whoami`` (once per process) the tier of every account whose tier nobody set
        or learned, whatever its source: an account paced as the lowest tier by mistake wastes
        a paid subscription. Returns whether a tier was learned."""
        unknown = [a for a in accounts if a.id in self._unknown_tiers and a.id not in self._tier_asked]
        if not unknown:
            return False

        async def ask(account: AccountRef) -> None:
            self._tier_asked.add(account.id)
            try:
                with anyio.fail_after(TIER_WAIT):
                    await self.refusal(account)
            except TimeoutError:
                # A slow /whoami must not hold the call up: this call is paced at the cautious
                # tier, and the next one asks again.
                self._tier_asked.discard(account.id)
                logger.info("no tier for %s within %.0f s; asking again next call", account.name, TIER_WAIT)
            except PuterError as exc:
                # The calls themselves will say what is wrong; until then, the cautious tier.
                logger.info("could not read the tier of %s: %s", account.name, exc)

        async with anyio.create_task_group() as group:
            for account in unknown:
                group.start_soon(ask, account)
        return any(account.id in self.tiers for account in unknown)
