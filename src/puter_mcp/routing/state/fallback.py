"""Degrading to memory: a store that switches to memory the first time its store fails.

A state problem must never fail a tool call: losing the sharing between processes is much
better than losing the answer. For a file (SQLite) the switch is permanent for this process,
because flipping back and forth would split the state between two places; the warning tells the
user what to do. What can still be read from the failed store (cooldowns, last use) is copied
into memory first, so that known cooldowns are not forgotten.

A networked store (Redis) fails and comes back on its own: with `retry_after`, the wrapper tries
it again at most that often, and when it answers, gives back there the slots released in the
meantime, writes there the cooldowns learned in memory (the later end wins) and the attempts
made meanwhile, and uses it again.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TypeVar

from puter_mcp.routing.state.memory import MemoryStateStore
from puter_mcp.routing.state.protocol import CooldownChanges, StateStore, WarningSink
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
    StateStoreError,
    WindowUsage,
)

__all__ = ["FallbackStateStore"]

_T = TypeVar("_T")

_DEFAULT_ERRORS: tuple[type[BaseException], ...] = (StateStoreError, OSError, sqlite3.Error)


class FallbackStateStore:
    """A store that answers from memory once its primary store has failed.

    Args:
        primary: the store to use while it works.
        on_warning: told once, when the switch happens.
        errors: what counts as the primary failing (anything else is a bug, and raised).
        name: how the warning names the primary (default: its `describe()`).
        advice: the warning's last sentence: what the user may do.
        retry_after: seconds between two tries of a failed primary (None: never try again,
            for a store whose failure lasts, like a damaged file); told to `on_warning` too
            when the primary answers again.
        clock: monotonic seconds, for `retry_after`.
    """

    def __init__(
        self,
        primary: StateStore,
        *,
        on_warning: WarningSink,
        errors: tuple[type[BaseException], ...] = _DEFAULT_ERRORS,
        name: str | None = None,
        advice: str = "If this happens again, restart puter-mcp.",
        retry_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary: StateStore | None = primary
        self._memory = MemoryStateStore()
        self._on_warning = on_warning
        self._errors = errors
        self._name = name or f"the shared state ({primary.describe()})"
        self._advice = advice
        self._retry_after = retry_after
        self._clock = clock
        self._failed: StateStore | None = None  # the primary while it is tried again
        self._retry_at = 0.0
        # Slot releases made while degraded, given back to the primary when it returns: its
        # own slots would otherwise hold their places until their leases end.
        self._released: deque[tuple[str, float, bool]] = deque(maxlen=10_000)

    @property
    def degraded(self) -> bool:
        """True once this process has fallen back to memory."""
        return self._primary is None

    async def _degrade(self, failed: StateStore, error: BaseException) -> None:
        if self._primary is not failed:
            return  # another task already switched
        self._primary = None
        try:
            for cooldown in await failed.list_cooldowns():
                await self._memory.update_cooldown(cooldown.key, lambda _old, c=cooldown: c)
            for account, at in (await failed.last_used()).items():
                await self._memory.touch(account, at)
        except self._errors:
            pass  # nothing more can be saved; memory starts (partly) empty
        if self._retry_after is None:
            with suppress(*self._errors):
                await failed.aclose()
            until = ""
        else:
            self._failed = failed
            self._retry_at = self._clock() + self._retry_after
            until = f" until it answers again (tried every {self._retry_after:g} s)"
        self._on_warning(
            f"puter-mcp: {self._name} failed ({error}). This process now keeps cooldowns and "
            f"pacing in memory{until}, so other puter-mcp processes will not see them. " + self._advice
        )

    async def _try_return(self) -> None:
        """Use the failed primary again if it answers: first give it what happened meanwhile."""
        failed = self._failed
        if failed is None or self._clock() < self._retry_at:
            return
        assert self._retry_after is not None
        self._retry_at = self._clock() + self._retry_after  # one try per interval, whoever asks
        try:
            for slot_id, now, counted in list(self._released):
                await failed.release_slot(slot_id, now=now, counted=counted)
            learned = await self._memory.list_cooldowns()
            await failed.update_cooldowns([(c.key, lambda old, c=c: _later(old, c)) for c in learned])
        except self._errors:
            return  # still failing: memory it stays
        if self._failed is not failed:
            return  # another task came back first
        # The attempts made meanwhile join the shared log (written with the primary's next
        # write), so that the statistics of every process cover the outage too.
        for attempt in await self._memory.attempts_since(0.0):
            failed.log_attempt(attempt)
        self._failed = None
        self._released.clear()
        self._primary = failed
        # Memory's slots belong to requests that end on the primary now (a release of a slot
        # it does not know changes nothing), so the next outage starts from a clean memory.
        self._memory = MemoryStateStore()
        self._on_warning(
            f"puter-mcp: {self._name} answers again; this process shares cooldowns and pacing "
            "through it again."
        )

    async def _run(self, operation: Callable[[StateStore], Awaitable[_T]]) -> _T:
        if self._primary is None and self._failed is not None:
            await self._try_return()
        primary = self._primary
        if primary is not None:
            try:
                return await operation(primary)
            except self._errors as error:
                failure: BaseException = error
            # A damaged file is replaced by a new one, once (`recover`); after that, or for
            # any other failure, memory it is.
            try:
                if await primary.recover(failure):
                    return await operation(primary)
            except self._errors as error:
                failure = error
            await self._degrade(primary, failure)
        return await operation(self._memory)

    def describe(self) -> str:
        primary = self._primary
        if primary is not None:
            return primary.describe()
        if self._failed is not None:
            return f"memory ({self._failed.describe()} failed; tried again every {self._retry_after:g} s)"
        return "memory (the shared state failed)"

    async def acquire(self, account: str, model: str, *, judge: Judge[D], slot: SlotRequest) -> Admitted[D]:
        return await self._run(lambda s: s.acquire(account, model, judge=judge, slot=slot))

    async def settle(self, slot_id: str, *, now: float, counted: bool, changes: CooldownChanges = ()) -> None:
        await self._run(lambda s: s.settle(slot_id, now=now, counted=counted, changes=changes))
        self._note_release(slot_id, now, counted)

    def _note_release(self, slot_id: str, now: float, counted: bool) -> None:
        """Keep a release that went to memory, for the primary's return (see `_released`)."""
        if self._primary is None and self._failed is not None:
            self._released.append((slot_id, now, counted))

    def log_attempt(self, attempt: Attempt) -> None:
        (self._primary or self._memory).log_attempt(attempt)

    async def cooldowns_for(self, account: str, model: str) -> list[Cooldown]:
        return await self._run(lambda s: s.cooldowns_for(account, model))

    async def list_cooldowns(self) -> list[Cooldown]:
        return await self._run(lambda s: s.list_cooldowns())

    async def update_cooldown(self, key: CooldownKey, change: CooldownChange) -> Cooldown | None:
        return await self._run(lambda s: s.update_cooldown(key, change))

    async def update_cooldowns(self, changes: CooldownChanges) -> list[Cooldown | None]:
        return await self._run(lambda s: s.update_cooldowns(changes))

    async def delete_cooldown(self, key: CooldownKey) -> bool:
        return await self._run(lambda s: s.delete_cooldown(key))

    async def claim_probe(self, key: CooldownKey, *, now: float, lease_until: float) -> bool:
        return await self._run(lambda s: s.claim_probe(key, now=now, lease_until=lease_until))

    async def release_probe(self, key: CooldownKey) -> None:
        await self._run(lambda s: s.release_probe(key))

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
        return await self._run(
            lambda s: s.acquire_slot(
                account,
                slot_id=slot_id,
                now=now,
                window=window,
                max_requests=max_requests,
                max_in_flight=max_in_flight,
                lease_until=lease_until,
            )
        )

    async def release_slot(self, slot_id: str, *, now: float, counted: bool) -> None:
        await self._run(lambda s: s.release_slot(slot_id, now=now, counted=counted))
        self._note_release(slot_id, now, counted)

    async def window_usage(self, account: str, *, now: float, window: float) -> WindowUsage:
        return await self._run(lambda s: s.window_usage(account, now=now, window=window))

    async def touch(self, account: str, now: float) -> None:
        await self._run(lambda s: s.touch(account, now))

    async def last_used(self) -> dict[str, float]:
        return await self._run(lambda s: s.last_used())

    async def record_attempt(self, attempt: Attempt) -> None:
        await self._run(lambda s: s.record_attempt(attempt))

    async def recent_attempts(self, limit: int = 100) -> list[Attempt]:
        return await self._run(lambda s: s.recent_attempts(limit))

    async def attempts_since(self, since: float) -> list[Attempt]:
        return await self._run(lambda s: s.attempts_since(since))

    async def prune(self, *, now: float, attempts_max_age: float, cooldowns_max_age: float) -> None:
        await self._run(
            lambda s: s.prune(now=now, attempts_max_age=attempts_max_age, cooldowns_max_age=cooldowns_max_age)
        )

    async def recover(self, error: BaseException) -> bool:
        """Recovery happens inside every operation; from outside there is nothing to do."""
        return False

    async def aclose(self) -> None:
        for store in (self._primary, self._failed):
            if store is not None:
                with suppress(*self._errors):
                    await store.aclose()
        await self._memory.aclose()


def _later(stored: Cooldown | None, learned: Cooldown) -> Cooldown:
    """Of a stored record and one learned in memory meanwhile, the one that ends later."""
    return learned if stored is None or learned.until > stored.until else stored
