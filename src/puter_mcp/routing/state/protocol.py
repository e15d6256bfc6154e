"""The state store protocol: what the cooldown book, the pacer and the router need from shared state.

Every method is a coroutine, so that a networked store never blocks the event loop; a local
store (memory, SQLite) may do its short work inline. Each method is atomic on its own; for a
shared store, the read-modify-write ones are atomic across processes.

A chat call uses two coarse steps, each one atomic step (one transaction for SQLite):

1. `acquire`: read the pair's cooldowns, let the caller's pure `Judge` decide, and take a
   pacing slot and claim a probe as decided;
2. `settle`: give the slot back with the cooldown changes the answer calls for, and write the
   attempt records handed over by `log_attempt` since the last write.

The finer methods (`update_cooldown`, `claim_probe`, `acquire_slot`, ...) serve the rarer
paths (a credit check, a sign-in, status displays) and the tests. See docs/state.md.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Protocol, runtime_checkable

from puter_mcp.routing.state.records import (
    Admitted,
    Attempt,
    Cooldown,
    CooldownChange,
    CooldownKey,
    D,
    Judge,
    Slot,
    SlotRefusal,
    SlotRequest,
    WindowUsage,
)

__all__ = [
    "CooldownChanges",
    "PendingSettle",
    "SharedSlots",
    "StateStore",
    "WarningSink",
    "release_process_slots",
    "shares_slots",
]

WarningSink = Callable[[str], None]
"""Receives one sentence for the user: which store failed, what it means, what to do."""

CooldownChanges = Sequence[tuple[CooldownKey, CooldownChange]]
"""Changes applied in order in one atomic step; a key may appear more than once."""

PendingSettle = tuple[str, float, bool, CooldownChanges]
"""A `settle` handed over and not written yet: the slot, when it ended, whether it counts, the
cooldown changes (the stores that finish the step after returning keep these)."""


@runtime_checkable
class StateStore(Protocol):
    """Shared state: cooldowns, pacing slots, last use, attempt records."""

    def describe(self) -> str:
        """Where the state lives, for status displays (e.g. ``sqlite:/path`` or ``memory``)."""
        ...

    # -- the two steps of a call -----------------------------------------------------------
    async def acquire(self, account: str, model: str, *, judge: Judge[D], slot: SlotRequest) -> Admitted[D]:
        """In one atomic step: pass the pair's cooldowns to `judge`; if its decision takes a
        slot, try to take one on `account` (as `acquire_slot`); if it names a probe, claim
        it until `claim_until`, but only together with the slot when it asked for one."""
        ...

    async def settle(self, slot_id: str, *, now: float, counted: bool, changes: CooldownChanges = ()) -> None:
        """In one atomic step: release the slot (as `release_slot`), apply `changes` (as
        `update_cooldowns`) and write the attempts logged so far.

        A store may finish the step after returning, so that an answer does not wait for its
        bookkeeping (the SQLite store hands it to a writer thread); the step still comes
        before every later operation of the same store object, and `aclose` finishes it."""
        ...

    def log_attempt(self, attempt: Attempt) -> None:
        """Keep an attempt record. It does not wait: the record is written with the store's
        next write (the `settle` that follows an attempt), or by `recent_attempts`/`aclose`."""
        ...

    # -- cooldowns -------------------------------------------------------------------------
    async def cooldowns_for(self, account: str, model: str) -> list[Cooldown]:
        """Every record that applies to the pair: the account's, the model's and the pair's."""
        ...

    async def list_cooldowns(self) -> list[Cooldown]:
        """Every stored record, expired ones included."""
        ...

    async def update_cooldown(self, key: CooldownKey, change: CooldownChange) -> Cooldown | None:
        """Atomically replace the record at `key` by ``change(current)``; return the result."""
        ...

    async def update_cooldowns(self, changes: CooldownChanges) -> list[Cooldown | None]:
        """Apply each change in order, all in one atomic step; return the results in order."""
        ...

    async def delete_cooldown(self, key: CooldownKey) -> bool:
        """Remove a record; True if there was one."""
        ...

    async def claim_probe(self, key: CooldownKey, *, now: float, lease_until: float) -> bool:
        """Atomically take the probe of an active record whose probe time has come and that
        nobody holds; exactly one caller wins until `lease_until`."""
        ...

    async def release_probe(self, key: CooldownKey) -> None:
        """Give a claimed probe back (the probe was inconclusive) so another caller may try."""
        ...

    # -- pacing ----------------------------------------------------------------------------
    async def acquire_slot(
        self,
        account: str,
        *,
        slot_id: str,
        now: float,
        window: float,
        max_requests: int,
        max_in_flight: int,
        lease_until: float,
    ) -> Slot | SlotRefusal:
        """Atomically grant a slot if fewer than `max_requests` requests started within the
        last `window` seconds and fewer than `max_in_flight` are in flight; a grant also
        marks the account as used at `now`."""
        ...

    async def release_slot(self, slot_id: str, *, now: float, counted: bool) -> None:
        """End a slot. A counted request keeps counting in the window until it leaves it; an
        uncounted one (refused with 429, which Puter does not count) is forgotten."""
        ...

    async def window_usage(self, account: str, *, now: float, window: float) -> WindowUsage:
        """For status displays: requests started within `window`, and requests running now.
        A released request that still holds its place for a moment (see `Pacer.release`), or
        one whose process has ended, is not running: `acquire_slot` may still count the first."""
        ...

    # -- last use and attempts -------------------------------------------------------------
    async def touch(self, account: str, now: float) -> None:
        """Mark the account used at `now` (a later time wins)."""
        ...

    async def last_used(self) -> dict[str, float]:
        """When each account last got a request."""
        ...

    async def record_attempt(self, attempt: Attempt) -> None:
        """Write an attempt record now (see `log_attempt` for the way that does not wait)."""
        ...

    async def recent_attempts(self, limit: int = 100) -> list[Attempt]:
        """The newest attempts first."""
        ...

    async def attempts_since(self, since: float) -> list[Attempt]:
        """Every attempt that ended at `since` or later (epoch seconds), oldest first: what
        usage statistics are computed from. Attempts logged but not yet written are included."""
        ...

    # -- housekeeping ----------------------------------------------------------------------
    async def prune(self, *, now: float, attempts_max_age: float, cooldowns_max_age: float) -> None:
        """Forget attempts older than `attempts_max_age`, cooldowns that ended more than
        `cooldowns_max_age` ago and slots that no longer count."""
        ...

    async def recover(self, error: BaseException) -> bool:
        """After an operation failed with `error`, try to make the store usable again (e.g. a
        damaged file replaced by a new one). True if the operation may be retried."""
        ...

    async def aclose(self) -> None:
        """Write what is pending and let go of the store's resources."""
        ...


class SharedSlots(Protocol):
    """A store whose pacing slots other processes see (SQLite, Redis): what it must give back
    when this process is stopped by a signal."""

    def release_owned(self, *, now: float) -> int:
        """Give back, synchronously and within a few seconds, every slot this process still
        holds in the store, as a request Puter counted; how many there were."""
        ...


_shared: weakref.WeakSet[SharedSlots] = weakref.WeakSet()


def shares_slots(store: SharedSlots) -> None:
    """Register a store whose slots `release_process_slots` must give back (while it lives)."""
    _shared.add(store)


def release_process_slots() -> int:
    """Give back every slot this process holds, in every shared store it has open.

    For the SIGTERM / SIGHUP handlers (see `puter_mcp.runtime`): the process is about to end,
    so whatever it still sends is abandoned, and other processes should not wait for its places
    until their leases run out. Synchronous, as a signal handler must be; a store that cannot
    be reached is passed over (its slots end with their leases). Returns how many slots were
    given back.
    """
    released = 0
    now = time.time()
    for store in list(_shared):
        with suppress(Exception):  # stopping anyway: one store's failure must not keep the others'
            released += store.release_owned(now=now)
    return released
