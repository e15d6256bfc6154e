"""The cooldown book with an injected clock (no test sleeps), and a stateful hypothesis test
of cooldowns, pacing and a simple candidate selector against a reference model."""

from __future__ import annotations

import math
import random
import shutil
import tempfile
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import anyio
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from puter_mcp.puter.errors import FailureKind
from puter_mcp.routing.cooldowns import (
    Cooldown,
    CooldownBook,
    CooldownPolicy,
    Scope,
    Status,
    Verdict,
    scope_of,
)
from puter_mcp.routing.pacing import Pacer, PacingLimits, Slot
from puter_mcp.routing.state import CooldownKey, MemoryStateStore, SQLiteStateStore, StateStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
T = TypeVar("T")
K = FailureKind


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def book(store: StateStore, clock: Clock) -> CooldownBook:
    return CooldownBook(store, CooldownPolicy(), clock=clock, rng=random.Random(1))


def blocked_until(verdict: Verdict) -> float:
    assert verdict.status is Status.BLOCKED, verdict
    return verdict.until


# -- scopes and policy --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "scope"),
    [
        (K.RATE_LIMITED, Scope.ACCOUNT),
        (K.OUT_OF_CREDITS, Scope.ACCOUNT),
        (K.AUTH, Scope.ACCOUNT),
        (K.MODEL_DOWN, Scope.MODEL),
        (K.MODEL_FORBIDDEN, Scope.ACCOUNT_MODEL),
        (K.TRANSPORT, Scope.ACCOUNT_MODEL),
        (K.MODEL_UNKNOWN, None),
        (K.BAD_REQUEST, None),
    ],
)
def test_scopes_follow_the_failure_kinds_table(kind: FailureKind, scope: Scope | None) -> None:
    assert scope_of(kind) is scope


def test_every_failure_kind_has_a_decided_scope() -> None:
    assert {k for k in FailureKind if scope_of(k) is None} == {K.MODEL_UNKNOWN, K.BAD_REQUEST}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_limited_steps": ()},
        {"rate_limited_steps": (10.0, -1.0)},
        {"model_down": (60.0, 30.0)},
        {"transport": 0.0},
        {"probe_lease": -5.0},
    ],
)
def test_policy_refuses_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        CooldownPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [K.MODEL_UNKNOWN, K.BAD_REQUEST])
async def test_kinds_without_scope_leave_nothing(book: CooldownBook, kind: FailureKind) -> None:
    assert await book.record_failure(kind, account="a", model="m") is None
    assert await book.store.list_cooldowns() == []
    assert (await book.check(account="a", model="m")).eligible


# -- RATE_LIMITED -------------------------------------------------------------------------


async def test_rate_limit_escalates_on_repeats_even_after_expiry(book: CooldownBook, clock: Clock) -> None:
    durations = []
    for _ in range(7):
        cooldown = await book.record_failure(K.RATE_LIMITED, account="a", model="m")
        assert cooldown is not None
        durations.append(cooldown.until - clock.now)
        clock.now = cooldown.until + 1.0  # it expired before the next one
    assert durations == [10, 30, 60, 120, 300, 300, 300]


async def test_rate_limit_blocks_the_account_on_every_model_only(book: CooldownBook, clock: Clock) -> None:
    await book.record_failure(K.RATE_LIMITED, account="a", model="m", reason="Too many requests.")
    verdict = await book.check(account="a", model="other")
    assert (verdict.status, verdict.until, verdict.kind) == (Status.BLOCKED, T0 + 10, K.RATE_LIMITED)
    assert verdict.reason == "Too many requests."
    assert (await book.check(account="b", model="m")).eligible
    clock.now = T0 + 10
    assert (await book.check(account="a", model="m")).eligible


async def test_success_resets_escalation_but_not_a_running_rate_limit(
    book: CooldownBook, clock: Clock
) -> None:
    await book.record_failure(K.RATE_LIMITED, account="a", model="m")
    await book.record_failure(K.RATE_LIMITED, account="a", model="m")  # 30 s
    clock.now += 1
    await book.record_success(account="a", model="m")  # e.g. a request sent before the 429s
    assert blocked_until(await book.check(account="a", model="m")) == T0 + 30
    clock.now = T0 + 31
    again = await book.record_failure(K.RATE_LIMITED, account="a", model="m")
    assert again is not None
    assert (again.until, again.level) == (T0 + 41, 1)


