"""The SQLite store: one file in WAL mode, shared by every puter-mcp process of the user.

Claude Desktop, Zed and Cursor each start their own puter-mcp process. If each kept its
cooldowns and pacing in memory, one process would happily send requests on an account that
another has just seen rate-limited, and together they would exceed Puter's per-account limits.
So this state lives in one SQLite database in the state directory (docs/state.md).

A chat call costs two short write transactions here: `acquire` (the cooldown check, a probe
claim when one is due, the pacing slot) and `settle` (the slot given back, the cooldown change,
the attempt record). Cooldowns are cached in memory and read again only when another
connection has committed since they were last read, which ``PRAGMA data_version`` tells: it
changes only when another connection commits, so a process working alone never re-reads them.

The store's work is inline (microseconds), so its coroutines never yield; the `threading.Lock`
is never held across an ``await``. The one exception is `settle`: it hands its step to the
store's writer thread and returns, so an answer never waits for its bookkeeping; whichever comes
first, the writer or the store's next operation, writes it, so every later operation sees it
(and a process that exits without closing its stores writes it on the way out).
`release_owned` is the synchronous path for the signal handlers (see
`protocol.release_process_slots`).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.to_thread

from puter_mcp.files import PRIVATE_FILE_MODE, ensure_private_dir
from puter_mcp.puter.errors import FailureKind
from puter_mcp.routing.owners import Owner, is_running, this_process
from puter_mcp.routing.state.protocol import CooldownChanges, PendingSettle, WarningSink, shares_slots
from puter_mcp.routing.state.records import (
    DEFAULT_ORIGIN,
    SLOT_HISTORY,
    Admitted,
    Attempt,
    Cooldown,
    CooldownChange,
    CooldownKey,
    D,
    Decision,
    Judge,
    Scope,
    Slot,
    SlotRefusal,
    SlotRequest,
    StateStoreError,
    WindowUsage,
    applies_to,
    check_key,
    probe_claimable,
    refusal,
    with_claim,
)

__all__ = [
    "SCHEMA_VERSION",
    "STORE_ERRORS",
    "Housekeeping",
    "SQLiteStateStore",
    "StateFileCheck",
    "check_state_file",
    "is_corruption",
]

SCHEMA_VERSION = 2
"""Stored in ``PRAGMA user_version``; bump it (with a migration) whenever the tables change."""

_log = logging.getLogger(__name__)

STORE_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError, StateStoreError)
"""What a failing SQLite store raises (and `FallbackStateStore` turns into memory)."""


@dataclass(frozen=True, slots=True)
class Housekeeping:
    """Old records to forget when the store opens (see `SQLiteStateStore.prune`)."""

    now: float
    attempts_max_age: float
    cooldowns_max_age: float


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
CREATE INDEX IF NOT EXISTS slots_holding ON slots (origin, account, released_at);
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
_UPSERT_COOLDOWN = (
    "INSERT OR REPLACE INTO cooldowns"
    " (origin, scope, account, model, kind, until, probe_at, level, reason, since, probe_claimed_until)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELETE_COOLDOWN = (
    "DELETE FROM cooldowns WHERE origin = ? AND scope = ? AND account = ? AND model = ? AND kind = ?"
)
# The account's slots that matter now: in the window, or holding an in-flight place.
# A slot counts in the window while `started + window > now` (not `started > now - window`,
# so that the time announced as "frees at", started + window, is exactly when it leaves); the
# extra `started > ?` (a second earlier) only lets SQLite read the index range instead of the
# account's whole history.
_COUNT_IN_WINDOW = (
    "SELECT COUNT(*) FROM slots WHERE origin = ? AND account = ? AND started > ? AND started + ? > ?"
)
_STARTS_IN_WINDOW = (
    "SELECT started FROM slots WHERE origin = ? AND account = ? AND started > ? AND started + ? > ?"
    " ORDER BY started"
)
# The places held: running (not released) or settling (released a moment from now). Two index
# ranges of `slots_holding` rather than one `released_at IS NULL OR released_at > ?`, which
# SQLite answers by reading the account's whole history (up to `SLOT_HISTORY`, a thousand rows
# at Puter's paid rate): ~150 µs against ~4 µs.
_SELECT_HOLDING = (
    "SELECT id, started, released_at, lease_until, host, pid, pid_started FROM slots"
    " WHERE origin = ? AND account = ? AND released_at IS NULL AND lease_until > ?"
    " UNION ALL"
    " SELECT id, started, released_at, lease_until, host, pid, pid_started FROM slots"
    " WHERE origin = ? AND account = ? AND released_at > ? AND lease_until > ?"
)
# What `_take_slot` needs in one statement: a first row with the window's count (in its
# `started` column), then `_SELECT_HOLDING`'s rows.
_COUNT_AND_HOLDING = (
    "SELECT NULL, COUNT(*), NULL, NULL, NULL, NULL, NULL FROM slots"
    " WHERE origin = ? AND account = ? AND started > ? AND started + ? > ?"
    " UNION ALL"
    " SELECT id, started, released_at, lease_until, host, pid, pid_started FROM slots"
    " WHERE origin = ? AND account = ? AND released_at IS NULL AND lease_until > ?"
    " UNION ALL"
    " SELECT id, started, released_at, lease_until, host, pid, pid_started FROM slots"
    " WHERE origin = ? AND account = ? AND released_at > ? AND lease_until > ?"
)
_INSERT_SLOT = (
    "INSERT INTO slots (id, origin, account, started, lease_until, host, pid, pid_started)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_LAST_USED = (
    "INSERT INTO last_used (origin, account, at) VALUES (?, ?, ?)"
    " ON CONFLICT (origin, account) DO UPDATE SET at = MAX(at, excluded.at)"
)
_INSERT_ATTEMPT = (
    "INSERT INTO attempts (origin, at, account, model, kind, latency_ms, ttft_ms, input_tokens,"
    " output_tokens, cost_usd, request_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
_SELECT_ATTEMPTS = (
    "SELECT at, account, model, kind, latency_ms, ttft_ms, input_tokens, output_tokens,"
    " cost_usd, request_id FROM attempts WHERE origin = ? ORDER BY id DESC LIMIT ?"
)
# Served by the index on `at`; `id` breaks ties in the order the attempts were written.
_SELECT_ATTEMPTS_SINCE = (
    "SELECT at, account, model, kind, latency_ms, ttft_ms, input_tokens, output_tokens,"
    " cost_usd, request_id FROM attempts WHERE origin = ? AND at >= ? ORDER BY at, id"
)
_FORGET_OLD_SLOTS = "DELETE FROM slots WHERE started < ? AND (released_at IS NOT NULL OR lease_until <= ?)"


_ADDED_INDEXES = {
    "slots_holding": "CREATE INDEX IF NOT EXISTS slots_holding ON slots (origin, account, released_at)",
}
"""Indexes added to `_SCHEMA` after its version was set. A puter-mcp of the same version that
does not know them works as well with them (it only keeps them up to date), so they come
without a version bump: a file made before them gets them when opened."""


def _add_indexes(conn: sqlite3.Connection) -> None:
    present = {str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    for name, statement in _ADDED_INDEXES.items():
        if name not in present:
            conn.execute(statement)


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


def _attempt_params(origin: str, a: Attempt) -> tuple[Any, ...]:
    kind = None if a.kind is None else a.kind.value
    return (
        origin,
        a.time,
        a.account,
        a.model,
        kind,
        a.latency_ms,
        a.ttft_ms,
        a.input_tokens,
        a.output_tokens,
        a.cost_usd,
        a.request_id,
    )


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
    """The ids of the slots (rows of `_SELECT_HOLDING`) still holding a place although their
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


