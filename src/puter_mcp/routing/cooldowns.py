"""The cooldown book: which (account, model) pairs must not be tried now, and until when.

The rules are pure functions: `verdict_of` decides from a pair's cooldowns, and the book builds
each change as a `CooldownChange` (a function from the old record to the new). The book applies
them to a `StateStore` (so every puter-mcp process of the user sees the same book), or hands
them to the router, which applies them in the store's own steps (`StateStore.acquire` with the
book's `judge`, `StateStore.settle` with its changes). The clock and the random generator are
injectable so that tests are deterministic. The rules come from docs/architecture.md
("Failure kinds", "Rules the router keeps"):

- RATE_LIMITED blocks the account, escalating on repeats (10, 30, 60, 120, 300 s), reset by a
  success on the account.
- OUT_OF_CREDITS blocks the account until ``/metering/usage`` shows credit again, checked at
  most every `CooldownPolicy.credit_recheck` seconds by one caller only.
- AUTH blocks the account until it signs in again, or until ``/whoami`` accepts its token
  again (checked like credit). The router records it only once ``/whoami`` has confirmed the
  refusal: a 401 that ``/whoami`` contradicts was a passing fault (docs/failures.md).
- EMAIL_UNCONFIRMED blocks the account until ``/whoami`` says its e-mail is confirmed.
- OUT_OF_CREDITS on an account that still has credit (a request it cannot afford) blocks only
  that account x model, for `CooldownPolicy.credit_recheck` seconds.
- MODEL_DOWN blocks the model on every account; after 30-60 s exactly one request probes it.
- MODEL_FORBIDDEN (long) and TRANSPORT (short) block one model on one account.
- MODEL_UNKNOWN and BAD_REQUEST leave no cooldown (the router remembers unknown models).

A cooldown is never shortened by a later, shorter one: records merge by keeping the later
end. Only evidence that the cause is gone ends one early: a success (MODEL_DOWN, TRANSPORT),
a usage check showing credit (OUT_OF_CREDITS) or a new sign-in (AUTH and the rest).
"""

from __future__ import annotations

import enum
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from puter_mcp.puter.errors import FailureKind
from puter_mcp.routing.state import (
    Cooldown,
    CooldownChange,
    CooldownChanges,
    CooldownKey,
    Scope,
    StateStore,
)

__all__ = [
    "Cooldown",
    "CooldownBook",
    "CooldownPolicy",
    "Scope",
    "Status",
    "Verdict",
    "scope_of",
    "verdict_of",
]

_SCOPES: dict[FailureKind, Scope] = {
    FailureKind.RATE_LIMITED: Scope.ACCOUNT,
    FailureKind.OUT_OF_CREDITS: Scope.ACCOUNT,
    FailureKind.AUTH: Scope.ACCOUNT,
    FailureKind.EMAIL_UNCONFIRMED: Scope.ACCOUNT,
    FailureKind.MODEL_DOWN: Scope.MODEL,
    FailureKind.MODEL_FORBIDDEN: Scope.ACCOUNT_MODEL,
    FailureKind.TRANSPORT: Scope.ACCOUNT_MODEL,
}

# When several cooldowns block a pair until the same moment, the one shown to the user is the
# one they can least wait out: signing in beats buying credit beats waiting.
_SEVERITY: dict[FailureKind, int] = {
    FailureKind.AUTH: 7,
    FailureKind.EMAIL_UNCONFIRMED: 6,
    FailureKind.OUT_OF_CREDITS: 5,
    FailureKind.MODEL_FORBIDDEN: 4,
    FailureKind.MODEL_DOWN: 3,
    FailureKind.RATE_LIMITED: 2,
    FailureKind.TRANSPORT: 1,
}


