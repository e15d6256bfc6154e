"""Per-key request limits that hold across every gateway process of the machine.

The counting is the `limits` library's moving window (``limits.aio.strategies``): a key with
``rpm = 10`` is admitted while fewer than 10 of its requests started in the last 60 seconds,
exactly, with no burst at a window's edge. The library keeps its windows in a storage; for
several processes that storage must be shared, so `SQLiteLimitStorage` implements the
library's async `Storage` (and `MovingWindowSupport`) over the key store's SQLite file, each
acquire one ``BEGIN IMMEDIATE`` transaction. The library's memory storage serves tests of the
logic alone; gateways on several hosts share the library's own Redis storage
(`puter_mcp.gateway.redis_keys.RedisLimitStorage`).

`KeyLimiter` applies a key's windows (per minute, hour, day) all or none: a request refused by
its daily limit does not use a place in its minute window (a 429 never counts), and a request
admitted counts in all of them. With the SQLite storage the check and the counting are one
transaction, so two processes can never both take the last place.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import MovingWindowSupport, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from puter_mcp.gateway.keystore import KeyDatabase, KeyLimits

__all__ = ["Clock", "KeyLimiter", "LimitVerdict", "SQLiteLimitStorage"]

Clock = Callable[[], float]
"""Epoch seconds; injectable so that tests move time instead of sleeping."""

_ITEM_OF_LABEL: dict[str, type[RateLimitItem]] = {
    "rpm": RateLimitItemPerMinute,
    "rph": RateLimitItemPerHour,
    "rpd": RateLimitItemPerDay,
}
_WORD_OF_LABEL = {"rpm": "minute", "rph": "hour", "rpd": "day"}

_LONGEST_WINDOW = 86400.0
"""No window is longer than a day (rpd): an entry older than that counts nowhere."""


class SQLiteLimitStorage(Storage, MovingWindowSupport):
    """The `limits` storage over the key store's SQLite file (tables ``limit_entries`` for the
    moving window, ``limit_counters`` for the fixed window the library's base class requires).

    Every method is inline work on the `KeyDatabase` and never suspends, so a caller may run
    several of them inside one ``database.write()`` (see `KeyLimiter`).

    Args:
        database: the key store's open file.
        clock: epoch seconds (tests pass their own).
    """

    STORAGE_SCHEME = None  # made directly, never from a URI

    def __init__(self, database: KeyDatabase, *, clock: Clock = time.time) -> None:
        super().__init__(None, wrap_exceptions=False)
        self.database = database
        self.clock = clock

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    def atomically(self) -> AbstractContextManager[object]:
        """One transaction around several calls (they join it): see `KeyLimiter.admit`."""
        return self.database.write()

    # -- the moving window -------------------------------------------------------------------

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        # Entries are numbered per key, in the order admitted (and so in time). The window has
        # room for `amount` more when the entry `limit - amount` places before the next one has
        # left it: one lookup by number, however many entries the window holds (a day's limit
        # may hold thousands).
        if amount > limit:
            return False
        now = self.clock()
        with self.database.write() as conn:
            # An entry counts while `at + expiry > now`: it leaves exactly when announced.
            conn.execute("DELETE FROM limit_entries WHERE key = ? AND at <= ?", (key, now - expiry))
            (last,) = conn.execute("SELECT MAX(seq) FROM limit_entries WHERE key = ?", (key,)).fetchone()
            last = int(last or 0)
            blocking = last + amount - limit
            if (
                blocking > 0
                and conn.execute(
                    "SELECT 1 FROM limit_entries WHERE key = ? AND seq = ?", (key, blocking)
                ).fetchone()
            ):
                return False
            conn.executemany(
                "INSERT INTO limit_entries (key, seq, at) VALUES (?, ?, ?)",
                [(key, last + number, now) for number in range(1, amount + 1)],
            )
        return True

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = self.clock()
        with self.database.read() as conn:
            oldest = conn.execute(
                "SELECT seq, at FROM limit_entries WHERE key = ? AND at > ? ORDER BY at, seq LIMIT 1",
                (key, now - expiry),
            ).fetchone()
            if oldest is None:
                return now, 0
            (last,) = conn.execute("SELECT MAX(seq) FROM limit_entries WHERE key = ?", (key,)).fetchone()
        return float(oldest[1]), int(last) - int(oldest[0]) + 1

    # -- the fixed window (required by the base class; the gateway uses the moving one) ------

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self.clock()
        with self.database.write() as conn:
            row = conn.execute("SELECT value, expires FROM limit_counters WHERE key = ?", (key,)).fetchone()
            if row is None or row[1] <= now:
                value, expires = amount, now + expiry
            else:
                value, expires = int(row[0]) + amount, float(row[1])
            conn.execute(
                "INSERT OR REPLACE INTO limit_counters (key, value, expires) VALUES (?, ?, ?)",
                (key, value, expires),
            )
        return value

    async def get(self, key: str) -> int:
        with self.database.read() as conn:
            row = conn.execute(
                "SELECT value FROM limit_counters WHERE key = ? AND expires > ?", (key, self.clock())
            ).fetchone()
        return 0 if row is None else int(row[0])

    async def get_expiry(self, key: str) -> float:
        now = self.clock()
        with self.database.read() as conn:
            row = conn.execute(
                "SELECT expires FROM limit_counters WHERE key = ? AND expires > ?", (key, now)
            ).fetchone()
        return now if row is None else float(row[0])

    # -- housekeeping ------------------------------------------------------------------------

    async def check(self) -> bool:
        try:
            with self.database.read() as conn:
                conn.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    async def clear(self, key: str) -> None:
        with self.database.write() as conn:
            conn.execute("DELETE FROM limit_entries WHERE key = ?", (key,))
            conn.execute("DELETE FROM limit_counters WHERE key = ?", (key,))

    async def reset(self) -> int | None:
        with self.database.write() as conn:
            entries = conn.execute("DELETE FROM limit_entries").rowcount
            counters = conn.execute("DELETE FROM limit_counters").rowcount
        return entries + counters

    def forget_old(self) -> int:
        """Drop entries older than the longest window and counters past their expiry: what an
        unused key left behind (a used key's own acquire drops its old entries)."""
        now = self.clock()
        with self.database.write() as conn:
            entries = conn.execute(
                "DELETE FROM limit_entries WHERE at <= ?", (now - _LONGEST_WINDOW,)
            ).rowcount
            counters = conn.execute("DELETE FROM limit_counters WHERE expires <= ?", (now,)).rowcount
        return entries + counters


@dataclass(frozen=True, slots=True)
class LimitVerdict:
    """Whether a request may go. When not: which limit (`label`, e.g. ``rpm``, and its
    `amount`) and `retry_after`, the seconds until every full window has a free place."""

    admitted: bool
    label: str | None = None
    amount: int | None = None
    retry_after: float | None = None

    def describe(self) -> str:
        """``10 requests per minute``: the limit that refused."""
        if self.label is None:
            return "no limit"
        return f"{self.amount} requests per {_WORD_OF_LABEL[self.label]}"


class _Refused(Exception):
    """A window was full: undo the counts already made in the other windows (roll back)."""


class KeyLimiter:
    """A key's windows, applied all or none, over any `limits` storage with a moving window.

    Args:
        storage: `SQLiteLimitStorage` (shared by the processes of a machine), `RedisLimitStorage`
            (shared by a fleet) or ``limits.aio.storage.MemoryStorage``
            (this process only).
        clock: the clock the storage counts with (to turn a window's reset into a wait).
    """

    def __init__(self, storage: Storage, *, clock: Clock = time.time) -> None:
        if not isinstance(storage, MovingWindowSupport):
            raise TypeError(f"{type(storage).__name__} has no moving window")
        self.storage = storage
        self._strategy = MovingWindowRateLimiter(storage)
        self._clock = clock

    def _atomically(self) -> AbstractContextManager[object] | None:
        atomically = getattr(self.storage, "atomically", None)
        return atomically() if atomically is not None else None

    async def admit(self, identity: str, limits: KeyLimits) -> LimitVerdict:
        """Count one request of the key known to the limiter as `identity`, if every window
        has a place; otherwise count nothing and say which limit refused and for how long."""
        windows = [(label, _ITEM_OF_LABEL[label](amount)) for label, amount, _ in limits.windows()]
        if not windows:
            return LimitVerdict(admitted=True)
        give_back = getattr(self.storage, "give_back", None)
        if give_back is not None:
            return await self._admit_giving_back(identity, windows, give_back)
        transaction = self._atomically()
        if transaction is None:
            # One process's memory, where these calls never suspend: nothing comes between
            # the check and the count, and a window found full leaves the others untouched.
            full = [(label, item) for label, item in windows if not await self._strategy.test(item, identity)]
            if full:
                return await self._refusal(identity, full)
            for _label, item in windows:
                await self._strategy.hit(item, identity)
            return LimitVerdict(admitted=True)
        refused_by: str | None = None
        try:
            with transaction:
                for label, item in windows:
                    if not await self._strategy.hit(item, identity):
                        refused_by = label
                        raise _Refused  # rolls back the windows already counted
        except _Refused:
            # Every full window, so that the wait is the longest of theirs.
            full = [
                (label, item)
                for label, item in windows
                if label == refused_by or not await self._strategy.test(item, identity)
            ]
            return await self._refusal(identity, full)
        return LimitVerdict(admitted=True)

    async def _admit_giving_back(
        self,
        identity: str,
        windows: list[tuple[str, RateLimitItem]],
        give_back: Callable[[str], Awaitable[None]],
    ) -> LimitVerdict:
        # A storage shared over the network (Redis): each window's check-and-take is one atomic
        # step there, but the windows together are not, so a window that refuses undoes the
        # places already taken in the others (a 429 counts nowhere).
        taken: list[RateLimitItem] = []
        for label, item in windows:
            if await self._strategy.hit(item, identity):
                taken.append(item)
                continue
            for done in reversed(taken):
                await give_back(done.key_for(identity))
            full = [
                (other, other_item)
                for other, other_item in windows
                if other == label or not await self._strategy.test(other_item, identity)
            ]
            return await self._refusal(identity, full)
        return LimitVerdict(admitted=True)

    async def _refusal(self, identity: str, full: list[tuple[str, RateLimitItem]]) -> LimitVerdict:
        now = self._clock()
        waits: list[tuple[float, str, RateLimitItem]] = []
        for label, item in full:
            stats = await self._strategy.get_window_stats(item, identity)
            waits.append((max(0.0, stats.reset_time - now), label, item))
        wait, label, item = max(waits, key=lambda entry: entry[0])
        # Never 0: a client told to retry at once would come back into the same full window.
        return LimitVerdict(admitted=False, label=label, amount=item.amount, retry_after=max(wait, 0.001))
