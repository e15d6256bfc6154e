"""The state every puter-mcp process of one user shares: cooldowns, pacing, last use, attempts.

Claude Desktop, Zed and Cursor each start their own puter-mcp process. If each kept its
cooldowns and pacing in memory, one process would happily send requests on an account that
another has just seen rate-limited, and together they would exceed Puter's per-account limits.
So this state lives in one SQLite database (WAL mode) in the platformdirs state directory.

The router never talks to SQLite directly: it goes through the small `StateStore` protocol,
so another backend (e.g. Redis) can be added without touching the router. Two backends here:

- `MemoryStateStore`: one process only (tests, and the fallback when the file is unusable);
- `SQLiteStateStore`: the shared one.

`open_state_store` is what the application calls: a damaged database is moved aside and
replaced by a new one; a locked, unreachable or newer one degrades to memory with a warning;
and the SQLite store it returns degrades to memory at run time if an operation fails (after
one attempt to replace a file found damaged), so state problems never crash a tool call.

Every record is keyed by the Puter API origin it was learned against, and every slot names
the process that holds it, so that a dead process's places are freed at once (see
docs/state.md).

All times are wall-clock epoch seconds (`time.time`), because several processes compare them.
The store methods are synchronous on purpose: SQLite calls take microseconds, and a
synchronous `release` can run in a ``finally`` block even while a task is being cancelled.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

from puter_mcp.puter.errors import FailureKind
from puter_mcp.routing.owners import Owner, is_running, this_process

__all__ = [
    "DEFAULT_ORIGIN",
    "SCHEMA_VERSION",
    "Attempt",
    "Cooldown",
    "CooldownChange",
    "CooldownKey",
    "FallbackStateStore",
    "MemoryStateStore",
    "SQLiteStateStore",
    "Scope",
    "Slot",
    "SlotRefusal",
    "StateFileCheck",
    "StateStore",
    "StateStoreError",
    "WindowUsage",
    "check_state_file",
    "default_state_path",
    "is_corruption",
    "open_state_store",
    "release_process_slots",
]

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""Stored in ``PRAGMA user_version``; bump it (with a migration) whenever the tables change."""

DEFAULT_ORIGIN = "https://api.puter.com"
"""The origin a store keys its records by when none is given: Puter's own API."""

_SLOT_HISTORY = 60.0
"""Seconds a finished slot is kept. Longer than any pacing window (Puter's is 10 s), so
pruning never removes a request that still counts."""