# Account-wide refusals that last until a check (``/metering/usage`` or ``/whoami``) lifts them.
_CHECKED_LATER = frozenset({FailureKind.OUT_OF_CREDITS, FailureKind.AUTH, FailureKind.EMAIL_UNCONFIRMED})
_ACCOUNT_REFUSALS = (FailureKind.AUTH, FailureKind.EMAIL_UNCONFIRMED)  # what a working /whoami ends


def scope_of(kind: FailureKind) -> Scope | None:
    """What a failure of this kind blocks, or None if it leaves no cooldown."""
    return _SCOPES.get(kind)


@dataclass(frozen=True)
class CooldownPolicy:
    """How long each kind of failure blocks; every duration is in seconds and configurable.

    Attributes:
        rate_limited_steps: successive RATE_LIMITED durations; the last one repeats.
        rate_limited_memory: an escalation is forgotten when the account's last rate limit
            ended this long ago (so that one 429 a day does not climb to 300 s).
        model_down: (low, high): a MODEL_DOWN probe is due after a random time in this range,
            so that processes which saw the same outage do not all probe at once.
        model_forbidden: how long a subscriber-only model stays blocked for one account.
        transport: how long a pair stays blocked after a broken connection or stream.
        credit_recheck: how often an account without credit (or signed out, or with its
            e-mail unconfirmed) may be checked again; also how long a model an account cannot
            afford stays blocked on it.
        probe_lease: how long a claimed probe keeps others from probing, in case the prober
            died; a finished probe records its result well before.
    """

    rate_limited_steps: tuple[float, ...] = (10.0, 30.0, 60.0, 120.0, 300.0)
    rate_limited_memory: float = 3600.0
    model_down: tuple[float, float] = (30.0, 60.0)
    model_forbidden: float = 6 * 3600.0
    transport: float = 15.0
    credit_recheck: float = 300.0
    probe_lease: float = 120.0

    def __post_init__(self) -> None:
        if not self.rate_limited_steps or any(s <= 0 for s in self.rate_limited_steps):
            raise ValueError("rate_limited_steps must be a non-empty list of positive durations")
        low, high = self.model_down
        if not 0 < low <= high:
            raise ValueError("model_down must be (low, high) with 0 < low <= high")
        durations = {
            "rate_limited_memory": self.rate_limited_memory,
            "model_forbidden": self.model_forbidden,
            "transport": self.transport,
            "credit_recheck": self.credit_recheck,
            "probe_lease": self.probe_lease,
        }
        for name, value in durations.items():
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


class Status(enum.StrEnum):
    """What the router may do with a (account, model) pair now."""

    ELIGIBLE = "eligible"
    """Nothing blocks it: try it."""
    BLOCKED = "blocked"
    """Do not try it before `Verdict.until`."""
    PROBE_DUE = "probe_due"
    """Blocked, but a probe is due: whoever wins `CooldownBook.claim_probe` may probe."""


@dataclass(frozen=True)
class Verdict:
    """The book's answer for one pair.

    Attributes:
        status: see `Status`.
        until: for BLOCKED, the earliest time the pair may be tried or probed (may be
            `math.inf`). For PROBE_DUE, the latest time the pair stays blocked if another
            caller wins the probe (check + probe lease): a caller that loses `claim_probe`
            may treat the pair as blocked until then, or simply `check` again, which then
            answers BLOCKED with the winner's lease. For ELIGIBLE, the time of the check.
        kind: the kind of the cooldown that decides (None when eligible).
        reason: that cooldown's reason (empty when eligible).
        cooldown: the deciding record; for PROBE_DUE, the one to pass to `claim_probe`.
        claim: for PROBE_DUE, when the verdict was asked for by a caller that may probe (see
            `CooldownBook.judge`): the probe a store's `acquire` claims for it.
    """

    status: Status
    until: float
    kind: FailureKind | None = None
    reason: str = ""
    cooldown: Cooldown | None = None
    claim: CooldownKey | None = field(default=None, compare=False, repr=False)

    @property
    def take_slot(self) -> bool:
        """The pair may be tried, or this is its probe by a request (MODEL_DOWN); an account's
        probe is a check of ``/metering/usage`` or ``/whoami``, which takes no slot."""
        return self.status is Status.ELIGIBLE or (self.claim is not None and self.kind not in _CHECKED_LATER)

    @property
    def claim_until(self) -> float:
        """A claimed probe keeps others off until the verdict's `until` (check + probe lease)."""
        return self.until

    @property
    def eligible(self) -> bool:
        return self.status is Status.ELIGIBLE

    @property
    def probe_due(self) -> bool:
        return self.status is Status.PROBE_DUE

    @property
    def probe_kind(self) -> FailureKind | None:
        """MODEL_DOWN (send one real request), OUT_OF_CREDITS (check ``/metering/usage``), AUTH
        or EMAIL_UNCONFIRMED (check ``/whoami``)."""
        return self.kind if self.status is Status.PROBE_DUE else None