async def test_success_after_expiry_forgets_the_record(book: CooldownBook, clock: Clock) -> None:
    await book.record_failure(K.RATE_LIMITED, account="a", model="m")
    clock.now += 11
    await book.record_success(account="a", model="m")
    assert await book.store.list_cooldowns() == []


async def test_rate_limit_escalation_is_forgotten_after_a_long_quiet_time(clock: Clock) -> None:
    policy = CooldownPolicy(rate_limited_memory=600.0)
    book = CooldownBook(MemoryStateStore(), policy, clock=clock)
    await book.record_failure(K.RATE_LIMITED, account="a", model="m")
    clock.now = T0 + 10 + 599
    second = await book.record_failure(K.RATE_LIMITED, account="a", model="m")
    assert second is not None
    assert second.level == 2
    clock.now = second.until + 600
    third = await book.record_failure(K.RATE_LIMITED, account="a", model="m")
    assert third is not None
    assert (third.level, third.until - clock.now) == (1, 10)


async def test_a_burst_refused_together_is_one_rate_limit(book: CooldownBook, clock: Clock) -> None:
    """Four requests sent at T0 and refused one after the other do not climb to 120 s."""
    for delay in (0.1, 0.2, 0.3, 0.4):
        clock.now = T0 + delay
        await book.record_failure(K.RATE_LIMITED, account="a", model="m", started_at=T0)
    (cooldown,) = await book.store.list_cooldowns()
    assert (cooldown.level, cooldown.until) == (1, T0 + 10.4)
    # A request sent after the episode began (from a process that had not seen it) escalates.
    clock.now = T0 + 1
    escalated = await book.record_failure(K.RATE_LIMITED, account="a", model="m", started_at=T0 + 0.5)
    assert escalated is not None
    assert (escalated.level, escalated.until) == (2, T0 + 31)


async def test_cooldown_is_never_shortened_by_a_later_shorter_one(book: CooldownBook, clock: Clock) -> None:
    for _ in range(4):
        await book.record_failure(K.RATE_LIMITED, account="a", model="m")  # 10+30+60+120: until T0+120
    await book.record_success(account="a", model="m")  # escalation back to the first step
    clock.now += 5
    merged = await book.record_failure(K.RATE_LIMITED, account="a", model="m")
    assert merged is not None
    assert merged.until == T0 + 120  # not T0 + 15
    await book.record_failure(K.TRANSPORT, account="a", model="m")
    clock.now += 10
    transport = await book.record_failure(K.TRANSPORT, account="a", model="m")
    assert transport is not None
    assert transport.until == T0 + 30


# -- MODEL_DOWN and probes ----------------------------------------------------------------


async def test_model_down_blocks_the_model_everywhere_until_one_probe(
    book: CooldownBook, clock: Clock
) -> None:
    down = await book.record_failure(K.MODEL_DOWN, account="a", model="m", reason="upstream 503")
    assert down is not None
    assert down.until == math.inf
    assert down.probe_at is not None
    assert T0 + 30 <= down.probe_at <= T0 + 60
    assert blocked_until(await book.check(account="b", model="m")) == down.probe_at
    assert (await book.check(account="b", model="n")).eligible
    clock.now = down.probe_at
    verdicts = [await book.check(account=acc, model="m") for acc in ("a", "b", "c")]
    assert all(v.status is Status.PROBE_DUE and v.probe_kind is K.MODEL_DOWN for v in verdicts)
    claims = [await book.claim_probe(v.cooldown) for v in verdicts if v.cooldown is not None]
    assert claims == [True, False, False]
    # The losers (and everyone else) see it blocked until the winner's lease runs out.
    assert blocked_until(await book.check(account="c", model="m")) == clock.now + 120
    clock.now += 2
    await book.record_success(account="a", model="m")
    assert (await book.check(account="c", model="m")).eligible