class StateStoreError(Exception):
    """The state database cannot be used (e.g. it was written by a newer puter-mcp)."""


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
pure function: a backend with optimistic concurrency may call it more than once."""


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


class WindowUsage(NamedTuple):
    """How busy an account is: requests started within the window and requests in flight.
    A tuple, so that ``requests, in_flight = pacer.usage(account)`` works."""

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
    """One call to Puter, for status displays, benchmarks and later routing decisions.

    Attributes:
        time: epoch seconds when the attempt was recorded.
        kind: the failure kind, or None for a success.
        ttft_ms: time to the first token (None when nothing was streamed).
        cost_usd: what Puter charged (None when unknown, e.g. Puter's test models).
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


@runtime_checkable
class StateStore(Protocol):
    """What the cooldown book, the pacer and the router need from shared state.

    Every method is atomic on its own; the read-modify-write ones (`update_cooldown`,
    `claim_probe`, `acquire_slot`) are atomic across processes for the shared backends.
    """

    def describe(self) -> str:
        """Where the state lives, for status displays (e.g. ``sqlite:/path`` or ``memory``)."""
        ...

    # -- cooldowns -------------------------------------------------------------------------
    def cooldowns_for(self, account: str, model: str) -> list[Cooldown]:
        """Every record that applies to the pair: the account's, the model's and the pair's."""
        ...

    def list_cooldowns(self) -> list[Cooldown]:
        """Every stored record, expired ones included."""
        ...

    def update_cooldown(self, key: CooldownKey, change: CooldownChange) -> Cooldown | None:
        """Atomically replace the record at `key` by ``change(current)``; return the result."""
        ...

    def delete_cooldown(self, key: CooldownKey) -> bool:
        """Remove a record; True if there was one."""
        ...

    def claim_probe(self, key: CooldownKey, *, now: float, lease_until: float) -> bool:
        """Atomically take the probe of an active record whose probe time has come and that
        nobody holds; exactly one caller wins until `lease_until`."""
        ...

    def release_probe(self, key: CooldownKey) -> None:
        """Give a claimed probe back (the probe was inconclusive) so another caller may try."""
        ...

    # -- pacing ----------------------------------------------------------------------------
    def acquire_slot(
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

    def release_slot(self, slot_id: str, *, now: float, counted: bool) -> None:
        """End a slot. A counted request keeps counting in the window until it leaves it; an
        uncounted one (refused with 429, which Puter does not count) is forgotten."""
        ...

    def window_usage(self, account: str, *, now: float, window: float) -> WindowUsage:
        """For status displays: requests started within `window`, and requests running now.
        A released request that still holds its place for a moment (see `Pacer.release`), or
        one whose process has ended, is not running: `acquire_slot` may still count the first."""
        ...

    # -- last use and attempts -------------------------------------------------------------
    def touch(self, account: str, now: float) -> None: ...

    def last_used(self) -> dict[str, float]: ...

    def record_attempt(self, attempt: Attempt) -> None: ...

    def recent_attempts(self, limit: int = 100) -> list[Attempt]:
        """The newest attempts first."""
        ...

    # -- housekeeping ----------------------------------------------------------------------
    def prune(self, *, now: float, attempts_max_age: float, cooldowns_max_age: float) -> None:
        """Forget attempts older than `attempts_max_age`, cooldowns that ended more than
        `cooldowns_max_age` ago and slots that no longer count."""
        ...

    def close(self) -> None: ...


def _check_key(cooldown: Cooldown | None, key: CooldownKey) -> None:
    if cooldown is not None and cooldown.key != key:
        raise ValueError(f"a cooldown change must keep its key {key}, got {cooldown.key}")


def _probe_claimable(cooldown: Cooldown, now: float) -> bool:
    return (
        cooldown.active(now)
        and cooldown.probe_at is not None
        and cooldown.probe_at <= now
        and (cooldown.probe_claimed_until is None or cooldown.probe_claimed_until <= now)
    )


def _applies_to(cooldown: Cooldown, account: str, model: str) -> bool:
    if cooldown.scope is Scope.ACCOUNT:
        return cooldown.account == account
    if cooldown.scope is Scope.MODEL:
        return cooldown.model == model
    return cooldown.account == account and cooldown.model == model


# ----------------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _MemorySlot:
    slot: Slot
    released_at: float | None = None


class MemoryStateStore:
    """State for one process only: for tests, and the fallback when SQLite is unusable.

    A lock makes each method atomic, so the contract is the same as SQLite's within a process
    (worker threads included).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cooldowns: dict[CooldownKey, Cooldown] = {}
        self._slots: dict[str, _MemorySlot] = {}
        self._last_used: dict[str, float] = {}
        self._attempts: list[Attempt] = []

    def describe(self) -> str:
        return "memory"

    def cooldowns_for(self, account: str, model: str) -> list[Cooldown]:
        with self._lock:
            return [c for c in self._cooldowns.values() if _applies_to(c, account, model)]

    def list_cooldowns(self) -> list[Cooldown]:
        with self._lock:
            return list(self._cooldowns.values())

    def update_cooldown(self, key: CooldownKey, change: CooldownChange) -> Cooldown | None:
        with self._lock:
            new = change(self._cooldowns.get(key))
            _check_key(new, key)
            if new is None:
                self._cooldowns.pop(key, None)
            else:
                self._cooldowns[key] = new
            return new

    def delete_cooldown(self, key: CooldownKey) -> bool:
        with self._lock:
            return self._cooldowns.pop(key, None) is not None

    def claim_probe(self, key: CooldownKey, *, now: float, lease_until: float) -> bool:
        with self._lock:
            current = self._cooldowns.get(key)
            if current is None or not _probe_claimable(current, now):
                return False
            self._cooldowns[key] = _replace_claim(current, lease_until)
            return True

    def release_probe(self, key: CooldownKey) -> None:
        with self._lock:
            current = self._cooldowns.get(key)
            if current is not None:
                self._cooldowns[key] = _replace_claim(current, None)

    def acquire_slot(
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
        with self._lock:
            self._forget_old_slots(now)
            mine = [s for s in self._slots.values() if s.slot.account == account]
            starts = sorted(s.slot.started for s in mine if s.slot.started + window > now)
            in_flight = sum(1 for s in mine if _occupies(s, now))
            if len(starts) < max_requests and in_flight < max_in_flight:
                slot = Slot(slot_id, account, now, lease_until)
                self._slots[slot_id] = _MemorySlot(slot)
                self._last_used[account] = max(now, self._last_used.get(account, now))
                return slot
            settling = [s.released_at for s in mine if _occupies(s, now) and s.released_at is not None]
            return _refusal(
                starts, in_flight, window, max_requests, max_in_flight, min(settling, default=None)
            )

    def release_slot(self, slot_id: str, *, now: float, counted: bool) -> None:
        with self._lock:
            held = self._slots.get(slot_id)
            if held is None:
                return
            if counted:
                held.released_at = now if held.released_at is None else held.released_at
            else:
                del self._slots[slot_id]

    def window_usage(self, account: str, *, now: float, window: float) -> WindowUsage:
        with self._lock:
            mine = [s for s in self._slots.values() if s.slot.account == account]
            return WindowUsage(
                requests=sum(1 for s in mine if s.slot.started + window > now),
                # Running requests only: a finished one still settling is not in flight.
                in_flight=sum(1 for s in mine if s.released_at is None and s.slot.lease_until > now),
            )

    def touch(self, account: str, now: float) -> None:
        with self._lock:
            self._last_used[account] = max(now, self._last_used.get(account, now))

    def last_used(self) -> dict[str, float]:
        with self._lock:
            return dict(self._last_used)

    def record_attempt(self, attempt: Attempt) -> None:
        with self._lock:
            self._attempts.append(attempt)

    def recent_attempts(self, limit: int = 100) -> list[Attempt]:
        with self._lock:
            return list(reversed(self._attempts[-limit:])) if limit > 0 else []

    def prune(self, *, now: float, attempts_max_age: float, cooldowns_max_age: float) -> None:
        with self._lock:
            self._attempts = [a for a in self._attempts if a.time >= now - attempts_max_age]
            self._cooldowns = {k: c for k, c in self._cooldowns.items() if c.until >= now - cooldowns_max_age}
            self._forget_old_slots(now)

    def close(self) -> None:
        """Nothing to release; present for the protocol."""

    def _forget_old_slots(self, now: float) -> None:
        old = [
            sid
            for sid, s in self._slots.items()
            if s.slot.started < now - _SLOT_HISTORY
            and (s.released_at is not None or s.slot.lease_until <= now)
        ]
        for sid in old:
            del self._slots[sid]


def _occupies(held: _MemorySlot, now: float) -> bool:
    """A slot counts as in flight until released (`released_at` may lie a moment ahead: see
    `Pacer.release`) and never past its lease."""
    released = held.released_at
    return (released is None or released > now) and held.slot.lease_until > now


def _replace_claim(cooldown: Cooldown, claimed_until: float | None) -> Cooldown:
    return replace(cooldown, probe_claimed_until=claimed_until)


def _refusal(
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


# ----------------------------------------------------------------------------------------
# SQLite
# ----------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cooldowns (
    origin TEXT NOT NULL DEFAULT '', -- the Puter API origin the record was learned against
    scope TEXT NOT NULL,
    account TEXT NOT NULL,          -- '' when the scope has no account
    model TEXT NOT NULL,            -- '' when the scope has no model
    kind TEXT NOT NULL,
    until REAL NOT NULL,            -- may be +Inf
    probe_at REAL,
    level INTEGER NOT NULL,
    reason TEXT NOT NULL,
    since REAL NOT NULL,
    probe_claimed_until REAL,
    PRIMARY KEY (origin, scope, account, model, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS slots (
    id TEXT PRIMARY KEY,
    origin TEXT NOT NULL DEFAULT '',
    account TEXT NOT NULL,
    started REAL NOT NULL,
    lease_until REAL NOT NULL,
    released_at REAL,
    host TEXT NOT NULL DEFAULT '',  -- the owner process (see routing/owners.py)
    pid INTEGER NOT NULL DEFAULT 0,
    pid_started TEXT
);
CREATE INDEX IF NOT EXISTS slots_by_account ON slots (origin, account, started);
CREATE INDEX IF NOT EXISTS slots_by_owner ON slots (host, pid) WHERE released_at IS NULL;
CREATE TABLE IF NOT EXISTS last_used (
    origin TEXT NOT NULL DEFAULT '',
    account TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (origin, account)
);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL,
    account TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT,                      -- NULL for a success
    latency_ms REAL NOT NULL,
    ttft_ms REAL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_time ON attempts (at);
"""

_MIGRATE_FROM_1 = """
DROP TABLE IF EXISTS cooldowns;
DROP TABLE IF EXISTS slots;
DROP TABLE IF EXISTS last_used;
ALTER TABLE attempts ADD COLUMN origin TEXT NOT NULL DEFAULT ''
"""
"""Schema 1 had no origin. Its cooldowns, slots and last-use times cannot be told apart by
Puter, and a cooldown applied to the wrong Puter is worse than one learned again, so they go
(they last minutes anyway); the attempt history is kept, under the unknown origin ''."""

# Written out in full (no string formatting) so every statement can be read as it runs.
_SELECT_COOLDOWNS = (
    "SELECT scope, account, model, kind, until, probe_at, level, reason, since, probe_claimed_until"
    " FROM cooldowns WHERE origin = ?"
)
_SELECT_COOLDOWN = (
    "SELECT scope, account, model, kind, until, probe_at, level, reason, since, probe_claimed_until"
    " FROM cooldowns WHERE origin = ? AND scope = ? AND account = ? AND model = ? AND kind = ?"
)
_SELECT_COOLDOWNS_FOR = (
    "SELECT scope, account, model, kind, until, probe_at, level, reason, since, probe_claimed_until"
    " FROM cooldowns WHERE origin = ? AND ("
    " (scope = 'account' AND account = ? AND model = '')"
    " OR (scope = 'model' AND account = '' AND model = ?)"
    " OR (scope = 'account_model' AND account = ? AND model = ?))"
)
_UPSERT_COOLDOWN = (
    "INSERT OR REPLACE INTO cooldowns"
    " (origin, scope, account, model, kind, until, probe_at, level, reason, since, probe_claimed_until)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELETE_COOLDOWN = (
    "DELETE FROM cooldowns WHERE origin = ? AND scope = ? AND account = ? AND model = ? AND kind = ?"
)
# One UPDATE is atomic on its own: of several processes racing for a probe, exactly one matches.
_CLAIM_PROBE = (
    "UPDATE cooldowns SET probe_claimed_until = ?"
    " WHERE origin = ? AND scope = ? AND account = ? AND model = ? AND kind = ?"
    " AND until > ? AND probe_at IS NOT NULL AND probe_at <= ?"
    " AND (probe_claimed_until IS NULL OR probe_claimed_until <= ?)"
)
_RELEASE_PROBE = (
    "UPDATE cooldowns SET probe_claimed_until = NULL"
    " WHERE origin = ? AND scope = ? AND account = ? AND model = ? AND kind = ?"
)
# The account's slots that matter now: in the window, or holding an in-flight place.
_SELECT_SLOTS = (
    "SELECT id, started, released_at, lease_until, host, pid, pid_started FROM slots"
    " WHERE origin = ? AND account = ?"
    " AND (started + ? > ? OR ((released_at IS NULL OR released_at > ?) AND lease_until > ?))"
)
_UPSERT_LAST_USED = (
    "INSERT INTO last_used (origin, account, at) VALUES (?, ?, ?)"
    " ON CONFLICT (origin, account) DO UPDATE SET at = MAX(at, excluded.at)"
)
_FORGET_OLD_SLOTS = "DELETE FROM slots WHERE started < ? AND (released_at IS NOT NULL OR lease_until <= ?)"


def _key_params(key: CooldownKey) -> tuple[str, str, str, str]:
    return (key.scope.value, key.account or "", key.model or "", key.kind.value)


def _cooldown_from_row(row: tuple[Any, ...]) -> Cooldown:
    scope, account, model, kind, until, probe_at, level, reason, since, claimed = row
    return Cooldown(
        scope=Scope(str(scope)),
        account=str(account) or None,
        model=str(model) or None,
        kind=FailureKind(str(kind)),
        until=float(until),
        probe_at=None if probe_at is None else float(probe_at),
        level=int(level),
        reason=str(reason),
        since=float(since),
        probe_claimed_until=None if claimed is None else float(claimed),
    )


def _cooldown_params(c: Cooldown) -> tuple[Any, ...]:
    return (*_key_params(c.key), c.until, c.probe_at, c.level, c.reason, c.since, c.probe_claimed_until)


def _attempt_from_row(row: tuple[Any, ...]) -> Attempt:
    at, account, model, kind, latency, ttft, tokens_in, tokens_out, cost, request_id = row
    return Attempt(
        time=float(at),
        account=str(account),
        model=str(model),
        kind=None if kind is None else FailureKind(str(kind)),
        latency_ms=float(latency),
        ttft_ms=None if ttft is None else float(ttft),
        input_tokens=None if tokens_in is None else int(tokens_in),
        output_tokens=None if tokens_out is None else int(tokens_out),
        cost_usd=None if cost is None else float(cost),
        request_id=str(request_id),
    )


def _abandoned(rows: list[tuple[Any, ...]], now: float) -> set[str]:
    """The ids of the slots (rows of `_SELECT_SLOTS`) still holding a place although their
    owner process is known to have ended."""
    gone: set[str] = set()
    verdicts: dict[Owner, bool] = {}
    for slot_id, _started, released_at, lease_until, host, pid, pid_started in rows:
        if released_at is not None or lease_until <= now:
            continue
        owner = Owner(str(host), int(pid), None if pid_started is None else str(pid_started))
        if owner not in verdicts:
            verdicts[owner] = is_running(owner)
        if not verdicts[owner]:
            gone.add(str(slot_id))
    return gone


def default_state_path() -> Path:
    """The shared database where the settings put it (`Paths.state_db`)."""
    from puter_mcp.settings import resolve_paths

    return resolve_paths().state_db


def _create_private_file(path: Path) -> None:
    """Create the database file (and its directory) readable by its owner only.

    The file holds account ids and request history, nothing secret, but it is nobody else's
    business. SQLite gives the ``-wal`` and ``-shm`` files the main file's permissions.
    """
    from puter_mcp.files import ensure_private_dir

    ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        return
    os.close(fd)


_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


class _CorruptDatabase(sqlite3.DatabaseError):
    """``PRAGMA quick_check`` found damage."""


def is_corruption(error: BaseException) -> bool:
    """Whether `error` says the database file is damaged or not a database at all (as opposed
    to locked, unreachable, or from a newer puter-mcp)."""
    if isinstance(error, _CorruptDatabase):
        return True
    code = getattr(error, "sqlite_errorcode", None)
    return (
        isinstance(error, sqlite3.DatabaseError)
        and code is not None
        and code & 0xFF
        in (
            _SQLITE_CORRUPT,
            _SQLITE_NOTADB,
        )
    )


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (info.st_dev, info.st_ino)


def _move_aside(path: Path, identity: tuple[int, int] | None) -> Path | None:
    """Rename a corrupt database (and its ``-wal`` / ``-shm``) to ``<name>.corrupt-<time>``.

    Nothing is moved when the file at `path` is no longer the one found corrupt: another
    process has already moved it and made a new one. Returns where it went, or None.
    """
    if identity is None or _file_identity(path) != identity:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    for suffix in ("-wal", "-shm"):
        with suppress(OSError):
            os.replace(path.with_name(path.name + suffix), target.with_name(target.name + suffix))
    return target


_STAT_INTERVAL = 1.0
"""Seconds between two checks that the database file is still the one this process opened."""

_open_stores: weakref.WeakSet[SQLiteStateStore] = weakref.WeakSet()


def release_process_slots() -> int:
    """Give back every slot this process holds, in every state database it has open.

    For the SIGTERM / SIGHUP handlers (see `puter_mcp.runtime`): the process is about to end,
    so whatever it still sends is abandoned. Returns how many slots were given back.
    """
    released = 0
    for store in list(_open_stores):
        with suppress(*_STORE_ERRORS):
            released += store.release_owned(now=time.time())
    return released


class SQLiteStateStore:
    """The shared store: one SQLite file in WAL mode, used by every puter-mcp process.

    WAL lets readers proceed while one process writes; every read-modify-write runs in
    ``BEGIN IMMEDIATE`` so that it takes the write lock before reading, and two processes
    cannot both see "one slot left" and both take it. A busy database is waited for at most
    `busy_timeout` seconds: our transactions take microseconds, so a longer wait means
    something is wrong, and the caller (see `FallbackStateStore`) is better off in memory.

    Every record is keyed by `origin` (the Puter API origin), so one file serves several
    Pupers (puter.com, a self-hosted one, the emulator) without mixing what each taught.

    The file is checked when opened (``PRAGMA quick_check``): a damaged one is moved aside
    (``state.db.corrupt-<time>``) and a new one created. While open, at most once a second,
    the store checks that the path still names the file it opened; if the file was deleted
    or replaced, it opens the one there now, so that it keeps sharing with the others.

    Raises `sqlite3.Error` / `OSError` / `StateStoreError` from the constructor when the file
    cannot be used; methods raise `sqlite3.Error` when an operation fails.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        origin: str = DEFAULT_ORIGIN,
        busy_timeout: float = 0.5,
        on_warning: WarningSink | None = None,
    ) -> None:
        self.path = Path(path)
        self.origin = origin
        self._busy_timeout = busy_timeout
        self._warn = on_warning or _log_warning
        self._lock = threading.Lock()
        self._swept_at = -math.inf  # when finished slots were last cleared out
        self.moved_aside: Path | None = None
        """Where a corrupt file found by this store was moved, if it moved one."""
        self._conn, self._identity = self._open_checked()
        self._checked_at = time.monotonic()
        _open_stores.add(self)

    # -- opening, checking, following the file ---------------------------------------------

    def _connect(self) -> tuple[sqlite3.Connection, tuple[int, int] | None]:
        _create_private_file(self.path)
        identity = _file_identity(self.path)
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn, identity

    def _open_checked(self) -> tuple[sqlite3.Connection, tuple[int, int] | None]:
        """Connect; a corrupt file is moved aside (once) and a new one made."""
        identity = _file_identity(self.path)
        try:
            return self._connect()
        except sqlite3.DatabaseError as error:
            if not is_corruption(error):
                raise
            self._set_aside(error, identity)
            return self._connect()

    def _set_aside(self, error: BaseException, identity: tuple[int, int] | None) -> None:
        moved = _move_aside(self.path, identity)
        if moved is None:
            return  # someone else moved it already
        self.moved_aside = moved
        self._warn(
            f"puter-mcp: the shared state file {self.path} was damaged ({error}). It was moved "
            f"aside to {moved} and a new one was created: cooldowns learned so far are forgotten "
            "and will be learned again. Nothing else is needed; you may delete the moved file."
        )

    def _prepare(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise StateStoreError(f"{self.path} cannot be switched to WAL mode (got {mode!r})")
        # NORMAL is durable enough for cooldowns in WAL mode and avoids an fsync per commit.
        conn.execute("PRAGMA synchronous=NORMAL")
        check = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
        if check != ["ok"]:
            raise _CorruptDatabase("; ".join(check[:3]))
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StateStoreError(
                f"{self.path} was written by a newer puter-mcp (schema {version}, this one "
                f"knows {SCHEMA_VERSION})"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read inside the write lock: another process may have just created it.
            found = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if found < SCHEMA_VERSION:
                script = (_MIGRATE_FROM_1 + ";" if found == 1 else "") + _SCHEMA
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _follow_file(self) -> None:
        """Reopen the database if its file was deleted or replaced (checked once a second).

        Called with the lock held. Without this, a process keeps writing to a file nobody else
        can see any more, and the processes silently stop sharing.
        """
        now = time.monotonic()
        if now - self._checked_at < _STAT_INTERVAL:
            return
        self._checked_at = now
        try:
            current = _file_identity(self.path)
        except OSError:
            return  # cannot tell; keep going with what is open
        if current == self._identity:
            return
        what = "deleted" if current is None else "replaced"
        old = self._conn
        self._conn, self._identity = self._open_checked()
        with suppress(sqlite3.Error):
            old.close()
        self._warn(
            f"puter-mcp: the shared state file {self.path} was {what} while in use; this "
            "process now uses the new file, so it keeps sharing cooldowns and pacing with the others."
        )

    def recover(self, error: BaseException) -> bool:
        """After an operation failed with `error`: if the file is damaged, move it aside and
        start a new one. True if the store can be used again (the operation may be retried)."""
        if not is_corruption(error):
            return False
        with self._lock:
            self._set_aside(error, self._identity)
            old = self._conn
            self._conn, self._identity = self._open_checked()
            with suppress(sqlite3.Error):
                old.close()
        return True

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._follow_file()
            yield self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking SQLite's write lock before anything is read."""
        with self._locked() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with suppress(sqlite3.Error):  # the original error is the one worth reporting
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._locked() as conn:
            return conn.execute(sql, params).fetchall()

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    # -- cooldowns -------------------------------------------------------------------------

    def cooldowns_for(self, account: str, model: str) -> list[Cooldown]:
        rows = self._read(_SELECT_COOLDOWNS_FOR, (self.origin, account, model, account, model))
        return [_cooldown_from_row(r) for r in rows]

    def list_cooldowns(self) -> list[Cooldown]:
        return [_cooldown_from_row(r) for r in self._read(_SELECT_COOLDOWNS, (self.origin,))]

    def update_cooldown(self, key: CooldownKey, change: CooldownChange) -> Cooldown | None:
        with self._write() as c:
            found = c.execute(_SELECT_COOLDOWN, (self.origin, *_key_params(key))).fetchone()
            new = change(None if found is None else _cooldown_from_row(found))
            _check_key(new, key)
            if new is None:
                c.execute(_DELETE_COOLDOWN, (self.origin, *_key_params(key)))
            else:
                c.execute(_UPSERT_COOLDOWN, (self.origin, *_cooldown_params(new)))
            return new

    def delete_cooldown(self, key: CooldownKey) -> bool:
        with self._locked() as conn:
            return conn.execute(_DELETE_COOLDOWN, (self.origin, *_key_params(key))).rowcount > 0

    def claim_probe(self, key: CooldownKey, *, now: float, lease_until: float) -> bool:
        with self._locked() as conn:
            cursor = conn.execute(_CLAIM_PROBE, (lease_until, self.origin, *_key_params(key), now, now, now))
            return cursor.rowcount == 1

    def release_probe(self, key: CooldownKey) -> None:
        with self._locked() as conn:
            conn.execute(_RELEASE_PROBE, (self.origin, *_key_params(key)))

    # -- pacing ----------------------------------------------------------------------------

    def acquire_slot(
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
        with self._write() as c:
            if now - self._swept_at >= _SLOT_HISTORY / 2:
                # Housekeeping, not bookkeeping: finished slots older than any window go, every
                # half minute at most rather than on every request (this runs once per call).
                c.execute(_FORGET_OLD_SLOTS, (now - _SLOT_HISTORY, now))
                self._swept_at = now
            # `started + window > now` (not `started > now - window`) so that the time we
            # announce as "frees at" (started + window) is exactly when the slot leaves.
            rows = c.execute(_SELECT_SLOTS, (self.origin, account, window, now, now, now)).fetchall()
            gone = _abandoned(rows, now)
            if gone:
                # Their processes ended without giving them back (killed, crashed): the places
                # are free now. The requests still count in the window: Puter counted them.
                c.executemany("UPDATE slots SET released_at = ? WHERE id = ?", [(now, i) for i in gone])
            starts = sorted(float(row[1]) for row in rows if row[1] + window > now)
            holding = [
                row[2]
                for row in rows
                if row[0] not in gone and (row[2] is None or row[2] > now) and row[3] > now
            ]
            if len(starts) < max_requests and len(holding) < max_in_flight:
                me = this_process()
                c.execute(
                    "INSERT INTO slots (id, origin, account, started, lease_until, host, pid, pid_started)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (slot_id, self.origin, account, now, lease_until, me.host, me.pid, me.started),
                )
                c.execute(_UPSERT_LAST_USED, (self.origin, account, now))
                return Slot(slot_id, account, now, lease_until)
            settling = [float(released) for released in holding if released is not None]
            return _refusal(
                starts, len(holding), window, max_requests, max_in_flight, min(settling, default=None)
            )

    def release_slot(self, slot_id: str, *, now: float, counted: bool) -> None:
        with self._locked() as conn:
            if counted:
                conn.execute(
                    "UPDATE slots SET released_at = ? WHERE id = ? AND released_at IS NULL", (now, slot_id)
                )
            else:
                conn.execute("DELETE FROM slots WHERE id = ?", (slot_id,))

    def release_owned(self, *, now: float) -> int:
        """Give back every slot this process still holds (any origin); how many there were.

        Waits a bounded time for the store's lock: it runs while the process is stopping.
        """
        if not self._lock.acquire(timeout=2.0):
            return 0
        try:
            me = this_process()
            cursor = self._conn.execute(
                "UPDATE slots SET released_at = ? WHERE host = ? AND pid = ? AND released_at IS NULL",
                (now, me.host, me.pid),
            )
            return cursor.rowcount
        finally:
            self._lock.release()

    def window_usage(self, account: str, *, now: float, window: float) -> WindowUsage:
        rows = self._read(_SELECT_SLOTS, (self.origin, account, window, now, now, now))
        gone = _abandoned(rows, now)
        return WindowUsage(
            requests=sum(1 for row in rows if row[1] + window > now),
            # Running requests only: a finished one still settling (see `Pacer.release`) is
            # not "in flight" to a person reading a status display.
            in_flight=sum(1 for row in rows if row[2] is None and row[3] > now and row[0] not in gone),
        )

    # -- last use and attempts -------------------------------------------------------------

    def touch(self, account: str, now: float) -> None:
        with self._locked() as conn:
            conn.execute(_UPSERT_LAST_USED, (self.origin, account, now))

    def last_used(self) -> dict[str, float]:
        rows = self._read("SELECT account, at FROM last_used WHERE origin = ?", (self.origin,))
        return {str(a): float(t) for a, t in rows}

    def record_attempt(self, attempt: Attempt) -> None:
        a = attempt
        with self._locked() as conn:
            conn.execute(
                "INSERT INTO attempts (origin, at, account, model, kind, latency_ms, ttft_ms, input_tokens,"
                " output_tokens, cost_usd, request_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    self.origin,
                    a.time,
                    a.account,
                    a.model,
                    None if a.kind is None else a.kind.value,
                    a.latency_ms,
                    a.ttft_ms,
                    a.input_tokens,
                    a.output_tokens,
                    a.cost_usd,
                    a.request_id,
                ),
            )

    def recent_attempts(self, limit: int = 100) -> list[Attempt]:
        rows = self._read(
            "SELECT at, account, model, kind, latency_ms, ttft_ms, input_tokens, output_tokens,"
            " cost_usd, request_id FROM attempts WHERE origin = ? ORDER BY id DESC LIMIT ?",
            (self.origin, max(limit, 0)),
        )
        return [_attempt_from_row(r) for r in rows]

    def prune(self, *, now: float, attempts_max_age: float, cooldowns_max_age: float) -> None:
        # By age, whatever the origin: old records of a Puter no longer used go too.
        with self._write() as c:
            c.execute("DELETE FROM attempts WHERE at < ?", (now - attempts_max_age,))
            c.execute("DELETE FROM cooldowns WHERE until < ?", (now - cooldowns_max_age,))
            c.execute(_FORGET_OLD_SLOTS, (now - _SLOT_HISTORY, now))

    def close(self) -> None:
        _open_stores.discard(self)
        with self._lock:
            self._conn.close()


# ----------------------------------------------------------------------------------------
# Degrading to memory
# ----------------------------------------------------------------------------------------

WarningSink = Callable[[str], None]

_STORE_ERRORS = (sqlite3.Error, OSError, StateStoreError)

_T = TypeVar("_T")


class FallbackStateStore:
    """A SQLite store that switches to memory, for good, the first time an operation fails.

    A state problem must never fail a tool call: losing the sharing between processes is
    much better than losing the answer. The switch is permanent for this process because
    flipping back and forth would split the state between two places; the warning tells the
    user what to do. What can still be read from SQLite (cooldowns, last use) is copied into
    memory first so that known cooldowns are not forgotten.
    """

    def __init__(self, primary: SQLiteStateStore, *, on_warning: WarningSink) -> None:
        self._primary: SQLiteStateStore | None = primary
        self._memory = MemoryStateStore()
        self._on_warning = on_warning
        self._switch_lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        """True once this process has fallen back to memory."""
        return self._primary is None

    def _degrade(self, failed: SQLiteStateStore, error: BaseException) -> None:
        with self._switch_lock:
            if self._primary is not failed:
                return  # another thread already switched
            self._primary = None
            try:
                for cooldown in failed.list_cooldowns():
                    self._memory.update_cooldown(cooldown.key, lambda _old, c=cooldown: c)
                for account, at in failed.last_used().items():
                    self._memory.touch(account, at)
            except _STORE_ERRORS:
                pass  # nothing more can be saved; memory starts (partly) empty
            with suppress(*_STORE_ERRORS):
                failed.close()
        self._on_warning(
            f"puter-mcp: the shared state file {failed.path} failed ({error}). This process now "
            "keeps cooldowns and pacing in memory, so other puter-mcp processes will not see them. "
            f"If this happens again, quit every puter-mcp process and delete {failed.path} "
            "(it is recreated on the next start)."
        )

    def _run(self, operation: Callable[[StateStore], _T]) -> _T:
        primary = self._primary
        if primary is not None:
            try:
                return operation(primary)
            except _STORE_ERRORS as error:
                failure: BaseException = error
            # A damaged file is moved aside and replaced by a new one, once; after that, or
            # for any other failure, memory it is.
            try:
                if primary.recover(failure):
                    return operation(primary)
            except _STORE_ERRORS as error:
                failure = error
            self._degrade(primary, failure)
        return operation(self._memory)

    def describe(self) -> str:
        primary = self._primary
        return primary.describe() if primary is not None else "memory (the shared state file failed)"

    def cooldowns_for(self, account: str, model: str) -> list[Cooldown]:
        return self._run(lambda s: s.cooldowns_for(account, model))

    def list_cooldowns(self) -> list[Cooldown]:
        return self._run(lambda s: s.list_cooldowns())

    def update_cooldown(self, key: CooldownKey, change: CooldownChange) -> Cooldown | None:
        return self._run(lambda s: s.update_cooldown(key, change))

    def delete_cooldown(self, key: CooldownKey) -> bool:
        return self._run(lambda s: s.delete_cooldown(key))

    def claim_probe(self, key: CooldownKey, *, now: float, lease_until: float) -> bool:
        return self._run(lambda s: s.claim_probe(key, now=now, lease_until=lease_until))

    def release_probe(self, key: CooldownKey) -> None:
        self._run(lambda s: s.release_probe(key))

    def acquire_slot(
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
        return self._run(
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

    def release_slot(self, slot_id: str, *, now: float, counted: bool) -> None:
        self._run(lambda s: s.release_slot(slot_id, now=now, counted=counted))

    def window_usage(self, account: str, *, now: float, window: float) -> WindowUsage:
        return self._run(lambda s: s.window_usage(account, now=now, window=window))

    def touch(self, account: str, now: float) -> None:
        self._run(lambda s: s.touch(account, now))

    def last_used(self) -> dict[str, float]:
        return self._run(lambda s: s.last_used())

    def record_attempt(self, attempt: Attempt) -> None:
        self._run(lambda s: s.record_attempt(attempt))

    def recent_attempts(self, limit: int = 100) -> list[Attempt]:
        return self._run(lambda s: s.recent_attempts(limit))

    def prune(self, *, now: float, attempts_max_age: float, cooldowns_max_age: float) -> None:
        self._run(
            lambda s: s.prune(now=now, attempts_max_age=attempts_max_age, cooldowns_max_age=cooldowns_max_age)
        )

    def close(self) -> None:
        primary = self._primary
        if primary is not None:
            with suppress(*_STORE_ERRORS):
                primary.close()
        self._memory.close()


def _log_warning(message: str) -> None:
    _log.warning("%s", message)


def open_state_store(
    path: Path | str | None = None,
    *,
    origin: str = DEFAULT_ORIGIN,
    on_warning: WarningSink | None = None,
    busy_timeout: float = 0.5,
) -> StateStore:
    """Open the shared state, or memory if it cannot be used; never raises for a bad file.

    A damaged file is moved aside and a new one created (see `SQLiteStateStore`); one that is
    locked, unreachable or from a newer puter-mcp leaves this process with memory only.

    Args:
        path: the database file; default `default_state_path()`.
        origin: the Puter API origin whose records to see (`Settings.api_origin`).
        on_warning: receives one sentence naming the file and what to do, when the file cannot
            be used now, is moved aside, or fails later; default: a ``logging`` warning.
        busy_timeout: seconds to wait for another process's write lock.
    """
    warn = on_warning or _log_warning
    target = Path(path) if path is not None else default_state_path()
    try:
        primary = SQLiteStateStore(target, origin=origin, busy_timeout=busy_timeout, on_warning=warn)
    except _STORE_ERRORS as error:
        warn(
            f"puter-mcp: cannot use the shared state file {target} ({error}). Cooldowns and "
            "pacing are kept in memory for this process only, so other puter-mcp processes will "
            f"not see them. If {target} is from a newer puter-mcp, quit every puter-mcp "
            "process and delete it (it is recreated on the next start); if it is locked, another "
            "program holds it."
        )
        return MemoryStateStore()
    return FallbackStateStore(primary, on_warning=warn)


StateFileStatus = Literal["ok", "moved-aside", "unreadable"]


@dataclass(frozen=True, slots=True)
class StateFileCheck:
    """What `check_state_file` found: ``ok``, ``moved-aside`` (it was damaged; a new one now
    stands in its place) or ``unreadable`` (this process would keep its state in memory)."""

    status: StateFileStatus
    detail: str


def check_state_file(path: Path) -> StateFileCheck:
    """Open the state database the way every process does, and say how that went (for doctor)."""
    warnings: list[str] = []
    try:
        store = SQLiteStateStore(path, on_warning=warnings.append)
    except _STORE_ERRORS as error:
        return StateFileCheck("unreadable", f"{path} cannot be used ({error})")
    try:
        store.list_cooldowns()  # a read, so that a file that opens but cannot be queried shows too
    except _STORE_ERRORS as error:
        return StateFileCheck("unreadable", f"{path} opens but cannot be read ({error})")
    finally:
        moved = store.moved_aside
        with suppress(*_STORE_ERRORS):
            store.close()
    if moved is not None:
        return StateFileCheck(
            "moved-aside", f"{path} was damaged: moved aside to {moved}, a new one was created"
        )
    return StateFileCheck("ok", f"{path} opens in SQLite and passes its integrity check")