def _free_at(cooldown: Cooldown) -> float:
    """When a cooldown stops standing in the way: its end, or for a probed one, when its probe
    is due (or when the current prober's lease runs out)."""
    if cooldown.probe_at is None:
        return cooldown.until
    claimed = cooldown.probe_claimed_until or -math.inf
    return min(cooldown.until, max(cooldown.probe_at, claimed))


def verdict_of(
    cooldowns: Sequence[Cooldown], *, now: float, probe_lease: float, claim_probes: bool = False
) -> Verdict:
    """May a pair be tried now, given the cooldowns that apply to it? See `Verdict`.

    A pair blocked by several cooldowns is free only when all have lifted, so the one that lifts
    last decides. When every cooldown that applies is waiting for a probe, the verdict is
    PROBE_DUE with the account's probe first (the credit check must pass before a request on
    this account can probe anything else); with `claim_probes`, it names that probe to claim.
    """
    active = [c for c in cooldowns if c.active(now)]
    if not active:
        return Verdict(Status.ELIGIBLE, now)
    deciding = max(active, key=lambda c: (_free_at(c), _SEVERITY[c.kind]))
    free_at = _free_at(deciding)
    if free_at > now:
        return Verdict(Status.BLOCKED, free_at, deciding.kind, deciding.reason, deciding)
    probe = min(active, key=lambda c: (c.scope is not Scope.ACCOUNT, -_SEVERITY[c.kind]))
    claim = probe.key if claim_probes else None
    return Verdict(Status.PROBE_DUE, now + probe_lease, probe.kind, probe.reason, probe, claim)


