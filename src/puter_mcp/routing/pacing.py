"""Per-account pacing: stay under Puter's request-rate and in-flight limits.

Puter limits each user to a number of AI requests per rolling 10 s window and a number in
flight at once, by tier (docs/puter-protocol.md, "Limits per tier": paid 200/20, free 30/3,
temporary 20/2). Exceeding either costs a 429, a rate-limit cooldown and a retry elsewhere: the product must not cause
the 429s it then has to handle. So before each request the router takes a `Slot` on the
account; when none is free, it tries another account, and waits only when every account is
at its cap.

Slots live in the shared `StateStore`, so several puter-mcp processes of the same user
(Claude Desktop, Zed, Cursor...) share each account's budget. Our own requests are counted
over a window slightly longer than Puter's, because clocks and network delays differ: a
request we stamp at t reaches Puter a little later and leaves Puter's window a little later.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from puter_mcp.puter.tiers import Tier  # defined below routing; re-exported for pacing's callers
from puter_mcp.routing.state import Slot, SlotRefusal, SlotRequest, StateStore, WindowUsage

__all__ = [
    "DEFAULT_SAFETY_MARGIN",
    "PUTER_WINDOW",
    "Pacer",
    "PacingLimits",
    "Slot",
    "Tier",
    "WindowUsage",
    "limits_for",
    "wait_hint",
]

PUTER_WINDOW = 10.0
"""Puter's rolling window, in seconds."""

DEFAULT_SAFETY_MARGIN = 0.5
"""Seconds added to Puter's window when counting our own requests."""


@dataclass(frozen=True)
class PacingLimits:
    """What one account may do.

    Attributes:
        requests_per_window: requests Puter accepts per `window_seconds`.
        max_in_flight: requests Puter accepts at once.
        window_seconds: Puter's window.
        safety_margin: added to the window when counting our own requests.
    """

    requests_per_window: int
    max_in_flight: int
    window_seconds: float = PUTER_WINDOW
    safety_margin: float = DEFAULT_SAFETY_MARGIN

    def __post_init__(self) -> None:
        if self.requests_per_window < 1 or self.max_in_flight < 1:
            raise ValueError("pacing limits must allow at least one request")
        if self.window_seconds <= 0 or self.safety_margin < 0:
            raise ValueError("the pacing window must be positive and its margin not negative")

    @property
    def counting_window(self) -> float:
        """The window over which we count our own requests."""
        return self.window_seconds + self.safety_margin


_TIER_LIMITS: dict[Tier, PacingLimits] = {
    Tier.PAID: PacingLimits(requests_per_window=200, max_in_flight=20),
    Tier.FREE: PacingLimits(requests_per_window=30, max_in_flight=3),
    Tier.TEMP: PacingLimits(requests_per_window=20, max_in_flight=2),
}


def limits_for(tier: Tier) -> PacingLimits:
    """Puter's limits for a tier; an unknown tier gets the lowest (a temporary account's)."""
    if tier is Tier.UNKNOWN:
        return min(_TIER_LIMITS.values(), key=lambda lim: (lim.requests_per_window, lim.max_in_flight))
    return _TIER_LIMITS[tier]


