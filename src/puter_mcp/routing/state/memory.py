"""The memory store: state for one process only, for tests and as the fallback of a failed store."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from puter_mcp.routing.state.protocol import CooldownChanges
from puter_mcp.routing.state.records import (
    SLOT_HISTORY,
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
    applies_to,
    check_key,
    probe_claimable,
    refusal,
    with_claim,
)

__all__ = ["MemoryStateStore"]


@dataclass(slots=True)
class _MemorySlot:
    slot: Slot
    released_at: float | None = None


class MemoryStateStore:
    """State for one process only: for tests, and the fallback when the shared store fails.

    A lock makes each method atomic (no method awaits while holding it), so the contract is the
    same as SQLite's within a process, worker threads included.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cooldowns: dict[CooldownKey, Cooldown] = {}
        self._slots: dict[str, _MemorySlot] = {}
        self._last_used: dict[str, float] = {}
        self._attempts: list[Attempt] = []

    def describe(self) -> str:
        return "memory"

    # -- the two steps of a call -----------------------------------------------------------

    async def acquire(self, account: str, model: str, *, judge: Judge[D], slot: SlotRequest) -> Admitted[D]:
        with self._lock:
            decision = judge([c for c in self._cooldowns.values() if applies_to(c, account, model)])
            claim = decision.claim
            current = None if claim is None else self._cooldowns.get(claim)
            if claim is not None and (current is None or not probe_claimable(current, slot.now)):
                return Admitted(decision, None, claimed=False)
            granted: Slot | SlotRefusal | None = None
            if decision.take_slot:
                granted = self._take_slot(account, slot)
                if isinstance(granted, SlotRefusal):
                    return Admitted(decision, granted, claimed=False)
            if claim is not None and current is not None:
                self._cooldowns[claim] = with_claim(current, decision.claim_until)
            return Admitted(decision, granted, claimed=claim is not None)

    async def settle(self, slot_id: str, *, now: float, counted: bool, changes: CooldownChanges = ()) -> None:
        with self._lock:
            self._release_slot(slot_id, now=now, counted=counted)
            self._apply(changes)

    def log_attempt(self, attempt: Attempt) -> None:
        with self._lock:
            self._attempts.append(attempt)

    # -- cooldowns -------------------------------------------------------------------------

    async def cooldowns_for(self, account: str, model: str) -> list[Cooldown]:
        with self._lock:
            return [c for c in self._cooldowns.values() if applies_to(c, account, model)]

    async def list_cooldowns(self) -> list[Cooldown]:
        with self._lock:
            return list(self._cooldowns.values())

    async def update_cooldown(self, key: CooldownKey, change: CooldownChange) -> Cooldown | None:
        return (await self.update_cooldowns([(key, change)]))[0]

    async def update_cooldowns(self, changes: CooldownChanges) -> list[Cooldown | None]:
        with self._lock:
            return self._apply(changes)

    async def delete_cooldown(self, key: CooldownKey) -> bool:
        with self._lock:
            return self._cooldowns.pop(key, None) is not None

    async def claim_probe(self, key: CooldownKey, *, now: float, lease_until: float) -> bool:
        with self._lock:
            current = self._cooldowns.get(key)
            if current is None or not probe_claimable(current, now):
                return False
            self._cooldowns[key] = with_claim(current, lease_until)
            return True

    async def release_probe(self, key: CooldownKey) -> None:
        with self._lock:
            current = self._cooldowns.get(key)
            if current is not None:
                self._cooldowns[key] = with_claim(current, None)

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
        request = SlotRequest(slot_id, now, window, max_requests, max_in_flight, lease_until)
        with self._lock:
            return self._take_slot(account, request)

    async def release_slot(self, slot_id: str, *, now: float, counted: bool) -> None:
        with self._lock:
            self._release_slot(slot_id, now=now, counted=counted)

    async def window_usage(self, account: str, *, now: float, window: float) -> WindowUsage:
        with self._lock:
            mine = [s for s in self._slots.values() if s.slot.account == account]
            return WindowUsage(
                requests=sum(1 for s in mine if s.slot.started + window > now),
                # Running requests only: a finished one still settling is not in flight.
                in_flight=sum(1 for s in mine if s.released_at is None and s.slot.lease_until > now),
            )

    # -- last use and attempts -------------------------------------------------------------

    async def touch(self, account: str, now: float) -> None:
        with self._lock:
            self._last_used[account] = max(now, self._last_used.get(account, now))

    async def last_used(self) -> dict[str, float]:
        with self._lock:
            return dict(self._last_used)

    async def record_attempt(self, attempt: Attempt) -> None:
        self.log_attempt(attempt)

    async def recent_attempts(self, limit: int = 100) -> list[Attempt]:
        with self._lock:
            return list(reversed(self._attempts[-limit:])) if limit > 0 else []

    async def attempts_since(self, since: float) -> list[Attempt]:
        with self._lock:
            # Logged in the order attempts ended, except when two tasks' ends interleave with
            # their logging: sorted (stably) so the answer is oldest first as the protocol says.
            return sorted((a for a in self._attempts if a.time >= since), key=lambda a: a.time)

    # -- housekeeping ----------------------------------------------------------------------

    async def prune(self, *, now: float, attempts_max_age: float, cooldowns_max_age: float) -> None:
        with self._lock:
            self._attempts = [a for a in self._attempts if a.time >= now - attempts_max_age]
            self._cooldowns = {k: c for k, c in self._cooldowns.items() if c.until >= now - cooldowns_max_age}
            self._forget_old_slots(now)

    async def recover(self, error: BaseException) -> bool:
        """Nothing to repair: memory does not fail that way."""
        return False

    async def aclose(self) -> None:
        """Nothing to release; present for the protocol."""

    # -- with the lock held ----------------------------------------------------------------

    def _apply(self, changes: CooldownChanges) -> list[Cooldown | None]:
        results: list[Cooldown | None] = []
        for key, change in changes:
            new = change(self._cooldowns.get(key))
            check_key(new, key)
            if new is None:
                self._cooldowns.pop(key, None)
            else:
                self._cooldowns[key] = new
            results.append(new)
        return results

    def _take_slot(self, account: str, request: SlotRequest) -> Slot | SlotRefusal:
        now, window = request.now, request.window
        self._forget_old_slots(now)
        mine = [s for s in self._slots.values() if s.slot.account == account]
        starts = sorted(s.slot.started for s in mine if s.slot.started + window > now)
        in_flight = sum(1 for s in mine if _occupies(s, now))
        if len(starts) < request.max_requests and in_flight < request.max_in_flight:
            slot = Slot(request.slot_id, account, now, request.lease_until)
            self._slots[request.slot_id] = _MemorySlot(slot)
            self._last_used[account] = max(now, self._last_used.get(account, now))
            return slot
        settling = [s.released_at for s in mine if _occupies(s, now) and s.released_at is not None]
        return refusal(
            starts,
            in_flight,
            window,
            request.max_requests,
            request.max_in_flight,
            min(settling, default=None),
        )

    def _release_slot(self, slot_id: str, *, now: float, counted: bool) -> None:
        held = self._slots.get(slot_id)
        if held is None:
            return
        if counted:
            held.released_at = now if held.released_at is None else held.released_at
        else:
            del self._slots[slot_id]

    def _forget_old_slots(self, now: float) -> None:
        old = [
            sid
            for sid, s in self._slots.items()
            if s.slot.started < now - SLOT_HISTORY
            and (s.released_at is not None or s.slot.lease_until <= now)
        ]
        for sid in old:
            del self._slots[sid]


def _occupies(held: _MemorySlot, now: float) -> bool:
    """A slot counts as in flight until released (`released_at` may lie a moment ahead: see
    `Pacer.release`) and never past its lease."""
    released = held.released_at
    return (released is None or released > now) and held.slot.lease_until > now