async def test_failed_probe_schedules_the_next_one(book: CooldownBook, clock: Clock) -> None:
    down = await book.record_failure(K.MODEL_DOWN, account="a", model="m")
    assert down is not None
    assert down.probe_at is not None
    clock.now = down.probe_at + 1
    assert await book.claim_probe(down)
    clock.now += 3
    again = await book.record_failure(K.MODEL_DOWN, account="a", model="m")
    assert again is not None
    assert again.probe_at is not None
    assert clock.now + 30 <= again.probe_at <= clock.now + 60
    assert again.probe_claimed_until is None
    assert blocked_until(await book.check(account="b", model="m")) == again.probe_at


async def test_probe_that_proved_nothing_is_released(book: CooldownBook, clock: Clock) -> None:
    down = await book.record_failure(K.MODEL_DOWN, account="a", model="m")
    assert down is not None
    assert down.probe_at is not None
    clock.now = down.probe_at
    assert await book.claim_probe(down)
    await book.release_probe(down)  # e.g. the prober's account was rate-limited
    verdict = await book.check(account="b", model="m")
    assert verdict.probe_due
    assert verdict.cooldown is not None
    assert await book.claim_probe(verdict.cooldown)


async def test_dead_probers_lease_runs_out(book: CooldownBook, clock: Clock) -> None:
    down = await book.record_failure(K.MODEL_DOWN, account="a", model="m")
    assert down is not None
    assert down.probe_at is not None
    clock.now = down.probe_at
    assert await book.claim_probe(down)
    clock.now += 119
    assert not await book.claim_probe(down)
    clock.now += 1
    assert await book.claim_probe(down)


async def test_stale_success_does_not_end_a_newer_outage(book: CooldownBook, clock: Clock) -> None:
    clock.now = T0 + 5
    await book.record_failure(K.MODEL_DOWN, account="a", model="m")
    await book.record_success(account="b", model="m", started_at=T0)  # sent before the outage
    assert not (await book.check(account="b", model="m")).eligible
    await book.record_success(account="b", model="m", started_at=T0 + 6)
    assert (await book.check(account="b", model="m")).eligible


# -- OUT_OF_CREDITS, AUTH, MODEL_FORBIDDEN, TRANSPORT -------------------------------------


async def test_out_of_credits_waits_for_a_usage_check_by_one_caller(book: CooldownBook, clock: Clock) -> None:
    await book.record_failure(K.OUT_OF_CREDITS, account="a", model="m")
    assert blocked_until(await book.check(account="a", model="n")) == T0 + 300
    clock.now = T0 + 300
    verdict = await book.check(account="a", model="n")
    assert verdict.probe_kind is K.OUT_OF_CREDITS
    assert verdict.cooldown is not None
    assert await book.claim_probe(verdict.cooldown)
    assert not await book.claim_probe(verdict.cooldown)
    clock.now += 1
    await book.credit_checked("a", has_credit=False)
    assert blocked_until(await book.check(account="a", model="m")) == T0 + 601
    clock.now = T0 + 601
    verdict = await book.check(account="a", model="m")
    assert verdict.cooldown is not None
    assert await book.claim_probe(verdict.cooldown)
    await book.credit_checked("a", has_credit=True)
    assert (await book.check(account="a", model="m")).eligible


async def test_a_usage_check_can_find_no_credit_first(book: CooldownBook) -> None:
    await book.credit_checked("a", has_credit=False)
    verdict = await book.check(account="a", model="m")
    assert (verdict.kind, verdict.until) == (K.OUT_OF_CREDITS, T0 + 300)


async def test_auth_lasts_until_sign_in_which_clears_only_that_account(
    book: CooldownBook, clock: Clock
) -> None:
    await book.record_failure(K.AUTH, account="a", model="m")
    await book.record_failure(K.MODEL_FORBIDDEN, account="a", model="m")
    await book.record_failure(K.RATE_LIMITED, account="b", model="m")
    assert blocked_until(await book.check(account="a", model="x")) == T0 + POLICY.credit_recheck
    clock.now += 10 * 365 * 86400
    # Time alone never lifts it: only a /whoami check (the probe) or a new sign-in does.
    verdict = await book.check(account="a", model="x")
    assert verdict.probe_kind is K.AUTH
    await book.account_checked("a", K.AUTH)
    assert blocked_until(await book.check(account="a", model="x")) == clock.now + POLICY.credit_recheck
    clock.now = T0 + 1
    await book.signed_in("a")
    assert (await book.check(account="a", model="m")).eligible
    assert not (await book.check(account="b", model="m")).eligible


