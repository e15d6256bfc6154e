"""What the state store keeps, and the few rules every store applies the same way.

Records are plain frozen dataclasses: cooldowns (`Cooldown`, keyed by `CooldownKey`), pacing
slots (`Slot`, asked for with a `SlotRequest`, refused with a `SlotRefusal`), and attempt
records (`Attempt`). The helpers at the end (which records apply to a pair, whether a probe may
be claimed, how a refusal is worded) are pure functions shared by the stores, so that memory,
SQLite and any later store answer alike.

All times are wall-clock epoch seconds (`time.time`), because several processes compare them.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, NamedTuple, Protocol, TypeVar

from puter_mcp.puter.errors import FailureKind

__all__ = [
    "DEFAULT_ORIGIN",
    "SLOT_HISTORY",
    "Admitted",
    "Attempt",
    "Cooldown",
    "CooldownChange",
    "CooldownKey",
    "Decision",
    "Judge",
    "Scope",
    "Slot",
    "SlotRefusal",
    "SlotRequest",
    "StateStoreError",
    "WindowUsage",
    "applies_to",
    "check_key",
    "probe_claimable",
    "refusal",
    "with_claim",
]

DEFAULT_ORIGIN = "https://api.puter.com"
"""The origin a store keys its records by when none is given: Puter's own API."""

SLOT_HISTORY = 60.0
"""Seconds a finished slot is kept. Longer than any pacing window (Puter's is 10 s), so
pruning never removes a request that still counts."""


class StateStoreError(Exception):
    """The state store cannot be used (e.g. its file was written by a newer puter-mcp)."""


class Scope(enum.StrEnum):
    """What a cooldown blocks (docs/architecture.md, "Failure kinds": the scope column)."""

    ACCOUNT = "account"
    """Every model on one account (rate limit, no credits, signed out)."""
    MODEL = "model"
    """One model on every account (the model's providers are down)."""
    ACCOUNT_MODEL = "account_model"
    """One model on one account (subscriber-only model, broken connection)."""


class CooldownKey(NamedTuple):
    """Identity of a cooldown record. Each failure kind has its own record, so that, say, a
    short rate limit and a long "no credits" on the same account never overwrite each other;
    a pair is blocked while any record that applies to it is."""

    scope: Scope
    account: str | None
    model: str | None
    kind: FailureKind


@dataclass(frozen=True, slots=True)
class Cooldown:
    """One cooldown: who is blocked, why, until when, and when a probe may lift it.

    Attributes:
        scope: what is blocked; `account` is None for MODEL, `model` is None for ACCOUNT.
        kind: the failure kind that caused it.
        until: epoch seconds; `math.inf` for AUTH, and for OUT_OF_CREDITS and MODEL_DOWN,
            which last until a probe succeeds.
        probe_at: when exactly one caller may probe (MODEL_DOWN: send one request to the
            model; OUT_OF_CREDITS: check ``/metering/usage``); None when no probe applies.
        level: RATE_LIMITED escalation step (how many rate limits since the last success).
        reason: a short human-readable cause, for status displays and errors.
        since: when this episode began; failures of requests sent before it belong to it.
        probe_claimed_until: while set and in the future, someone holds the probe.
    """

    scope: Scope
    account: str | None
    model: str | None
    kind: FailureKind
    until: float
    probe_at: float | None = None
    level: int = 0
    reason: str = ""
    since: float = 0.0
    probe_claimed_until: float | None = None

    def __post_init__(self) -> None:
        needs_account = self.scope in (Scope.ACCOUNT, Scope.ACCOUNT_MODEL)
        needs_model = self.scope in (Scope.MODEL, Scope.ACCOUNT_MODEL)
        if needs_account != bool(self.account) or needs_model != bool(self.model):
            raise ValueError(
                f"a {self.scope.value} cooldown needs "
                f"{'an account' if needs_account else 'no account'} and "
                f"{'a model' if needs_model else 'no model'}; got account={self.account!r}, "
                f"model={self.model!r}"
            )

    @property
    def key(self) -> CooldownKey:
        return CooldownKey(self.scope, self.account, self.model, self.kind)

    def active(self, now: float) -> bool:
        """True while the cooldown blocks (its `until` has not come)."""
        return self.until > now


CooldownChange = Callable[[Cooldown | None], Cooldown | None]
"""Computes a record's new value from its current one (None: absent / delete). It must be a
pure function: a store with optimistic concurrency may call it more than once."""


@dataclass(frozen=True, slots=True)
class Slot:
    """Permission to send one request on an account, until released or `lease_until`.

    The shared store also records which process holds it: on the same host, a slot whose
    process has ended is free at once; the lease is the last resort (another host's process,
    or a system where a process cannot be checked).
    """

    id: str
    account: str
    started: float
    lease_until: float


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """A request for a pacing slot, as the pacer words it (see `Pacer.slot_request`).

    Granted if fewer than `max_requests` requests started within the last `window` seconds
    and fewer than `max_in_flight` are in flight; a grant also marks the account used at `now`.
    """

    slot_id: str
    now: float
    window: float
    max_requests: int
    max_in_flight: int
    lease_until: float


