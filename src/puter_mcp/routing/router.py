"""Run one request over (model, account) candidates under a deadline and an attempt budget.

The rules (docs/architecture.md, "Rules the router keeps"):

- A candidate is a (model, account) pair: the models of the requested chain, in order, times the
  usable accounts, ordered by the configured strategy.
- A failure puts a cooldown on the scope its kind names (an account, a model, or the pair), so
  the next selection moves on by itself: an account-scoped failure keeps the model and takes the
  next account, a model-scoped one takes the next model. There are no special cases per kind
  beyond `BAD_REQUEST` (stop: nobody else will answer differently) and `MODEL_UNKNOWN` (forget
  the model for this process).
- Never sleep while an eligible candidate exists. When none is eligible, fail at once saying when
  the first frees up, or wait for it only if that fits the deadline and the configured maximum
  wait. Waiting for a pacing slot (every account of the model at its in-flight or per-window cap)
  is queueing, not failing: the request keeps its model and waits for the first free slot.
- Replay after output only where the caller delivers the result whole (`puter-chat`); a
  streaming gateway passes ``replay_after_output=False``.

- One refusal does not take an account out by itself: a 401 is confirmed with `check_account`
  (``/whoami``) and a 402 with `check_credit` (``/metering/usage``) before the account is
  blocked; a token ``/whoami`` accepts, or an account with credit left, only loses that model for
  a while (docs/failures.md).
- A call that finds a probe or a re-check in progress waits for its result rather than failing
  with the prober's lease as its retry time.

Each candidate costs the shared store two steps: `StateStore.acquire` (the cooldown check, a
probe claim when one is due, the pacing slot) and `StateStore.settle` (the slot given back with
the cooldown change the answer calls for). Each attempt is reported to the router's hooks (as
stamina reports retries to its instrumentation): the store's attempt log is one, registered
where the router is built; the router writes no attempt record itself.

Nothing here does I/O of its own: the request is the `send` callable, the credit check the
`check_credit` callable and the token check the `check_account` callable, so the router can be
tested with plain functions.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

import anyio

from puter_mcp.puter.errors import FailureKind, PuterError
from puter_mcp.routing.cooldowns import Cooldown, CooldownBook, Verdict
from puter_mcp.routing.pacing import Pacer, PacingLimits, Slot, Tier
from puter_mcp.routing.state import (
    Admitted,
    Attempt,
    CooldownChange,
    CooldownChanges,
    CooldownKey,
    SlotRefusal,
    StateStore,
)

__all__ = [
    "NOT_FAILURES",
    "AccountRef",
    "AttemptHook",
    "AttemptLog",
    "Routed",
    "Router",
    "RoutingFailed",
    "Strategy",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")
Strategy = Literal["round-robin", "least-recently-used", "fill-first"]


@dataclass(frozen=True)
class AccountRef:
    """An account as the router sees it: a stable id for shared state, a display name, a token."""

    id: str
    name: str
    token: str = field(repr=False)
    limits: PacingLimits
    tier: Tier = Tier.UNKNOWN
    """As far as known: a free or temporary account is not sent subscriber-only models."""


@dataclass(frozen=True)
class AttemptLog:
    """One upstream request made for a call (or one wait between them)."""

    model: str
    account: str
    outcome: str
    """``"ok"``, a `FailureKind` value, or one of `NOT_FAILURES` (a wait, a check)."""
    ms: float
    message: str = ""


@dataclass(frozen=True)
class Routed(Generic[T]):
    """A successful call: what `send` returned and how it was reached."""

    value: T
    model: str
    account: AccountRef
    attempts: list[AttemptLog]
    waited_s: float
    passed_over: dict[str, list[str]] = field(default_factory=dict)
    """Models ahead of `model` that the last pick skipped without a request (cooling down, or
    unknown to Puter), each with the failure kinds why: so that an answer from another model
    can say why the one named did not answer even when no request was made to it."""


class RoutingFailed(Exception):
    """No candidate answered. The message says what was tried and when to try again."""

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind | None,
        attempts: list[AttemptLog],
        retry_at: float | None = None,
        partial_text: str = "",
        error: PuterError | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.attempts = attempts
        self.retry_at = retry_at
        self.partial_text = partial_text
        self.error = error


@dataclass
class _Blocked:
    """Why nothing could be picked right now."""

    until: float = math.inf  # earliest end of a cooldown (or its next probe): when to retry
    wait_until: float = math.inf  # the same, among cooldowns worth waiting for (see `_WAITABLE`)
    reasons: list[str] = field(default_factory=list)
    kinds: set[FailureKind] = field(default_factory=set)  # of the cooldowns that block
    passed_over: dict[str, set[str]] = field(default_factory=dict)  # model -> kinds that skipped it
    pacing_wait: float | None = None  # seconds until a paced (not cooling) account has a slot
    probing_until: float | None = None  # a blocking cooldown is being probed now, until at most


@dataclass
class _Pick:
    model: str
    account: AccountRef
    slot: Slot
    probe: Cooldown | None = None  # set when this request is the one allowed to probe a model
    passed_over: dict[str, set[str]] = field(default_factory=dict)


# Cooldowns that end with time. An empty account's next credit check, or an account that must
# sign in again, will most likely find nothing changed: waiting for those only burns the deadline.
_WAITABLE = frozenset(
    {FailureKind.RATE_LIMITED, FailureKind.MODEL_DOWN, FailureKind.TRANSPORT, FailureKind.MODEL_FORBIDDEN}
)

AttemptHook = Callable[[Attempt], None]
"""Told of every attempt as it ends (success or failure). It must not block: a hook that has
I/O to do queues it (the store's attempt log writes with the slot's release)."""

Send = Callable[[str, AccountRef], Awaitable[T]]
CheckCredit = Callable[[AccountRef], Awaitable[bool]]
CheckAccount = Callable[[AccountRef], Awaitable[FailureKind | None]]
"""``/whoami`` for an account: None when its token works and it may call, else AUTH (refused)
or EMAIL_UNCONFIRMED; raises `PuterError` when the check itself failed."""


class _Wakeup:
    """Wakes the tasks waiting when it fires. Like re-arming an `anyio.Event` at each firing,
    but the event is made only once someone waits: most firings (a slot given back after each
    call) find nobody waiting, and a new event costs each call a lookup of the running loop."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    async def wait(self) -> None:
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()

    def fire(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None


# Account-level refusals that a `CheckAccount` confirms or lifts.
_ACCOUNT_CHECKED = frozenset({FailureKind.AUTH, FailureKind.EMAIL_UNCONFIRMED})
_PROBE_POLL = 0.05  # how often a call waiting for another process's probe looks again
# Tiers Puter refuses subscriber-only models to (403); an unknown tier is still tried.
_NOT_SUBSCRIBED = frozenset({Tier.FREE, Tier.TEMP})


class Router:
    """Chooses candidates and keeps the cooldown, pacing and attempt records up to date.

    Args:
        book: the cooldown book (shared state).
        pacer: per-account request pacing (shared state).
        store: the shared state the book and the pacer use (their steps are combined here).
        strategy: how accounts are ordered for a model.
        max_attempts: upstream requests one call may make at most.
        deadline: seconds one call may take in all.
        max_wait: longest wait for a cooling candidate before failing instead.
        clock: wall-clock seconds (shared with other processes through the store).
        sleep: injectable for tests.
        hooks: told of every attempt (see `AttemptHook`, `add_hook`).
    """

    def __init__(
        self,
        *,
        book: CooldownBook,
        pacer: Pacer,
        store: StateStore,
        strategy: Strategy = "round-robin",
        max_attempts: int = 6,
        deadline: float = 180.0,
        max_wait: float = 15.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        hooks: Sequence[AttemptHook] = (),
    ) -> None:
        self.book = book
        self.pacer = pacer
        self.store = store
        self.strategy: Strategy = strategy
        self.max_attempts = max_attempts
        self.deadline = deadline
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._hooks: list[AttemptHook] = list(hooks)
        self._round_robin = 0
        self._unknown_models: set[str] = set()
        # Set whenever this process gives a pacing slot back, so queued requests wake at once
        # instead of polling; other processes' releases are seen when the wait hint runs out.
        self._slot_freed = _Wakeup()
        # Set whenever this process finishes a probe or a re-check (same idea, for probes).
        self._probe_done = _Wakeup()

    # -- selection -------------------------------------------------------------------------

    def add_hook(self, hook: AttemptHook) -> None:
        """Tell `hook` of every attempt from now on."""
        self._hooks.append(hook)

    def _report(self, attempt: Attempt) -> None:
        for hook in self._hooks:
            try:
                hook(attempt)
            except Exception:
                # Statistics must never cost an answer.
                _log.exception("an attempt hook failed")

    async def order_accounts(self, accounts: Sequence[AccountRef]) -> list[AccountRef]:
        """Accounts in the order this request tries them, by strategy."""
        if len(accounts) <= 1 or self.strategy == "fill-first":
            return list(accounts)
        if self.strategy == "least-recently-used":
            last_used: Mapping[str, float] = await self.store.last_used()
            return sorted(accounts, key=lambda account: last_used.get(account.id, 0.0))
        start = self._round_robin % len(accounts)
        self._round_robin += 1
        return [*accounts[start:], *accounts[:start]]

    async def _pick(
        self,
        models: Sequence[str],
        accounts: Sequence[AccountRef],
        check_credit: CheckCredit | None,
        log: list[AttemptLog],
        deadline: float,
        check_account: CheckAccount | None = None,
        subscriber_only: Collection[str] = (),
    ) -> _Pick | _Blocked:
        blocked = _Blocked()
        ordered = accounts  # already in this call's order (see `route`)
        for model in models:
            if model in self._unknown_models:
                blocked.passed_over.setdefault(model, set()).add(FailureKind.MODEL_UNKNOWN.value)
                continue
            paced_here: float | None = None
            for account in ordered:
                if model in subscriber_only and account.tier in _NOT_SUBSCRIBED:
                    # Puter would answer 403: no request to learn what the tier already says.
                    kind = FailureKind.MODEL_FORBIDDEN
                    blocked.reasons.append(f"{model} on {account.name}: only for paying subscribers")
                    blocked.kinds.add(kind)
                    blocked.passed_over.setdefault(model, set()).add(kind.value)
                    continue
                admitted, asked_at = await self._admit(account, model)
                verdict = admitted.decision
                probe: Cooldown | None = None
                if admitted.claimed and verdict.cooldown is not None:
                    if verdict.probe_kind is FailureKind.OUT_OF_CREDITS:
                        await self._recheck_credit(account, verdict.cooldown, check_credit, log, deadline)
                        admitted, asked_at = await self._admit(account, model, claim_probes=False)
                    elif verdict.probe_kind in _ACCOUNT_CHECKED:
                        await self._recheck_account(account, verdict.cooldown, check_account, log, deadline)
                        # Ask the book again: with credit back the pair may be free (or blocked
                        # by something else); without, it is blocked until the next check, and
                        # that time must reach the caller as the moment to retry.
                        admitted, asked_at = await self._admit(account, model, claim_probes=False)
                    else:
                        probe = verdict.cooldown  # this request is the one allowed through
                    verdict = admitted.decision
                slot = admitted.slot
                if isinstance(slot, Slot):
                    return _Pick(model, account, slot, probe, blocked.passed_over)
                if isinstance(slot, SlotRefusal):
                    # The store claims a probe only with a slot: nothing to give back here.
                    wait = self.pacer.wait_hint(slot, asked_at)
                    paced_here = wait if paced_here is None else min(paced_here, wait)
                    continue
                if verdict.cooldown is not None and self.book.probing(verdict.cooldown):
                    # Someone is finding out right now: its answer is worth waiting for.
                    end = verdict.until
                    blocked.probing_until = min(blocked.probing_until or end, end)
                blocked.until = min(blocked.until, verdict.until)
                if verdict.kind in _WAITABLE:
                    blocked.wait_until = min(blocked.wait_until, verdict.until)
                blocked.reasons.append(f"{model} on {account.name}: {verdict.reason or verdict.kind}")
                if verdict.kind is not None:
                    blocked.kinds.add(verdict.kind)
                    blocked.passed_over.setdefault(model, set()).add(verdict.kind.value)
            if paced_here is not None:
                # Every usable account of the preferred model is at its cap: queue for it
                # rather than hand the request to a worse model.
                blocked.pacing_wait = paced_here
                return blocked
        return blocked

    async def _admit(
        self, account: AccountRef, model: str, *, claim_probes: bool = True
    ) -> tuple[Admitted[Verdict], float]:
        """The store's first step for a candidate: the cooldown check, a due probe claimed (if
        `claim_probes`) and a pacing slot, at once. Also returns when it was asked."""
        request = self.pacer.slot_request(account.id, account.limits)
        judge = self.book.judge(claim_probes=claim_probes)
        return await self.store.acquire(account.id, model, judge=judge, slot=request), request.now

    async def _give_back(self, slot: Slot, *, counted: bool, changes: CooldownChanges = ()) -> None:
        """The store's second step: the slot given back with the cooldown changes (and the
        attempt records the hooks logged). Shielded: it must happen even when the call is
        being cancelled, or the account would keep a place in flight until the lease ends."""
        with anyio.CancelScope(shield=True):
            await self.store.settle(
                slot.id, now=self.pacer.release_time(counted=counted), counted=counted, changes=changes
            )
        self._slot_freed.fire()

    async def _recheck_credit(
        self,
        account: AccountRef,
        claimed: Cooldown,
        check_credit: CheckCredit | None,
        log: list[AttemptLog],
        deadline: float,
    ) -> bool:
        if check_credit is None:
            await self.book.release_probe(claimed)
            return False
        started = time.monotonic()
        has_credit = False
        message = ""
        # The check belongs to the call, so it must fit in what is left of its deadline.
        with anyio.move_on_after(max(deadline - self._clock(), 0.0)) as scope:
            try:
                has_credit = await check_credit(account)
            except PuterError as exc:
                message = exc.message
            else:
                message = "credit is back" if has_credit else "still out of credits"
        if scope.cancelled_caught:
            # It proved nothing: let the next call check at once rather than in five minutes.
            await self.book.release_probe(claimed)
            message = "the credit check did not finish before the call's deadline"
        else:
            await self.book.credit_checked(account.id, has_credit)
        self._probe_finished()
        log.append(
            AttemptLog("-", account.name, "credit-check", (time.monotonic() - started) * 1000, message)
        )
        return has_credit

    async def _recheck_account(
        self,
        account: AccountRef,
        claimed: Cooldown,
        check_account: CheckAccount | None,
        log: list[AttemptLog],
        deadline: float,
    ) -> None:
        """The probe of a signed-out or unconfirmed account: ask ``/whoami`` whether it works."""
        if check_account is None:
            await self.book.release_probe(claimed)
            return
        started = time.monotonic()
        found = await self._check_account_now(account, check_account, deadline)
        if found is _UNKNOWN:
            await self.book.release_probe(claimed)
            message = "the account check did not give an answer"
        else:
            assert not isinstance(found, _Unknown)
            await self.book.account_checked(account.id, found)
            message = "the token works again" if found is None else f"still {found.value}"
        self._probe_finished()
        log.append(
            AttemptLog("-", account.name, "account-check", (time.monotonic() - started) * 1000, message)
        )

    async def _check_account_now(
        self, account: AccountRef, check_account: CheckAccount, deadline: float
    ) -> FailureKind | _Unknown | None:
        with anyio.move_on_after(max(deadline - self._clock(), 0.0)):
            try:
                return await check_account(account)
            except PuterError:
                return _UNKNOWN
        return _UNKNOWN

    async def _check_credit_now(
        self, account: AccountRef, check_credit: CheckCredit, deadline: float
    ) -> bool | None:
        with anyio.move_on_after(max(deadline - self._clock(), 0.0)):
            try:
                return await check_credit(account)
            except PuterError:
                return None
        return None

    def _probe_finished(self) -> None:
        self._probe_done.fire()

    async def _wait_for_probe(self, until: float, deadline: float) -> float:
        """Wait for a probe in progress: this process's probes wake us at once, another
        process's are seen by looking again every `_PROBE_POLL` seconds."""
        longest = min(until, deadline) - self._clock()
        if longest <= 0:
            return 0.0
        started = time.monotonic()
        with anyio.move_on_after(min(longest, _PROBE_POLL)):
            await self._probe_done.wait()
        return time.monotonic() - started

    # -- the loop --------------------------------------------------------------------------

    async def route(
        self,
        models: Sequence[str],
        accounts: Sequence[AccountRef],
        send: Send[T],
        *,
        check_credit: CheckCredit | None = None,
        check_account: CheckAccount | None = None,
        replay_after_output: bool = True,
        on_success: Callable[[T], Mapping[str, float | int | None]] | None = None,
        request_id: str = "",
        subscriber_only: Collection[str] = (),
    ) -> Routed[T]:
        """Send the request to the first candidate that answers.

        `subscriber_only`: the models (of `models`) that only paying subscribers may use; they
        are not tried on accounts known to be free or temporary.

        Raises:
            RoutingFailed: every candidate failed, or is cooling down beyond the allowed wait, or
                the request itself was refused (`BAD_REQUEST`), or the deadline passed.
        """
        if not accounts:
            raise RoutingFailed(
                "no Puter account is signed in",
                kind=FailureKind.AUTH,
                attempts=[],
            )
        started = self._clock()
        deadline = started + self.deadline
        # The accounts are ordered once per call: round-robin then moves on once per call,
        # however many retries the call needs.
        ordered = await self.order_accounts(accounts)
        log: list[AttemptLog] = []
        waited = 0.0
        probe_waited = 0.0
        partial = ""
        last_error: PuterError | None = None
        upstream = 0
        while upstream < self.max_attempts:
            pick = await self._pick(
                models, ordered, check_credit, log, deadline, check_account, subscriber_only
            )
            if isinstance(pick, _Blocked):
                now = self._clock()
                if pick.pacing_wait is not None:
                    wait = min(pick.pacing_wait, deadline - now)
                    if wait <= 0:
                        raise self._failure(
                            "every account is at its request limit", log, last_error, partial, now
                        )
                    waited += await self._wait_for_slot(wait)
                    continue
                if pick.probing_until is not None and now < deadline and probe_waited < self.max_wait:
                    # Bounded in real time too: a prober in another process may have died.
                    spent = await self._wait_for_probe(pick.probing_until, deadline)
                    probe_waited += spent
                    waited += spent
                    continue
                # Without a failure of its own, this call reports the kind that blocks every
                # candidate (when they agree), so the caller can still say what to do about it.
                blocked_kind = next(iter(pick.kinds)) if len(pick.kinds) == 1 else None
                if pick.until == math.inf or not pick.reasons:
                    raise self._failure(
                        self._nothing_left(models, pick), log, last_error, partial, None, blocked_kind
                    )
                wait = pick.wait_until - now
                if wait <= self.max_wait and pick.wait_until <= deadline:
                    log.append(AttemptLog("-", "-", "wait", wait * 1000, "; ".join(pick.reasons[:3])))
                    await self._sleep(max(wait, 0.0))
                    waited += max(wait, 0.0)
                    continue
                raise self._failure(
                    "every candidate is cooling down: " + "; ".join(pick.reasons[:4]),
                    log,
                    last_error,
                    partial,
                    pick.until,
                    blocked_kind,
                )
            upstream += 1
            model, account = pick.model, pick.account
            sent_at = self._clock()
            attempt_started = time.monotonic()
            counted = True
            answered = False  # Puter answered (well or not), rather than the call being cut off
            settled = False  # the slot was given back
            try:
                with anyio.fail_after(max(deadline - self._clock(), 0.001)):
                    value = await send(model, account)
                answered = True
                elapsed = (time.monotonic() - attempt_started) * 1000
                stats = dict(on_success(value)) if on_success else {}
                self._report(
                    Attempt(
                        time=self._clock(),
                        account=account.id,
                        model=model,
                        kind=None,
                        latency_ms=elapsed,
                        ttft_ms=_float(stats.get("ttft_ms")),
                        input_tokens=_int(stats.get("input_tokens")),
                        output_tokens=_int(stats.get("output_tokens")),
                        cost_usd=_float(stats.get("cost_usd")),
                        request_id=request_id,
                    )
                )
                success = self.book.success_changes(account=account.id, model=model, started_at=sent_at)
                await self._give_back(pick.slot, counted=True, changes=success)
                settled = True
            except TimeoutError:
                raise self._failure(
                    f"the deadline of {self.deadline:g} s passed", log, last_error, partial, None
                ) from None
            except PuterError as error:
                answered = True
                elapsed = (time.monotonic() - attempt_started) * 1000
                counted = error.code != "too_many_requests"  # Puter does not count refused requests
                self._report(
                    Attempt(
                        time=self._clock(),
                        account=account.id,
                        model=model,
                        kind=error.kind,
                        latency_ms=elapsed,
                        request_id=request_id,
                    )
                )
                log.append(AttemptLog(model, account.name, error.kind.value, elapsed, error.message))
                changes = await self._failure_changes(
                    error, model, account, sent_at, check_credit, check_account, deadline, log
                )
                if pick.probe is not None and error.kind is not pick.probe.kind:
                    changes += self.book.probe_release(pick.probe)  # it proved nothing about the model
                await self._give_back(pick.slot, counted=counted, changes=changes)
                settled = True
                if pick.probe is not None:
                    self._probe_finished()
                last_error = error
                if error.partial_text:
                    partial = error.partial_text
                if error.kind is FailureKind.BAD_REQUEST:
                    raise self._failure(error.message, log, error, partial, None) from error
                if error.kind is FailureKind.MODEL_UNKNOWN:
                    self._unknown_models.add(model)
                if (error.partial_text or error.after_output) and not replay_after_output:
                    raise self._failure(
                        "the answer broke off after it had started: " + error.message,
                        log,
                        error,
                        partial,
                        None,
                    ) from error
                continue
            finally:
                if not settled:
                    # Cut off by the deadline or a cancellation: a probe proved nothing, so let
                    # the next request probe now rather than after the probe's lease.
                    cut_off = pick.probe is not None and not answered
                    release = self.book.probe_release(pick.probe) if cut_off and pick.probe else []
                    await self._give_back(pick.slot, counted=counted, changes=release)
            if pick.probe is not None:
                self._probe_finished()
            log.append(AttemptLog(model, account.name, "ok", elapsed))
            passed_over = {name: sorted(kinds) for name, kinds in pick.passed_over.items() if name != model}
            return Routed(value, model, account, log, waited, passed_over)
        raise self._failure(f"gave up after {upstream} attempts", log, last_error, partial, None)

    async def _wait_for_slot(self, longest: float) -> float:
        started = time.monotonic()
        with anyio.move_on_after(longest):
            await self._slot_freed.wait()
            # A released slot still occupies its place for a moment (see `Pacer.release`).
            await anyio.sleep(self.pacer.release_settle)
        return time.monotonic() - started

    async def _failure_changes(
        self,
        error: PuterError,
        model: str,
        account: AccountRef,
        sent_at: float,
        check_credit: CheckCredit | None,
        check_account: CheckAccount | None,
        deadline: float,
        log: list[AttemptLog],
    ) -> list[tuple[CooldownKey, CooldownChange]]:
        """The cooldown a failure calls for, after confirming an account-wide refusal.

        A 401 is not proof that the token is dead (a proxy, a deploy, a restart upstream can
        answer one): ``/whoami`` decides. A 402 for one costly request is not proof that the
        account is empty: ``/metering/usage`` decides. An answer that does not come leaves
        a short cooldown on the pair, as a broken connection would.
        """
        kind = error.kind
        reason = error.message
        book = self.book
        if kind is FailureKind.AUTH and check_account is not None:
            started = time.monotonic()
            found = await self._check_account_now(account, check_account, deadline)
            if found is _UNKNOWN or found is None:
                why = "the account check did not answer" if found is _UNKNOWN else "/whoami accepts the token"
                changes = book.failure_changes(
                    FailureKind.TRANSPORT,
                    account=account.id,
                    model=model,
                    reason=f"{reason} (once: {why})",
                    started_at=sent_at,
                )
                message = "the token works (/whoami accepts it)" if found is None else why
            else:
                assert not isinstance(found, _Unknown)
                changes = book.failure_changes(
                    found, account=account.id, model=model, reason=reason, started_at=sent_at
                )
                message = f"confirmed: {found.value}"
            log.append(
                AttemptLog("-", account.name, "account-check", (time.monotonic() - started) * 1000, message)
            )
            return changes
        if kind is FailureKind.OUT_OF_CREDITS and check_credit is not None:
            started = time.monotonic()
            has_credit = await self._check_credit_now(account, check_credit, deadline)
            if has_credit:
                changes = book.unaffordable_changes(account=account.id, model=model, reason=reason)
                message = "credit left: only this model is set aside on this account"
            else:
                changes = book.failure_changes(
                    kind, account=account.id, model=model, reason=reason, started_at=sent_at
                )
                if has_credit is False:
                    changes += book.credit_changes(account.id, False)
                message = "no credit left" if has_credit is False else "the credit check did not answer"
            log.append(
                AttemptLog("-", account.name, "credit-check", (time.monotonic() - started) * 1000, message)
            )
            return changes
        return book.failure_changes(kind, account=account.id, model=model, reason=reason, started_at=sent_at)

    def _nothing_left(self, models: Sequence[str], blocked: _Blocked) -> str:
        if all(model in self._unknown_models for model in models):
            return "Puter does not know " + ", ".join(models)
        if blocked.reasons:
            return "no candidate can be used now: " + "; ".join(blocked.reasons[:4])
        return "no candidate is left to try"

    def _failure(
        self,
        message: str,
        log: list[AttemptLog],
        error: PuterError | None,
        partial: str,
        retry_at: float | None,
        blocked_kind: FailureKind | None = None,
    ) -> RoutingFailed:
        return RoutingFailed(
            message,
            kind=error.kind if error else blocked_kind,
            attempts=log,
            retry_at=retry_at,
            partial_text=partial,
            error=error,
        )


NOT_FAILURES = frozenset({"ok", "wait", "credit-check", "account-check"})
"""Attempt outcomes that are not failures of a request."""


class _Unknown:
    """A check that gave no answer (it failed, or the deadline cut it)."""


_UNKNOWN = _Unknown()


def _float(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def _int(value: float | int | None) -> int | None:
    return None if value is None else int(value)