class Pacer:
    """Hands out per-account slots from the shared store.

    Args:
        store: the shared state.
        clock: wall-clock epoch seconds; injectable for tests.
        lease_ttl: how long a slot may stay in flight before it stops counting, so that a
            process that died without giving it back cannot hold an account's in-flight places
            forever. Longer than any request should take. On the same host the store frees a
            dead process's slots at once; the lease is for the cases it cannot check. The engine
            passes `routing.slot_lease` (`PUTER_MCP_SLOT_LEASE`).
        in_flight_hint: what `try_acquire` answers when only the in-flight cap is reached:
            when a running request ends cannot be known, so this is a polling interval.
        release_settle: how long a finished request still counts as in flight (see `release`).
    """

    def __init__(
        self,
        store: StateStore,
        *,
        clock: Callable[[], float] = time.time,
        lease_ttl: float = 900.0,
        in_flight_hint: float = 0.25,
        release_settle: float = 0.05,
    ) -> None:
        self.store = store
        self._clock = clock
        self.lease_ttl = lease_ttl
        self.in_flight_hint = in_flight_hint
        self.release_settle = release_settle

    def slot_request(self, account: str, limits: PacingLimits) -> SlotRequest:
        """A request for a slot on `account` now, for a store's `acquire` (or `try_acquire`)."""
        now = self._clock()
        return SlotRequest(
            # 128 random bits as hex, like a uuid4's `.hex` without building the UUID object.
            slot_id=os.urandom(16).hex(),
            now=now,
            window=limits.counting_window,
            max_requests=limits.requests_per_window,
            max_in_flight=limits.max_in_flight,
            lease_until=now + self.lease_ttl,
        )

    async def try_acquire(self, account: str, limits: PacingLimits) -> Slot | float:
        """Take a slot on `account` now, or say in how many seconds one may free up.

        Never waits. The answer in seconds is exact when the window is full (the moment
        enough of our requests leave it) and `in_flight_hint` when only the in-flight cap is
        reached. A granted slot also marks the account as used now (see
        `StateStore.last_used`), so that a burst spreads over the accounts.
        """
        request = self.slot_request(account, limits)
        result = await self.store.acquire_slot(
            account,
            slot_id=request.slot_id,
            now=request.now,
            window=request.window,
            max_requests=request.max_requests,
            max_in_flight=request.max_in_flight,
            lease_until=request.lease_until,
        )
        if isinstance(result, Slot):
            return result
        return self.wait_hint(result, request.now)

    def wait_hint(self, refusal: SlotRefusal, now: float) -> float:
        """Seconds until a refused slot may be granted (see `wait_hint`)."""
        return wait_hint(refusal, now, in_flight_hint=self.in_flight_hint)

    def release_time(self, *, counted: bool) -> float:
        """The moment a slot given back now stops holding its in-flight place (see `release`)."""
        now = self._clock()
        return now + self.release_settle if counted else now

    async def release(self, slot: Slot, *, counted: bool = True) -> None:
        """End a request. `counted=False` for a request Puter refused with 429 (it does not
        count those, so the place in the window is given back). Releasing twice is harmless.

        A counted slot keeps its in-flight place for `release_settle` seconds more: we release
        the moment we have read an answer's last byte, but Puter frees its own place only after
        it has finished sending, a little later. Without this, the next request (from this
        process or another) can reach Puter first and be refused with "Too many concurrent
        requests.", the 429 pacing exists to avoid.
        """
        await self.store.release_slot(slot.id, now=self.release_time(counted=counted), counted=counted)

    async def usage(self, account: str, limits: PacingLimits | None = None) -> WindowUsage:
        """Requests in the counting window and requests running now, for status displays.

        A finished request still settling (see `release`) counts for pacing, not here: to a
        person, a request that has answered is no longer in flight.
        """
        window = (limits or limits_for(Tier.UNKNOWN)).counting_window
        return await self.store.window_usage(account, now=self._clock(), window=window)


def wait_hint(refusal: SlotRefusal, now: float, *, in_flight_hint: float) -> float:
    """Seconds until a refused slot may be granted: exact when the window is full (the moment
    enough requests leave it), at most `in_flight_hint` when the in-flight cap is reached."""
    wait = 0.0
    if refusal.window_frees_at is not None:
        wait = max(wait, refusal.window_frees_at - now)
    if refusal.in_flight_full:
        # A place held only by a finished request frees at a known moment; one held by a
        # running request frees when it ends, which cannot be known: poll for that.
        settles = None if refusal.settled_at is None else refusal.settled_at - now
        wait = max(wait, in_flight_hint if settles is None else min(settles, in_flight_hint))
    # A refusal always means "not now": never answer 0, which would invite a busy loop.
    return max(wait, 1e-3)