def _applying(known: dict[CooldownKey, Cooldown], account: str, model: str) -> list[Cooldown]:
    return [c for c in known.values() if applies_to(c, account, model)]


def _held_back(decision: Decision) -> bool:
    """A judge's decision that asks for nothing to be written: no slot, no probe to claim."""
    return not decision.take_slot and decision.claim is None


def _create_private_file(path: Path) -> None:
    """Create the database file (and its directory) readable by its owner only.

    The file holds account ids and request history, nothing secret, but it is nobody else's
    business. SQLite gives the ``-wal`` and ``-shm`` files the main file's permissions.
    """
    ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, PRIVATE_FILE_MODE)
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
        and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
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


def _log_warning(message: str) -> None:
    _log.warning("%s", message)


_STAT_INTERVAL = 1.0
"""Seconds between two checks that the database file is still the one this process opened."""

_open_stores: weakref.WeakSet[SQLiteStateStore] = weakref.WeakSet()


@atexit.register
def _write_pending_at_exit() -> None:
    """What the writer threads (daemons, stopped by the interpreter's exit) have not written."""
    for store in list(_open_stores):
        with suppress(*STORE_ERRORS):
            store.flush()


class SQLiteStateStore:
    """The shared store: one SQLite file in WAL mode, used by every puter-mcp process.

    WAL lets readers proceed while one process writes; every write runs in ``BEGIN IMMEDIATE``
    so that it takes the write lock before reading, and two processes cannot both see "one slot
    left" and both take it. A busy database is waited for at most `busy_timeout` seconds: our
    transactions take microseconds, so a longer wait means something is wrong, and the caller
    (see `FallbackStateStore`) is better off in memory.

    Every record is keyed by `origin` (the Puter API origin), so one file serves several
    Pupers (puter.com, a self-hosted one, the emulator) without mixing what each taught.

    The file is checked when opened (``PRAGMA quick_check``): a damaged one is moved aside
    (``state.db.corrupt-<time>``) and a new one created. While open, at most once a second,
    the store checks that the path still names the file it opened; if the file was deleted
    or replaced, it opens the one there now, so that it keeps sharing with the others.

    Args:
        path: the database file (created owner-only, with its directory, if missing).
        origin: the Puter API origin whose records to see.
        busy_timeout: seconds to wait for another process's write lock.
        on_warning: receives one sentence when the file is moved aside or followed.
        housekeeping: old records to forget once opened (attempts are not an archive).
        trace: receives every SQL statement run after opening (tests count transactions).

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
        housekeeping: Housekeeping | None = None,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.origin = origin
        self._busy_timeout = busy_timeout
        self._warn = on_warning or _log_warning
        self._trace = trace
        self._lock = threading.Lock()
        self._swept_at = -math.inf  # when finished slots were last cleared out
        # This origin's cooldowns as last read, and the `PRAGMA data_version` they were read
        # at: while the version stays, no other connection has committed, so they still hold.
        self._cooldowns: dict[CooldownKey, Cooldown] | None = None
        self._read_at_version = -1
        self._queued: list[Attempt] = []  # see `log_attempt`
        self._settles: list[PendingSettle] = []  # see `settle`
        self._queue_lock = threading.Lock()  # guards both queues
        self._writer: _Writer | None = None
        self.moved_aside: Path | None = None
        """Where a corrupt file found by this store was moved, if it moved one."""
        self._conn, self._identity = self._open_checked()
        self._checked_at = time.monotonic()
        if housekeeping is not None:
            try:
                self._prune(housekeeping.now, housekeeping.attempts_max_age, housekeeping.cooldowns_max_age)
            except BaseException:
                self.close()
                raise
        _open_stores.add(self)
        shares_slots(self)

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
        if self._trace is not None:
            conn.set_trace_callback(self._trace)
        self._cooldowns = None  # a new connection: what the old one read proves nothing
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
            _add_indexes(conn)
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

    async def recover(self, error: BaseException) -> bool:
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

    # -- transactions and the cooldown cache -----------------------------------------------

    @contextmanager
    def _locked(self, *, writing: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection, the lock held. Settles handed over but not written yet are written
        first (`writing`: by the transaction the caller opens next), so that no operation
        sees the state from before them."""
        with self._lock:
            self._follow_file()
            if self._settles and not writing:
                with self._transaction(self._conn):
                    pass
            yield self._conn

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """One write transaction (the lock held), taking SQLite's write lock before anything is
        read. The settles handed over and not written yet are written first, the attempts
        logged so far last."""
        conn.execute("BEGIN IMMEDIATE")
        with self._queue_lock:
            queued, self._queued = self._queued, []
            settles, self._settles = self._settles, []
        try:
            for slot_id, now, counted, changes in settles:
                self._release_slot(conn, slot_id, now=now, counted=counted)
                self._apply(conn, changes)
            yield conn
            if queued:
                conn.executemany(_INSERT_ATTEMPT, [_attempt_params(self.origin, a) for a in queued])
            conn.execute("COMMIT")
        except BaseException:
            # What the cache saw in this transaction did not happen; the settles and attempts
            # wait for the next write. The original error is the one worth reporting.
            self._cooldowns = None
            with self._queue_lock:
                self._queued[:0] = queued
                self._settles[:0] = settles
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._locked(writing=True) as conn, self._transaction(conn):
            yield conn

    def flush(self) -> None:
        """Write now what is handed over and not written yet (settles, attempt records)."""
        with self._locked() as conn:  # writes the settles, and the attempts with them
            if self._queued:
                with self._transaction(conn):
                    pass  # the transaction writes what is logged

    def _known_cooldowns(self, conn: sqlite3.Connection) -> dict[CooldownKey, Cooldown]:
        """This origin's cooldowns, read again only if another connection committed since."""
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if self._cooldowns is None or version != self._read_at_version:
            rows = conn.execute(_SELECT_COOLDOWNS, (self.origin,)).fetchall()
            self._cooldowns = {c.key: c for c in map(_cooldown_from_row, rows)}
            self._read_at_version = version
        return self._cooldowns

    def _put(self, conn: sqlite3.Connection, key: CooldownKey, new: Cooldown | None) -> None:
        """Write one record (None: delete it), in the open transaction and in the cache.

        Only inside a transaction, after `_known_cooldowns`: the write lock keeps the cache
        exact until the commit."""
        known = self._cooldowns
        if new is None:
            conn.execute(_DELETE_COOLDOWN, (self.origin, *_key_params(key)))
            if known is not None:
                known.pop(key, None)
        else:
            conn.execute(_UPSERT_COOLDOWN, (self.origin, *_cooldown_params(new)))
            if known is not None:
                known[key] = new

    def _apply(self, conn: sqlite3.Connection, changes: CooldownChanges) -> list[Cooldown | None]:
        results: list[Cooldown | None] = []
        known = self._known_cooldowns(conn)
        for key, change in changes:
            current = known.get(key)
            new = change(current)
            check_key(new, key)
            if new != current:  # most successes change nothing: no statement at all
                self._put(conn, key, new)
            results.append(new)
        return results

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._locked() as conn:
            return conn.execute(sql, params).fetchall()

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    # -- the two steps of a call -----------------------------------------------------------

    async def acquire(self, account: str, model: str, *, judge: Judge[D], slot: SlotRequest) -> Admitted[D]:
        with self._locked(writing=True) as conn:
            # A blocked pair needs no write: decide before taking the write lock, from what is
            # known (checked to be current: a read of `PRAGMA data_version`). When the cooldowns
            # last read let the pair through, that check is left to the transaction, which makes
            # it anyway: the usual call then starts no read of its own (see bench/README.md).
            # With settles not written yet, the transaction writes them first and decides then.
            cached = self._cooldowns
            if not self._settles and (cached is None or _held_back(judge(_applying(cached, account, model)))):
                early = judge(_applying(self._known_cooldowns(conn), account, model))
                if _held_back(early):
                    return Admitted(early, None, claimed=False)
            with self._transaction(conn):
                known = self._known_cooldowns(conn)
                decision = judge(_applying(known, account, model))
                claim = decision.claim
                current = None if claim is None else known.get(claim)
                if claim is not None and (current is None or not probe_claimable(current, slot.now)):
                    return Admitted(decision, None, claimed=False)
                granted: Slot | SlotRefusal | None = None
                if decision.take_slot:
                    granted = self._take_slot(conn, account, slot)
                    if isinstance(granted, SlotRefusal):
                        return Admitted(decision, granted, claimed=False)
                if claim is not None and current is not None:
                    self._put(conn, claim, with_claim(current, decision.claim_until))
                return Admitted(decision, granted, claimed=claim is not None)

    async def settle(self, slot_id: str, *, now: float, counted: bool, changes: CooldownChanges = ()) -> None:
        # The answer is ready; its bookkeeping need not hold it up. The writer thread writes it
        # at once (SQLite leaves the GIL while it works), unless the next operation of this
        # process comes first and writes it itself: either way before anything else is done.
        with self._queue_lock:
            self._settles.append((slot_id, now, counted, changes))
            # Only the first since the last write wakes the writer: it takes them all at once.
            first = len(self._settles) == 1
        if self._writer is None:
            self._writer = _Writer(self)
        if first:
            self._writer.wake()

    def log_attempt(self, attempt: Attempt) -> None:
        with self._queue_lock:
            self._queued.append(attempt)

    # -- cooldowns -------------------------------------------------------------------------

    async def cooldowns_for(self, account: str, model: str) -> list[Cooldown]:
        with self._locked() as conn:
            return _applying(self._known_cooldowns(conn), account, model)

    async def list_cooldowns(self) -> list[Cooldown]:
        with self._locked() as conn:
            return list(self._known_cooldowns(conn).values())

    async def update_cooldown(self, key: CooldownKey, change: CooldownChange) -> Cooldown | None:
        return (await self.update_cooldowns([(key, change)]))[0]

    async def update_cooldowns(self, changes: CooldownChanges) -> list[Cooldown | None]:
        with self._write() as conn:
            return self._apply(conn, changes)

    async def delete_cooldown(self, key: CooldownKey) -> bool:
        with self._write() as conn:
            if key not in self._known_cooldowns(conn):
                return False
            self._put(conn, key, None)
            return True

    async def claim_probe(self, key: CooldownKey, *, now: float, lease_until: float) -> bool:
        with self._write() as conn:
            current = self._known_cooldowns(conn).get(key)
            if current is None or not probe_claimable(current, now):
                return False
            self._put(conn, key, with_claim(current, lease_until))
            return True

    async def release_probe(self, key: CooldownKey) -> None:
        with self._write() as conn:
            current = self._known_cooldowns(conn).get(key)
            if current is not None:
                self._put(conn, key, with_claim(current, None))

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
        with self._write() as conn:
            return self._take_slot(conn, account, request)

    def _take_slot(self, c: sqlite3.Connection, account: str, request: SlotRequest) -> Slot | SlotRefusal:
        now, window = request.now, request.window
        if now - self._swept_at >= SLOT_HISTORY / 2:
            # Housekeeping, not bookkeeping: finished slots older than any window go, every
            # half minute at most rather than on every request (this runs once per call).
            c.execute(_FORGET_OLD_SLOTS, (now - SLOT_HISTORY, now))
            self._swept_at = now
        # Only the places held are read as rows; the window's requests are counted in SQLite
        # (at Puter's paid rate that is up to 200 rows a call), and listed only for a refusal.
        in_window = (self.origin, account, now - window - 1.0, window, now)
        holding_now = (self.origin, account, now, self.origin, account, now, now)
        (_, counted, *_), *rows = c.execute(_COUNT_AND_HOLDING, (*in_window, *holding_now)).fetchall()
        gone = _abandoned(rows, now)
        if gone:
            # Their processes ended without giving them back (killed, crashed): the places
            # are free now. The requests still count in the window: Puter counted them.
            c.executemany("UPDATE slots SET released_at = ? WHERE id = ?", [(now, i) for i in gone])
        holding = [row[2] for row in rows if row[0] not in gone]
        if counted < request.max_requests and len(holding) < request.max_in_flight:
            me = this_process()
            c.execute(
                _INSERT_SLOT,
                (
                    request.slot_id,
                    self.origin,
                    account,
                    now,
                    request.lease_until,
                    me.host,
                    me.pid,
                    me.started,
                ),
            )
            c.execute(_UPSERT_LAST_USED, (self.origin, account, now))
            return Slot(request.slot_id, account, now, request.lease_until)
        settling = [float(released) for released in holding if released is not None]
        starts = [float(row[0]) for row in c.execute(_STARTS_IN_WINDOW, in_window).fetchall()]
        return refusal(
            starts,
            len(holding),
            window,
            request.max_requests,
            request.max_in_flight,
            min(settling, default=None),
        )

    async def release_slot(self, slot_id: str, *, now: float, counted: bool) -> None:
        with self._write() as conn:
            self._release_slot(conn, slot_id, now=now, counted=counted)

    def _release_slot(self, conn: sqlite3.Connection, slot_id: str, *, now: float, counted: bool) -> None:
        if counted:
            conn.execute(
                "UPDATE slots SET released_at = ? WHERE id = ? AND released_at IS NULL", (now, slot_id)
            )
        else:
            conn.execute("DELETE FROM slots WHERE id = ?", (slot_id,))

    def release_owned(self, *, now: float) -> int:
        """Give back every slot this process still holds (any origin); how many there were.

        Synchronous, and waits a bounded time for the store's lock: it runs while the process
        is stopping, from a signal handler.
        """
        if not self._lock.acquire(timeout=2.0):
            return 0
        try:
            me = this_process()
            with self._transaction(self._conn) as conn:  # with the settles not written yet
                cursor = conn.execute(
                    "UPDATE slots SET released_at = ? WHERE host = ? AND pid = ? AND released_at IS NULL",
                    (now, me.host, me.pid),
                )
            return cursor.rowcount
        finally:
            self._lock.release()

    async def window_usage(self, account: str, *, now: float, window: float) -> WindowUsage:
        ((requests,),) = self._read(_COUNT_IN_WINDOW, (self.origin, account, now - window - 1.0, window, now))
        rows = self._read(_SELECT_HOLDING, (self.origin, account, now, self.origin, account, now, now))
        gone = _abandoned(rows, now)
        return WindowUsage(
            requests=int(requests),
            # Running requests only: a finished one still settling (see `Pacer.release`) is
            # not "in flight" to a person reading a status display.
            in_flight=sum(1 for row in rows if row[2] is None and row[3] > now and row[0] not in gone),
        )

    # -- last use and attempts -------------------------------------------------------------

    async def touch(self, account: str, now: float) -> None:
        with self._write() as conn:
            conn.execute(_UPSERT_LAST_USED, (self.origin, account, now))

    async def last_used(self) -> dict[str, float]:
        rows = self._read("SELECT account, at FROM last_used WHERE origin = ?", (self.origin,))
        return {str(a): float(t) for a, t in rows}

    async def record_attempt(self, attempt: Attempt) -> None:
        self.log_attempt(attempt)
        with self._write():
            pass  # the transaction writes what is logged

    async def recent_attempts(self, limit: int = 100) -> list[Attempt]:
        self.flush()
        rows = self._read(_SELECT_ATTEMPTS, (self.origin, max(limit, 0)))
        return [_attempt_from_row(r) for r in rows]

    async def attempts_since(self, since: float) -> list[Attempt]:
        self.flush()
        # A day of a busy gateway is ~10^5 rows, a second's work: read them in a worker thread
        # on a connection of its own (WAL lets it read while writes go on), so that neither the
        # event loop nor this store's lock, which every call's acquire and settle take, waits.
        return await anyio.to_thread.run_sync(self._read_attempts_since, since)

    def _read_attempts_since(self, since: float) -> list[Attempt]:
        uri = self.path.resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=self._busy_timeout)
        try:
            rows = conn.execute(_SELECT_ATTEMPTS_SINCE, (self.origin, since)).fetchall()
        finally:
            conn.close()
        return [_attempt_from_row(r) for r in rows]

    # -- housekeeping ----------------------------------------------------------------------

    async def prune(self, *, now: float, attempts_max_age: float, cooldowns_max_age: float) -> None:
        self._prune(now, attempts_max_age, cooldowns_max_age)

    def _prune(self, now: float, attempts_max_age: float, cooldowns_max_age: float) -> None:
        # By age, whatever the origin: old records of a Puter no longer used go too.
        with self._write() as c:
            c.execute("DELETE FROM attempts WHERE at < ?", (now - attempts_max_age,))
            c.execute("DELETE FROM cooldowns WHERE until < ?", (now - cooldowns_max_age,))
            c.execute(_FORGET_OLD_SLOTS, (now - SLOT_HISTORY, now))
            self._cooldowns = None  # our own deletions do not move `data_version`

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Write the attempts still logged, then close the file (synchronous: `doctor`)."""
        _open_stores.discard(self)
        if self._writer is not None:
            self._writer.stop()
        with suppress(*STORE_ERRORS):
            self.flush()
        with self._lock:
            self._conn.close()


class _Writer:
    """The thread that writes a store's settles as they are handed over.

    One per store, started with the first settle, ended by `stop` (the store's `close`) or
    when the store is dropped. It holds the store weakly. An error it meets is left for the
    store's next operation, which writes the same settles and meets (and reports) it again:
    nothing is lost, and nobody is told twice.
    """

    def __init__(self, store: SQLiteStateStore) -> None:
        self._store = weakref.ref(store)
        self._wanted: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="puter-mcp-state-writer", daemon=True)
        self._thread.start()
        weakref.finalize(store, self._wanted.put, False)  # a store dropped unclosed ends it too

    def wake(self) -> None:
        self._wanted.put(True)

    def stop(self) -> None:
        self._wanted.put(False)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while self._wanted.get():
            store = self._store()
            if store is None:
                return
            try:
                store.flush()
            except STORE_ERRORS as error:
                _log.debug("the state writer left a write for the next operation: %s", error)
            except Exception:
                _log.exception("the state writer failed")
            del store


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
    except STORE_ERRORS as error:
        return StateFileCheck("unreadable", f"{path} cannot be used ({error})")
    try:
        # A read, so that a file that opens but cannot be queried shows too.
        store._read(_SELECT_COOLDOWNS, (store.origin,))
    except STORE_ERRORS as error:
        return StateFileCheck("unreadable", f"{path} opens but cannot be read ({error})")
    finally:
        moved = store.moved_aside
        with suppress(*STORE_ERRORS):
            store.close()
    if moved is not None:
        return StateFileCheck(
            "moved-aside", f"{path} was damaged: moved aside to {moved}, a new one was created"
        )
    return StateFileCheck("ok", f"{path} opens in SQLite and passes its integrity check")
