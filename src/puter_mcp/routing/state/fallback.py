"""Degrading to memory: a store that switches to memory, for good, the first time its store fails.

A state problem must never fail a tool call: losing the sharing between processes is much
better than losing the answer. The switch is permanent for this process because flipping back
and forth would split the state between two places; the warning tells the user what to do.
What can still be read from the failed store (cooldowns, last use) is copied into memory first,
so that known cooldowns are not forgotten. It wraps any store: SQLite today, a networked one
later.
"""

from __future__ import annotations

import sqlite3
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
    """

    def __init__(
        self,
        primary: StateStore,
        *,
        on_warning: WarningSink,
        errors: tuple[type[BaseException], ...] = _DEFAULT_ERRORS,
        name: str | None = None,
        advice: str = "If this happens again, restart puter-mcp.",
    ) -> None:
        self._primary: StateStore | None = primary
        self._memory = MemoryStateStore()
        self._on_warning = on_warning
        self._errors = errors
        self._name = name or f"the shared state ({primary.describe()})"
        self._advice = advice

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
        with suppress(*self._errors):
            await failed.aclose()
        self._on_warning(
            f"puter-mcp: {self._name} failed ({error}). This process now keeps cooldowns and "
            "pacing in memory, so other puter-mcp processes will not see them. " + self._advice
        )

    async def _run(self, operation: Callable[[StateStore], Awaitable[_T]]) -> _T:
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
        return primary.describe() if primary is not None else "memory (the shared state failed)"

    async def acquire(self, account: str, model: str, *, judge: Judge[D], slot: SlotRequest) -> Admitted[D]:
        return await self._run(lambda s: s.acquire(account, model, judge=judge, slot=slot))

    async def settle(
        self, slot_id: str, *, now: float, counted: bool, changes: CooldownChanges = ()
    ) -> list[Cooldown | None]:
        return await self._run(lambda s: s.settle(slot_id, now=now, counted=counted, changes=changes))

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
        primary = self._primary
        if primary is not None:
            with suppress(*self._errors):
                await primary.aclose()
        await self._memory.aclose()