async def test_forbidden_and_transport_block_only_the_pair(book: CooldownBook, clock: Clock) -> None:
    await book.record_failure(K.MODEL_FORBIDDEN, account="a", model="pro")
    await book.record_failure(K.TRANSPORT, account="a", model="m")
    assert blocked_until(await book.check(account="a", model="pro")) == T0 + 6 * 3600
    assert blocked_until(await book.check(account="a", model="m")) == T0 + 15
    assert (await book.check(account="b", model="pro")).eligible
    assert (await book.check(account="a", model="other")).eligible
    await book.record_success(account="a", model="m")  # the pair works again
    assert (await book.check(account="a", model="m")).eligible
    await book.record_success(account="a", model="pro")  # no success ends a forbidden model
    assert not (await book.check(account="a", model="pro")).eligible


# -- combining several cooldowns ----------------------------------------------------------


async def test_the_cooldown_that_lifts_last_decides(book: CooldownBook, clock: Clock) -> None:
    await book.record_failure(K.TRANSPORT, account="a", model="m")  # T0 + 15
    await book.record_failure(K.RATE_LIMITED, account="a", model="m")  # T0 + 10
    verdict = await book.check(account="a", model="m")
    assert (verdict.until, verdict.kind) == (T0 + 15, K.TRANSPORT)


async def test_a_probe_is_due_only_when_nothing_else_blocks(book: CooldownBook, clock: Clock) -> None:
    down = await book.record_failure(K.MODEL_DOWN, account="a", model="m")
    assert down is not None
    assert down.probe_at is not None
    clock.now = down.probe_at
    await book.record_failure(K.RATE_LIMITED, account="a", model="m")
    assert blocked_until(await book.check(account="a", model="m")) == clock.now + 10
    assert (await book.check(account="b", model="m")).probe_kind is K.MODEL_DOWN


async def test_the_accounts_credit_check_comes_before_a_model_probe(book: CooldownBook, clock: Clock) -> None:
    await book.record_failure(K.OUT_OF_CREDITS, account="a", model="m")
    await book.record_failure(K.MODEL_DOWN, account="a", model="m")
    clock.now = T0 + 300
    verdict = await book.check(account="a", model="m")
    assert verdict.probe_kind is K.OUT_OF_CREDITS


async def test_snapshot_lists_cooldowns_in_force_soonest_first(book: CooldownBook, clock: Clock) -> None:
    await book.record_failure(K.AUTH, account="x", model="m")
    await book.record_failure(K.TRANSPORT, account="a", model="m")
    await book.record_failure(K.RATE_LIMITED, account="b", model="m")
    clock.now += 3
    await book.record_failure(K.TRANSPORT, account="old", model="m")
    clock.now = T0 + 16  # the first TRANSPORT and the rate limit are over
    assert [(c.kind, c.account) for c in await book.snapshot()] == [(K.TRANSPORT, "old"), (K.AUTH, "x")]


# -- the stateful test --------------------------------------------------------------------

ACCOUNTS = ("a1", "a2")
MODELS = ("m1", "m2", "m3")
POLICY = CooldownPolicy(rate_limited_memory=900.0)
LIMITS = PacingLimits(requests_per_window=4, max_in_flight=2)
LEASE_TTL = 900.0
SEED = 20260801
# Weighted towards what exercises the interesting rules (escalation, probes) most; AUTH and
# sign-ins are rarer because each blocks or wipes a whole account.
WEIGHTED_OUTCOMES = st.sampled_from(
    ["ok"] * 3
    + ["cancel"]
    + [K.RATE_LIMITED.value] * 4
    + [K.MODEL_DOWN.value] * 3
    + [K.TRANSPORT.value] * 2
    + [k.value for k in (K.OUT_OF_CREDITS, K.MODEL_FORBIDDEN, K.MODEL_UNKNOWN, K.AUTH, K.BAD_REQUEST)]
)
ENDS_REQUEST = {"ok", "cancel", K.BAD_REQUEST.value}