class WindowUsage(NamedTuple):
    """How busy an account is: requests started within the window and requests in flight.
    A tuple, so that ``requests, in_flight = await pacer.usage(account)`` works."""

    requests: int
    in_flight: int


@dataclass(frozen=True, slots=True)
class SlotRefusal:
    """Why no slot was granted, with what the pacer needs to say when one frees up.

    Attributes:
        usage: the counts that were over a limit.
        window_frees_at: when enough requests leave the window for one more to fit, or None
            if the window is not full.
        in_flight_full: whether the in-flight cap was reached.
        settled_at: when the first finished request that still holds an in-flight place lets
            go of it (see `Pacer.release`); None when every place is held by a running request,
            whose end cannot be known.
    """

    usage: WindowUsage
    window_frees_at: float | None
    in_flight_full: bool
    settled_at: float | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to Puter, as the router reports it to its attempt hooks (see `Router`), and as
    the store's attempt log keeps it for status displays, benchmarks and later routing.

    Attributes:
        time: epoch seconds when the attempt ended.
        account: the account's state id.
        kind: the failure kind, or None for a success.
        latency_ms: from sending the request to its end.
        ttft_ms: time to the first token (None when nothing was streamed).
        cost_usd: what Puter charged (None when unknown, e.g. Puter's test models).
        request_id: the call's id; every attempt of one call shares it.
    """

    time: float
    account: str
    model: str
    kind: FailureKind | None
    latency_ms: float
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    request_id: str = ""


class Decision(Protocol):
    """What the cooldown rules decided about a pair, in the terms a store acts on.

    A store's `acquire` passes the pair's cooldowns to a `Judge`, which answers with a
    decision; the store then takes a slot and claims a probe in the same atomic step.
    `puter_mcp.routing.cooldowns.Verdict` is the decision the router uses.
    """

    @property
    def take_slot(self) -> bool:
        """Whether to take a pacing slot (the pair may be tried, or this is its probe)."""
        ...

    @property
    def claim(self) -> CooldownKey | None:
        """The probe to claim, or None. With `take_slot`, it is claimed only with the slot."""
        ...

    @property
    def claim_until(self) -> float:
        """Until when a claimed probe keeps other callers off (its lease)."""
        ...


D = TypeVar("D", bound=Decision)

Judge = Callable[[list[Cooldown]], D]
"""Decides from the cooldowns that apply to a pair (expired ones included). Pure, like a
`CooldownChange`: a store may call it more than once."""


@dataclass(frozen=True, slots=True)
class Admitted(Generic[D]):
    """What `StateStore.acquire` did.

    Attributes:
        decision: the judge's decision, from the cooldowns as they stood in the same step.
        slot: the granted slot, the refusal, or None when the decision took none.
        claimed: whether the decision's probe was claimed (only with a granted slot when it
            asked for one).
    """

    decision: D
    slot: Slot | SlotRefusal | None
    claimed: bool


# -- rules every store applies ------------------------------------------------------------


def check_key(cooldown: Cooldown | None, key: CooldownKey) -> None:
    """Refuse a change that would move a record to another key."""
    if cooldown is not None and cooldown.key != key:
        raise ValueError(f"a cooldown change must keep its key {key}, got {cooldown.key}")


def probe_claimable(cooldown: Cooldown, now: float) -> bool:
    """An active record whose probe time has come and that nobody holds."""
    return (
        cooldown.active(now)
        and cooldown.probe_at is not None
        and cooldown.probe_at <= now
        and (cooldown.probe_claimed_until is None or cooldown.probe_claimed_until <= now)
    )


def with_claim(cooldown: Cooldown, claimed_until: float | None) -> Cooldown:
    """The record with its probe claimed until `claimed_until` (None: given back)."""
    return replace(cooldown, probe_claimed_until=claimed_until)


def applies_to(cooldown: Cooldown, account: str, model: str) -> bool:
    """Whether the record blocks (account, model): the account's, the model's or the pair's."""
    if cooldown.scope is Scope.ACCOUNT:
        return cooldown.account == account
    if cooldown.scope is Scope.MODEL:
        return cooldown.model == model
    return cooldown.account == account and cooldown.model == model


def refusal(
    starts: list[float],
    in_flight: int,
    window: float,
    max_requests: int,
    max_in_flight: int,
    settled_at: float | None = None,
) -> SlotRefusal:
    """Build the refusal from the sorted start times of the requests in the window.

    With ``n`` requests in the window and room for ``max_requests``, one more fits once the
    ``n - max_requests + 1`` oldest have left, i.e. at the start of the ``n - max_requests``-th
    (0-based) plus the window.
    """
    frees_at = None
    if len(starts) >= max_requests:
        frees_at = starts[len(starts) - max_requests] + window if max_requests > 0 else math.inf
    return SlotRefusal(
        usage=WindowUsage(len(starts), in_flight),
        window_frees_at=frees_at,
        in_flight_full=in_flight >= max_in_flight,
        settled_at=None if settled_at is None else float(settled_at),
    )