class CooldownBook:
    """Records failures and successes and says which pairs may be tried.

    Args:
        store: where the records live (shared between processes for SQLite).
        policy: the durations.
        clock: wall-clock epoch seconds; injectable for tests.
        rng: for the MODEL_DOWN jitter; injectable for tests.
    """

    def __init__(
        self,
        store: StateStore,
        policy: CooldownPolicy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or CooldownPolicy()
        self._clock = clock
        self._rng = rng or random.Random()

    # -- changes (pure: the router applies them in the store's own steps) -------------------

    def failure_changes(
        self,
        kind: FailureKind,
        *,
        account: str,
        model: str,
        reason: str = "",
        started_at: float | None = None,
    ) -> list[tuple[CooldownKey, CooldownChange]]:
        """The change a failed attempt on (account, model) calls for (see `record_failure`)."""
        scope = scope_of(kind)
        if scope is None:
            return []
        now = self._clock()
        key = _key(scope, kind, account, model)
        reason = reason or _default_reason(kind)
        if kind is FailureKind.RATE_LIMITED:
            return [(key, lambda old: self._rate_limited(key, old, now, reason, started_at))]
        fresh = self._fresh(key, now, reason)
        return [(key, lambda old: _merge(old, fresh, now))]

    def success_changes(
        self, *, account: str, model: str, started_at: float | None = None
    ) -> list[tuple[CooldownKey, CooldownChange]]:
        """The changes a successful attempt calls for (see `record_success`). Each leaves an
        absent record absent, so a store writes nothing for the usual success."""
        now = self._clock()

        def newer(cooldown: Cooldown) -> bool:
            return started_at is not None and started_at < cooldown.since

        def reset_escalation(old: Cooldown | None) -> Cooldown | None:
            if old is None or newer(old):
                return old
            return replace(old, level=0) if old.active(now) else None

        def end(old: Cooldown | None) -> Cooldown | None:
            return old if old is None or newer(old) else None

        return [
            (_key(Scope.ACCOUNT, FailureKind.RATE_LIMITED, account, model), reset_escalation),
            (_key(Scope.MODEL, FailureKind.MODEL_DOWN, account, model), end),
            (_key(Scope.ACCOUNT_MODEL, FailureKind.TRANSPORT, account, model), end),
        ]

    def credit_changes(self, account: str, has_credit: bool) -> list[tuple[CooldownKey, CooldownChange]]:
        """The change a ``/metering/usage`` check calls for (see `credit_checked`)."""
        key = _key(Scope.ACCOUNT, FailureKind.OUT_OF_CREDITS, account, None)
        if has_credit:
            return [(key, _gone)]
        now = self._clock()
        fresh = self._fresh(key, now, _default_reason(FailureKind.OUT_OF_CREDITS))
        return [(key, lambda old: _merge(old, fresh, now, push_probe=True))]

    def account_changes(
        self, account: str, found: FailureKind | None, *, reason: str = ""
    ) -> list[tuple[CooldownKey, CooldownChange]]:
        """The changes a ``/whoami`` check calls for (see `account_checked`)."""
        if found is None:
            return [(_key(Scope.ACCOUNT, k, account, None), _gone) for k in _ACCOUNT_REFUSALS]
        now = self._clock()
        key = _key(Scope.ACCOUNT, found, account, None)
        fresh = self._fresh(key, now, reason or _default_reason(found))
        return [(key, lambda old: _merge(old, fresh, now, push_probe=True))]

    def unaffordable_changes(
        self, *, account: str, model: str, reason: str = ""
    ) -> list[tuple[CooldownKey, CooldownChange]]:
        """The change a refusal for want of credit calls for when the account has credit left
        (see `record_unaffordable`)."""
        now = self._clock()
        key = CooldownKey(Scope.ACCOUNT_MODEL, account, model, FailureKind.OUT_OF_CREDITS)
        fresh = Cooldown(
            *key,
            until=now + self.policy.credit_recheck,
            reason=reason or "this account's credit left does not cover this model's request",
            since=now,
        )
        return [(key, lambda old: _merge(old, fresh, now))]

    @staticmethod
    def probe_release(cooldown: Cooldown) -> list[tuple[CooldownKey, CooldownChange]]:
        """The change that gives a claimed probe back (see `release_probe`)."""
        return [(cooldown.key, lambda old: None if old is None else replace(old, probe_claimed_until=None))]

    def judge(self, *, claim_probes: bool = True) -> Callable[[list[Cooldown]], Verdict]:
        """The verdict rule as of now, for a store's `acquire` (see `verdict_of`)."""
        now = self._clock()
        lease = self.policy.probe_lease
        return lambda cooldowns: verdict_of(cooldowns, now=now, probe_lease=lease, claim_probes=claim_probes)

    # -- recording -------------------------------------------------------------------------

    async def _apply(self, changes: CooldownChanges) -> Cooldown | None:
        results = await self.store.update_cooldowns(changes) if changes else []
        return results[-1] if results else None

    async def record_failure(
        self,
        kind: FailureKind,
        *,
        account: str,
        model: str,
        reason: str = "",
        started_at: float | None = None,
    ) -> Cooldown | None:
        """Record a failed attempt on (account, model); return the resulting cooldown.

        Args:
            started_at: when the failed request was sent. A RATE_LIMITED answer to a request
                sent before the account's current rate-limit episode began belongs to that
                episode and does not escalate it again (a burst of concurrent requests
                refused together is one rate limit, not five). None: always escalate.

        Returns:
            The stored record after merging (None for kinds that leave no cooldown).
        """
        changes = self.failure_changes(
            kind, account=account, model=model, reason=reason, started_at=started_at
        )
        return await self._apply(changes)

    async def record_success(self, *, account: str, model: str, started_at: float | None = None) -> None:
        """Record a successful attempt: reset the account's escalation and end the model's
        MODEL_DOWN and the pair's TRANSPORT cooldowns (this success was, or proves, a probe).

        A rate limit that is still running is not lifted, only its escalation: the success
        shows the account works, not that its window has room. With `started_at`, cooldowns
        that began after the request was sent are left alone: they are newer news.
        """
        await self._apply(self.success_changes(account=account, model=model, started_at=started_at))

    async def credit_checked(self, account: str, has_credit: bool) -> None:
        """Record the result of a ``/metering/usage`` check (after winning its probe).

        With credit, the OUT_OF_CREDITS cooldown ends; without, the next check is pushed
        `credit_recheck` seconds on (and the cooldown is created if there was none).
        """
        await self._apply(self.credit_changes(account, has_credit))

    async def account_checked(self, account: str, found: FailureKind | None, *, reason: str = "") -> None:
        """Record the result of a ``/whoami`` check (after a refusal, or winning its probe).

        `found` is what the check showed: None (the token works and the account may call), AUTH
        (the token is refused) or EMAIL_UNCONFIRMED. None ends both account-level refusals; a
        kind records (or keeps) its cooldown with the next check `credit_recheck` seconds on.
        """
        await self._apply(self.account_changes(account, found, reason=reason))

    async def record_unaffordable(self, *, account: str, model: str, reason: str = "") -> Cooldown | None:
        """A request was refused for want of credit, but the account has credit left: block only
        this model on this account (its requests cost more than what is left) for a while."""
        return await self._apply(self.unaffordable_changes(account=account, model=model, reason=reason))

    def probing(self, cooldown: Cooldown) -> bool:
        """Whether someone is probing this cooldown now (its result is moments away)."""
        now = self._clock()
        return (
            cooldown.probe_at is not None
            and cooldown.probe_at <= now
            and cooldown.probe_claimed_until is not None
            and cooldown.probe_claimed_until > now
        )

    async def signed_in(self, account: str) -> None:
        """The account signed in again: forget everything recorded against it (its token was
        the cause of AUTH, and its subscription or credit may have changed too)."""
        mine = [c.key for c in await self.store.list_cooldowns() if c.account == account]
        await self._apply([(key, _gone) for key in mine])

    # -- asking ----------------------------------------------------------------------------

    async def check(self, *, account: str, model: str) -> Verdict:
        """May (account, model) be tried now? See `verdict_of`."""
        now = self._clock()
        cooldowns = await self.store.cooldowns_for(account, model)
        return verdict_of(cooldowns, now=now, probe_lease=self.policy.probe_lease)

    async def claim_probe(self, cooldown: Cooldown) -> bool:
        """Try to become the one caller that probes this cooldown (atomic across processes).

        The winner probes and records the outcome (`record_success` / `record_failure` for
        MODEL_DOWN, `credit_checked` for OUT_OF_CREDITS); losers see the pair blocked until
        the winner's lease (`CooldownPolicy.probe_lease`) runs out.
        """
        now = self._clock()
        return await self.store.claim_probe(cooldown.key, now=now, lease_until=now + self.policy.probe_lease)

    async def release_probe(self, cooldown: Cooldown) -> None:
        """Give a claimed probe back when it proved nothing (e.g. the probing request failed
        for another reason), so that another caller may probe at once."""
        await self.store.release_probe(cooldown.key)

    async def snapshot(self) -> list[Cooldown]:
        """The cooldowns in force now, soonest to end first, for status displays."""
        now = self._clock()
        active = [c for c in await self.store.list_cooldowns() if c.active(now)]
        return sorted(active, key=lambda c: (_free_at(c), c.scope.value, c.account or "", c.model or ""))

    # -- building records ------------------------------------------------------------------

    def _fresh(self, key: CooldownKey, now: float, reason: str) -> Cooldown:
        """A new record for a non-escalating kind, as if nothing had been recorded before."""
        policy = self.policy
        until: float
        probe_at: float | None = None
        if key.kind is FailureKind.MODEL_DOWN:
            until, probe_at = math.inf, now + self._rng.uniform(*policy.model_down)
        elif key.kind in _CHECKED_LATER:
            until, probe_at = math.inf, now + policy.credit_recheck
        elif key.kind is FailureKind.MODEL_FORBIDDEN:
            until = now + policy.model_forbidden
        else:
            until = now + policy.transport
        return Cooldown(*key, until=until, probe_at=probe_at, reason=reason, since=now)

    def _rate_limited(
        self, key: CooldownKey, old: Cooldown | None, now: float, reason: str, started_at: float | None
    ) -> Cooldown:
        steps = self.policy.rate_limited_steps
        remembered = old is not None and old.until + self.policy.rate_limited_memory > now
        level = old.level if old is not None and remembered else 0
        if old is not None and old.active(now) and started_at is not None and started_at < old.since:
            # A request sent before this episode began: same episode, no new step; it still
            # shows the account is saturated now, so the current step may run from now.
            step = steps[min(max(level - 1, 0), len(steps) - 1)]
            return replace(old, until=max(old.until, now + step), reason=reason)
        step = steps[min(level, len(steps) - 1)]
        until = now + step
        since = now
        if old is not None and old.active(now):
            until = max(until, old.until)  # never shorten
            since = old.since if started_at is None else now
        return Cooldown(*key, until=until, level=level + 1, reason=reason, since=since)


def _merge(old: Cooldown | None, fresh: Cooldown, now: float, *, push_probe: bool = False) -> Cooldown:
    """Combine a new failure with the record already there, never shortening it.

    The later end wins. A probe time only moves later (the latest news says the cause is
    still there), and when it moves, any claim on the old probe is void: its prober has
    reported. `push_probe` moves the probe to the fresh time even if that is earlier (a
    finished credit check schedules the next one from now).
    """
    if old is None or not old.active(now):
        return fresh
    probe_at = old.probe_at
    claimed = old.probe_claimed_until
    if fresh.probe_at is not None and (probe_at is None or push_probe or fresh.probe_at > probe_at):
        probe_at, claimed = fresh.probe_at, None
    return replace(
        old,
        until=max(old.until, fresh.until),
        probe_at=probe_at,
        probe_claimed_until=claimed,
        reason=fresh.reason or old.reason,
    )


def _gone(old: Cooldown | None) -> Cooldown | None:
    """The change that deletes a record."""
    return None


def _key(scope: Scope, kind: FailureKind, account: str | None, model: str | None) -> CooldownKey:
    return CooldownKey(
        scope,
        account if scope is not Scope.MODEL else None,
        model if scope is not Scope.ACCOUNT else None,
        kind,
    )


def _default_reason(kind: FailureKind) -> str:
    return {
        FailureKind.RATE_LIMITED: "Puter rate-limited this account",
        FailureKind.OUT_OF_CREDITS: "this account has no AI credit left",
        FailureKind.AUTH: "this account must sign in again",
        FailureKind.EMAIL_UNCONFIRMED: "this account's e-mail address is not confirmed",
        FailureKind.MODEL_DOWN: "the model's providers are failing",
        FailureKind.MODEL_FORBIDDEN: "this model is for paying subscribers",
        FailureKind.TRANSPORT: "the connection to Puter failed",
    }.get(kind, kind.value)