@dataclass
class Rec:
    """The reference model's idea of one cooldown record."""

    until: float
    probe_at: float | None = None
    level: int = 0
    claimed: float | None = None


class Reference:
    """The rules of issue 3, written out as plainly as possible, to check the book against."""

    KEYS_SCOPE: ClassVar[dict[FailureKind, str]] = {
        K.RATE_LIMITED: "account",
        K.OUT_OF_CREDITS: "account",
        K.AUTH: "account",
        K.MODEL_DOWN: "model",
        K.MODEL_FORBIDDEN: "pair",
        K.TRANSPORT: "pair",
    }

    def __init__(self) -> None:
        self.recs: dict[CooldownKey, Rec] = {}
        self.rng = random.Random(SEED)  # draws the same jitter as the book's generator

    @staticmethod
    def key(kind: FailureKind, account: str, model: str) -> CooldownKey:
        scope = Reference.KEYS_SCOPE[kind]
        if scope == "account":
            return CooldownKey(Scope.ACCOUNT, account, None, kind)
        if scope == "model":
            return CooldownKey(Scope.MODEL, None, model, kind)
        return CooldownKey(Scope.ACCOUNT_MODEL, account, model, kind)

    def fail(self, kind: FailureKind, account: str, model: str, now: float) -> None:
        if kind not in self.KEYS_SCOPE:
            return
        key = self.key(kind, account, model)
        old = self.recs.get(key)
        live = old if old is not None and old.until > now else None
        if kind is K.RATE_LIMITED:
            steps = POLICY.rate_limited_steps
            level = old.level if old is not None and old.until + POLICY.rate_limited_memory > now else 0
            until = now + steps[min(level, len(steps) - 1)]
            self.recs[key] = Rec(max(until, live.until) if live else until, level=level + 1)
        elif kind in (K.MODEL_DOWN, K.OUT_OF_CREDITS, K.AUTH):
            probe_at = now + (
                self.rng.uniform(*POLICY.model_down) if kind is K.MODEL_DOWN else POLICY.credit_recheck
            )
            if live is None:
                self.recs[key] = Rec(math.inf, probe_at)
            elif live.probe_at is None or probe_at > live.probe_at:
                live.probe_at, live.claimed = probe_at, None
        else:
            until = now + (POLICY.model_forbidden if kind is K.MODEL_FORBIDDEN else POLICY.transport)
            if live is None:
                self.recs[key] = Rec(until)
            else:
                live.until = max(live.until, until)

    def success(self, account: str, model: str, now: float) -> set[CooldownKey]:
        rate = self.key(K.RATE_LIMITED, account, model)
        if rate in self.recs:
            if self.recs[rate].until > now:
                self.recs[rate].level = 0
            else:
                del self.recs[rate]
        ended = {self.key(K.MODEL_DOWN, account, model), self.key(K.TRANSPORT, account, model)}
        for key in ended:
            self.recs.pop(key, None)
        return ended

    def credit(self, account: str, has_credit: bool, now: float) -> CooldownKey:
        key = self.key(K.OUT_OF_CREDITS, account, "")
        old = self.recs.get(key)
        if has_credit:
            self.recs.pop(key, None)
        elif old is None:
            self.recs[key] = Rec(math.inf, now + POLICY.credit_recheck)
        else:
            old.probe_at, old.claimed = now + POLICY.credit_recheck, None
        return key

    def sign_in(self, account: str) -> set[CooldownKey]:
        gone = {k for k in self.recs if k.account == account}
        for key in gone:
            del self.recs[key]
        return gone

    def claim(self, key: CooldownKey, now: float) -> bool:
        rec = self.recs.get(key)
        if rec is None or rec.until <= now or rec.probe_at is None or rec.probe_at > now:
            return False
        if rec.claimed is not None and rec.claimed > now:
            return False
        rec.claimed = now + POLICY.probe_lease
        return True

    def active(self, account: str, model: str, now: float) -> dict[CooldownKey, Rec]:
        out: dict[CooldownKey, Rec] = {}
        for key, rec in self.recs.items():
            applies = (
                (key.scope is Scope.ACCOUNT and key.account == account)
                or (key.scope is Scope.MODEL and key.model == model)
                or (key.scope is Scope.ACCOUNT_MODEL and (key.account, key.model) == (account, model))
            )
            if applies and rec.until > now:
                out[key] = rec
        return out

    def verdict(self, account: str, model: str, now: float) -> tuple[Status, float]:
        active = self.active(account, model, now)
        if not active:
            return Status.ELIGIBLE, now

        def free_at(rec: Rec) -> float:
            if rec.probe_at is None:
                return rec.until
            return min(rec.until, max(rec.probe_at, rec.claimed if rec.claimed is not None else -math.inf))

        latest = max(free_at(rec) for rec in active.values())
        if latest > now:
            return Status.BLOCKED, latest
        return Status.PROBE_DUE, now + POLICY.probe_lease

    def usable_now(self, account: str, model: str, now: float) -> bool:
        """True unless a cooldown that no probe can get past right now applies."""
        for key, rec in self.active(account, model, now).items():
            probe_open = (
                key.kind is K.MODEL_DOWN
                and rec.probe_at is not None
                and rec.probe_at <= now
                and (rec.claimed is None or rec.claimed <= now)
            )
            if not probe_open:
                return False
        return True


@dataclass
class MirrorSlot:
    account: str
    started: float
    released: bool = False


def done(step: Coroutine[Any, Any, T]) -> T:
    """Run a store step from a synchronous rule. The memory and SQLite stores do their work
    inline, so their coroutines finish without ever suspending; one that suspends is a bug."""
    try:
        step.send(None)
    except StopIteration as finished:
        return finished.value
    step.close()
    raise AssertionError("a store step suspended")


class CooldownsAndPacing(RuleBasedStateMachine):
    """Random interleavings of failures, successes, sign-ins, credit checks, held requests,
    time passing and whole routed requests, checked against `Reference` after every step."""

    def make_store(self) -> StateStore:
        return MemoryStateStore()

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.store = self.make_store()
        self.book = CooldownBook(self.store, POLICY, clock=self.clock, rng=random.Random(SEED))
        self.pacer = Pacer(self.store, clock=self.clock, lease_ttl=LEASE_TTL, release_settle=0.0)
        self.ref = Reference()
        self.slots: dict[str, MirrorSlot] = {}
        self.held: list[Slot] = []
        self.previous: dict[CooldownKey, Cooldown] = {}
        self.may_shrink: set[CooldownKey] = set()

    # -- the pacing mirror ---------------------------------------------------------------

    def window_starts(self, account: str) -> list[float]:
        now = self.clock.now
        return sorted(
            s.started
            for s in self.slots.values()
            if s.account == account and s.started + LIMITS.counting_window > now
        )

    def in_flight(self, account: str) -> int:
        now = self.clock.now
        return sum(
            1
            for s in self.slots.values()
            if s.account == account and not s.released and s.started + LEASE_TTL > now
        )

    def paced(self, account: str) -> bool:
        return (
            len(self.window_starts(account)) >= LIMITS.requests_per_window
            or self.in_flight(account) >= LIMITS.max_in_flight
        )

    def acquire(self, account: str) -> Slot | None:
        result = done(self.pacer.try_acquire(account, LIMITS))
        if isinstance(result, Slot):
            assert not self.paced(account), "a slot was granted over the account's limits"
            self.slots[result.id] = MirrorSlot(account, result.started)
            return result
        assert self.paced(account), "a slot was refused while the account had room"
        event("pacing: refused")
        assert result > 0
        starts = self.window_starts(account)
        if len(starts) >= LIMITS.requests_per_window and self.in_flight(account) < LIMITS.max_in_flight:
            # Only the window is full: the wait is exact.
            oldest_to_leave = starts[len(starts) - LIMITS.requests_per_window]
            assert result == oldest_to_leave + LIMITS.counting_window - self.clock.now
        return None

    def released(self, slot: Slot, counted: bool) -> None:
        if counted:
            self.slots[slot.id].released = True
        else:
            del self.slots[slot.id]

    # -- rules ---------------------------------------------------------------------------

    @rule(
        seconds=st.one_of(
            st.sampled_from([0.0, 0.5, 5.0, 10.0, 10.5, 15.0, 30.0, 45.0, 60.0, 120.0, 300.0, 900.0, 3600.0]),
            st.floats(min_value=0.0, max_value=400.0, allow_nan=False),
        )
    )
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(account=st.sampled_from(ACCOUNTS), model=st.sampled_from(MODELS), outcome=WEIGHTED_OUTCOMES)
    def attempt_by_another_request(self, account: str, model: str, outcome: str) -> None:
        """A request of another task or process ended on this pair (no slot of ours)."""
        if outcome == "ok":
            done(self.book.record_success(account=account, model=model))
            self.may_shrink |= self.ref.success(account, model, self.clock.now)
        elif outcome != "cancel":
            kind = FailureKind(outcome)
            done(self.book.record_failure(kind, account=account, model=model))
            self.ref.fail(kind, account, model, self.clock.now)

    @rule(account=st.sampled_from(ACCOUNTS), news=st.sampled_from(["signed in", "credit", "no credit"]))
    def account_news(self, account: str, news: str) -> None:
        if news == "signed in":
            done(self.book.signed_in(account))
            self.may_shrink |= self.ref.sign_in(account)
        else:
            done(self.book.credit_checked(account, news == "credit"))
            self.may_shrink.add(self.ref.credit(account, news == "credit", self.clock.now))

    @rule(
        account=st.sampled_from(ACCOUNTS),
        starts=st.booleans(),
        index=st.integers(0, 7),
        counted=st.booleans(),
    )
    def request_held_elsewhere(self, account: str, starts: bool, index: int, counted: bool) -> None:
        """Another request takes a slot and keeps it across steps, or one of those ends."""
        if starts:
            slot = self.acquire(account)
            if slot is not None:
                self.held.append(slot)
        elif self.held:
            slot = self.held.pop(index % len(self.held))
            done(self.pacer.release(slot, counted=counted))
            self.released(slot, counted)

    @rule(outcomes=st.lists(WEIGHTED_OUTCOMES, min_size=1, max_size=6), max_attempts=st.integers(1, 4))
    def route_a_request(self, outcomes: list[str], max_attempts: int) -> None:
        anyio.run(self.route, outcomes, max_attempts, backend="asyncio")

    # -- a simple router -----------------------------------------------------------------

    async def select(self, unknown: set[str]) -> tuple[str, str, Slot] | None:
        """The first usable (model, account), accounts least recently used first."""
        last = await self.store.last_used()
        for model in MODELS:
            if model in unknown:
                continue
            for account in sorted(ACCOUNTS, key=lambda a: (last.get(a, 0.0), a)):
                verdict = await self.book.check(account=account, model=model)
                if verdict.status is Status.BLOCKED:
                    continue
                if verdict.probe_due and verdict.probe_kind is not K.MODEL_DOWN:
                    continue  # a credit check, not a chat request: not simulated here
                slot = self.acquire(account)
                if slot is None:
                    continue
                if verdict.probe_due:
                    assert verdict.cooldown is not None
                    won = await self.book.claim_probe(verdict.cooldown)
                    assert won == self.ref.claim(verdict.cooldown.key, self.clock.now)
                    event(f"route: probe {'won' if won else 'lost'}")
                    if not won:
                        await self.pacer.release(slot, counted=False)
                        self.released(slot, counted=False)
                        continue
                return account, model, slot
        return None

    async def route(self, outcomes: list[str], max_attempts: int) -> None:
        attempts = 0
        tried: set[tuple[str, str]] = set()
        unknown: set[str] = set()
        for outcome in outcomes:
            if attempts == max_attempts:
                break
            pick = await self.select(unknown)
            if pick is None:
                event("route: nothing usable")
                # Nothing was picked: then truly nothing is usable (no wait while one is).
                for model in set(MODELS) - unknown:
                    for account in ACCOUNTS:
                        assert self.paced(account) or not self.ref.usable_now(
                            account, model, self.clock.now
                        ), f"{model} on {account} was usable but not selected"
                break
            account, model, slot = pick
            # A cooled candidate is never selected: only an open probe we just won may pass.
            for key, rec in self.ref.active(account, model, self.clock.now).items():
                assert key.kind is K.MODEL_DOWN, f"selected {model} on {account} despite {key.kind}"
                assert rec.claimed == self.clock.now + POLICY.probe_lease
            # Bounded attempts: a failed pair stays blocked for the rest of the request.
            assert (account, model) not in tried, f"{model} on {account} tried twice"
            tried.add((account, model))
            attempts += 1
            counted = True
            # As the router does: the slot is given back however the attempt ends, cancellation
            # included, and uncounted when Puter refused the request with a 429.
            with anyio.CancelScope() as scope:
                try:
                    event(f"attempt ended: {outcome}")
                    if outcome == "cancel":
                        scope.cancel()  # the client went away mid-request
                        await anyio.sleep_forever()
                    elif outcome == "ok":
                        await self.book.record_success(account=account, model=model)
                        self.may_shrink |= self.ref.success(account, model, self.clock.now)
                    else:
                        kind = FailureKind(outcome)
                        await self.book.record_failure(kind, account=account, model=model)
                        self.ref.fail(kind, account, model, self.clock.now)
                        if kind is K.RATE_LIMITED:
                            counted = False
                finally:
                    with anyio.CancelScope(shield=True):
                        await self.pacer.release(slot, counted=counted)
            self.released(slot, counted)
            if outcome in ENDS_REQUEST:
                break
            if outcome == K.MODEL_UNKNOWN.value:
                unknown.add(model)  # the router's per-process memory
        assert attempts <= max_attempts

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def book_matches_the_reference(self) -> None:
        stored = {c.key: c for c in done(self.store.list_cooldowns())}
        assert set(stored) == set(self.ref.recs)
        for key, rec in self.ref.recs.items():
            got = stored[key]
            assert (got.until, got.probe_at, got.level, got.probe_claimed_until) == (
                rec.until,
                rec.probe_at,
                rec.level,
                rec.claimed,
            ), key

    @invariant()
    def verdicts_match_the_reference(self) -> None:
        for account in ACCOUNTS:
            for model in MODELS:
                verdict = done(self.book.check(account=account, model=model))
                assert (verdict.status, verdict.until) == self.ref.verdict(account, model, self.clock.now)

    @invariant()
    def cooldowns_are_never_shortened(self) -> None:
        now = self.clock.now
        current = {c.key: c for c in done(self.store.list_cooldowns())}
        for key, before in self.previous.items():
            if before.until <= now or key in self.may_shrink:
                continue
            after = current.get(key)
            assert after is not None, f"{key} vanished while in force"
            assert after.until >= before.until, key
            if before.probe_at is not None:
                assert after.probe_at is not None
                assert after.probe_at >= before.probe_at, key
        self.previous = current
        self.may_shrink = set()

    @invariant()
    def in_flight_counts_only_requests_still_running(self) -> None:
        for account in ACCOUNTS:
            usage = done(self.pacer.usage(account, LIMITS))
            assert tuple(usage) == (len(self.window_starts(account)), self.in_flight(account))

    def teardown(self) -> None:
        try:
            for slot in self.held:
                done(self.pacer.release(slot))
            for account in ACCOUNTS:
                assert done(self.pacer.usage(account, LIMITS)).in_flight == 0
        finally:
            done(self.store.aclose())


class CooldownsAndPacingOnSQLite(CooldownsAndPacing):
    def make_store(self) -> StateStore:
        self.folder = Path(tempfile.mkdtemp(prefix="puter-mcp-state-"))
        return SQLiteStateStore(self.folder / "s.db")

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


_FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
TestCooldownsAndPacing = CooldownsAndPacing.TestCase
TestCooldownsAndPacing.settings = settings(_FAST, max_examples=150, stateful_step_count=40)
TestCooldownsAndPacingOnSQLite = CooldownsAndPacingOnSQLite.TestCase
TestCooldownsAndPacingOnSQLite.settings = settings(_FAST, max_examples=25, stateful_step_count=30)
