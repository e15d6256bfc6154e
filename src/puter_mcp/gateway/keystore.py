"""The gateway's API keys: what a key is, and the store every gateway process of the machine shares.

A key is ``pmk-`` followed by 43 url-safe characters (32 random bytes from `secrets`). It is
shown once, when created, and stored only as its SHA-256 digest: a digest of 256 random bits
cannot be reversed or guessed, so a slow password hash would add nothing but latency to every
request. Beside the digest the store keeps what the key may do (name, expiry, admin flag,
models, limits), when it was last used, and a hint (``pmk-abcd…wxyz``) to tell keys apart in a
list.

```
KeyStore (protocol)      create, find, list, revoke, record_use, usage, aclose
 └─ SQLiteKeyStore       the file ``keys.db`` in the data directory (docs/gateway-keys.md)
KeyDatabase              that file: owner-only, WAL, one short IMMEDIATE transaction per write;
                         also holds the limiter's entries (puter_mcp.gateway.limiter)
```

The protocol is async so that a store reached over the network (Redis, for gateways on several
hosts) fits behind it; the SQLite store's work is inline and its coroutines never suspend.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from puter_mcp.files import PRIVATE_FILE_MODE, chmod_private, ensure_private_dir
from puter_mcp.settings import Paths

__all__ = [
    "KEY_PREFIX",
    "SCHEMA_VERSION",
    "USAGE_KEPT_HOURS",
    "DuplicateKeyName",
    "KeyDatabase",
    "KeyLimits",
    "KeyRecord",
    "KeySpec",
    "KeyStore",
    "KeyStoreError",
    "KeyUsageRow",
    "SQLiteKeyStore",
    "UnknownKeyName",
    "hash_secret",
    "key_hint",
    "key_store_file",
    "looks_like_key",
    "new_key",
    "new_secret",
    "parse_expiry",
    "parse_models",
]

KEY_PREFIX = "pmk-"
"""What every puter-mcp key starts with: tells it apart from a dummy key an SDK insists on."""

_SECRET_BYTES = 32
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MAX_LIMIT = 10_000_000
"""Far above any real limit: a bigger number is a typo, refused rather than stored."""

SCHEMA_VERSION = 1
"""Stored in ``PRAGMA user_version`` of keys.db; bump it (with a migration) when tables change."""

USAGE_KEPT_HOURS = 31 * 24
"""Hourly usage counters older than this are forgotten, so the table stays bounded."""


class KeyStoreError(Exception):
    """The key store cannot do what was asked; the message says why and what to do."""


class DuplicateKeyName(KeyStoreError):
    """A key that is not revoked already has this name."""


class UnknownKeyName(KeyStoreError):
    """No key that is not revoked has this name."""


def key_store_file(paths: Paths) -> Path:
    """The key store: ``keys.db`` in the data directory, beside the saved accounts.

    Not in the state directory: what is there (cooldowns, pacing) is learned again when the
    file is deleted, and deleting it is the advice for a damaged state database; keys are
    not learned again (docs/gateway-keys.md).
    """
    return paths.data_dir / "keys.db"


# -- secrets --------------------------------------------------------------------------------


def new_secret() -> str:
    """A new key: ``pmk-`` and 32 random bytes, url-safe base64 without padding."""
    return KEY_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest a key is stored and looked up by."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def looks_like_key(secret: str) -> bool:
    """Whether `secret` is shaped like a puter-mcp key (not whether it is a valid one)."""
    return secret.startswith(KEY_PREFIX)


def key_hint(secret: str) -> str:
    """``pmk-abcd…wxyz``: enough to tell keys apart in a list, far too little to use one."""
    body = secret[len(KEY_PREFIX) :]
    return f"{KEY_PREFIX}{body[:4]}…{body[-4:]}"


# -- what a key may do ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """Requests a key may make per minute, hour and day (None: no limit of that length)."""

    rpm: int | None = None
    rph: int | None = None
    rpd: int | None = None

    def __post_init__(self) -> None:
        for label, value in (("rpm", self.rpm), ("rph", self.rph), ("rpd", self.rpd)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise KeyStoreError(f"{label} must be a whole number of requests, not {value!r}")
            if not 1 <= value <= _MAX_LIMIT:
                raise KeyStoreError(f"{label} must be from 1 to {_MAX_LIMIT}, not {value}")

    def windows(self) -> list[tuple[str, int, int]]:
        """Each limit set, as (label, requests, window in seconds), shortest window first."""
        spans = (("rpm", self.rpm, 60), ("rph", self.rph, 3600), ("rpd", self.rpd, 86400))
        return [(label, amount, seconds) for label, amount, seconds in spans if amount is not None]

    def describe(self) -> str:
        parts = [f"{amount}/{label[-1]}" for label, amount, _ in self.windows()]
        return ", ".join(parts) or "none"


def parse_expiry(text: str, *, now: float) -> float:
    """When a key given ``--expires TEXT`` stops working, in epoch seconds.

    Accepts a date (``2027-01-31``: the key works through that day, UTC), a date and time
    (``2027-01-31T18:00``, UTC unless it names its offset), or a span from now (``30d``,
    ``12h``, ``90m``).

    Raises:
        KeyStoreError: the text is none of these, or names a time already past.
    """
    text = text.strip()
    span = re.fullmatch(r"(\d{1,6})\s*([dhm])", text, re.IGNORECASE)
    if span:
        amount, unit = int(span.group(1)), span.group(2).lower()
        seconds = amount * {"d": 86400, "h": 3600, "m": 60}[unit]
        if seconds <= 0:
            raise KeyStoreError(f"--expires {text}: the span must be longer than zero")
        return now + seconds
    moment: datetime
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise KeyStoreError(
            f"--expires {text!r} is not a date: give YYYY-MM-DD (the key works through that day, "
            "UTC), YYYY-MM-DDTHH:MM, or a span such as 30d, 12h or 90m"
        ) from None
    at = moment.timestamp()
    if at <= now:
        raise KeyStoreError(f"--expires {text}: that time is already past")
    return at


def parse_models(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """The models a key may use, from ``a,b`` or a list; None (or nothing given): any model."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    models: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise KeyStoreError(f"models must be names, not {item!r}")
        name = item.strip()
        if name and name.lower() not in (m.lower() for m in models):
            models.append(name)
    if not models:
        raise KeyStoreError("models: name at least one model, or leave it out to allow any model")
    return tuple(models)


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What a new key may do, checked as a whole (`build`)."""

    name: str
    limits: KeyLimits = field(default_factory=KeyLimits)
    models: tuple[str, ...] | None = None
    expires: float | None = None
    admin: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise KeyStoreError(
                f"the key name {self.name!r} is not usable: use 1 to 64 letters, digits, '.', '_' "
                "or '-', starting with a letter or digit"
            )


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One stored key, without its secret.

    `id` is random and never shown: the limiter counts under it, so a revoked key's name can be
    given to a new key that starts with empty windows.
    """

    id: str
    name: str
    hint: str
    created: float
    expires: float | None
    admin: bool
    models: tuple[str, ...] | None
    limits: KeyLimits
    last_used: float | None
    revoked: float | None

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now

    def allows_model(self, model: str | None) -> bool:
        """Whether the key may ask for `model` (as the request names it; None: no model named).

        The names are compared as written, ignoring case, and ``vendor/id`` also matches ``id``:
        the key's models are the names a client is configured with, not resolved ids.
        """
        if self.models is None or model is None:
            return True
        asked = {model.lower(), model.rsplit("/", 1)[-1].lower()}
        return any(allowed.lower() in asked for allowed in self.models)

    def public(self) -> dict[str, Any]:
        """The key as a list shows it (never the secret)."""
        return {
            "name": self.name,
            "key": self.hint,
            "created": self.created,
            "expires": self.expires,
            "admin": self.admin,
            "models": None if self.models is None else list(self.models),
            "limits": {"rpm": self.limits.rpm, "rph": self.limits.rph, "rpd": self.limits.rpd},
            "last_used": self.last_used,
        }


def new_key(spec: KeySpec, *, now: float) -> tuple[KeyRecord, str]:
    """A new key made to `spec`: its record and its secret (shown once, never stored).

    Raises:
        KeyStoreError: the expiry is already past.
    """
    if spec.expires is not None and spec.expires <= now:
        raise KeyStoreError("the expiry is already past")
    secret = new_secret()
    record = KeyRecord(
        id=secrets.token_hex(8),
        name=spec.name,
        hint=key_hint(secret),
        created=now,
        expires=spec.expires,
        admin=spec.admin,
        models=spec.models,
        limits=spec.limits,
        last_used=None,
        revoked=None,
    )
    return record, secret


@dataclass(frozen=True, slots=True)
class KeyUsageRow:
    """One key's requests admitted and refused with 429 over a window (by name)."""

    name: str
    requests: int
    rate_limited: int


class KeyStore(Protocol):
    """The keys, shared by every gateway process: SQLite today, Redis for several hosts later."""

    async def create(self, spec: KeySpec, *, now: float) -> tuple[KeyRecord, str]:
        """Store a new key; returns it and its secret (the one time the secret exists).

        Raises:
            DuplicateKeyName: a key that is not revoked has this name.
        """
        ...

    async def find(self, digest: str) -> KeyRecord | None:
        """The key whose secret hashes to `digest` (revoked ones too: the caller decides)."""
        ...

    async def list(self, *, include_revoked: bool = False) -> list[KeyRecord]: ...

    async def revoke(self, name: str, *, now: float) -> KeyRecord:
        """Revoke the key named `name`: it stops working in every process at once.

        Raises:
            UnknownKeyName: no key that is not revoked has this name.
        """
        ...

    async def record_use(self, key: KeyRecord, *, now: float, admitted: bool) -> None:
        """Count one request of `key` (admitted, or refused with 429) and set its last use."""
        ...

    async def usage(self, since: float) -> list[KeyUsageRow]:
        """Per key name: requests and 429s in the hours since `since` (whole hours, UTC)."""
        ...

    async def aclose(self) -> None: ...


# -- the SQLite file ------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,            -- random, the limiter counts under it
    name TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,    -- SHA-256 of the secret, hex
    hint TEXT NOT NULL,             -- pmk-abcd…wxyz
    created REAL NOT NULL,
    expires REAL,
    admin INTEGER NOT NULL,
    models TEXT,                    -- JSON list, NULL for any model
    rpm INTEGER,
    rph INTEGER,
    rpd INTEGER,
    last_used REAL,
    revoked REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS keys_live_name ON keys (name) WHERE revoked IS NULL;
CREATE TABLE IF NOT EXISTS key_usage (
    name TEXT NOT NULL,
    hour INTEGER NOT NULL,          -- epoch hour (UTC)
    requests INTEGER NOT NULL,
    rate_limited INTEGER NOT NULL,
    PRIMARY KEY (name, hour)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS limit_entries (
    key TEXT NOT NULL,              -- the limiter's key (window, amount and the key's id)
    seq INTEGER NOT NULL,           -- 1, 2, 3... per key: the n-th request admitted
    at REAL NOT NULL,
    PRIMARY KEY (key, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS limit_entries_by_time ON limit_entries (key, at);
CREATE TABLE IF NOT EXISTS limit_counters (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    expires REAL NOT NULL
) WITHOUT ROWID
"""


class KeyDatabase:
    """The key store's SQLite file, shared by every process of the machine.

    Owner-only (0600 in a 0700 directory), WAL (readers never wait for a writer), and every
    write in one ``BEGIN IMMEDIATE`` transaction that takes the write lock before it reads, so
    that two processes can never both see "one request left" and both take it. Transactions
    take microseconds; a lock held longer than `busy_timeout` is reported as an error.

    `write()` nests: an inner block joins the outer transaction, which is how the limiter
    counts a request against every window of a key at once (all or none).

    Raises `KeyStoreError` from the constructor when the file cannot be used.
    """

    def __init__(self, path: Path | str, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._depth = 0
        try:
            ensure_private_dir(self.path.parent)
            with suppress(FileExistsError):
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, PRIVATE_FILE_MODE))
            chmod_private(self.path, PRIVATE_FILE_MODE)
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise KeyStoreError(f"cannot open the key store {self.path}: {exc}") from exc
        try:
            self._prepare()
        except (OSError, sqlite3.Error) as exc:
            self._conn.close()
            raise KeyStoreError(
                f"cannot use the key store {self.path} ({exc}); if the file is damaged, move it "
                "aside and create the keys again"
            ) from exc
        except BaseException:
            self._conn.close()
            raise

    def _prepare(self) -> None:
        conn = self._conn
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise KeyStoreError(f"{self.path} cannot be switched to WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=NORMAL")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise KeyStoreError(
                f"{self.path} was written by a newer puter-mcp (schema {version}, this one knows "
                f"{SCHEMA_VERSION}): upgrade puter-mcp"
            )
        if version == SCHEMA_VERSION:
            return
        with self.write() as conn:
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction (committed at the end, rolled back on an exception); a
        block inside another joins it. Never hold it across an ``await`` that suspends."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._depth = 0
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# Written out in full (no string formatting) so every statement can be read as it runs.
_SELECT_KEYS = (
    "SELECT id, name, hint, created, expires, admin, models, rpm, rph, rpd, last_used, revoked FROM keys"
)
_FIND_KEY = _SELECT_KEYS + " WHERE digest = ?"
_LIVE_KEY_NAMED = _SELECT_KEYS + " WHERE name = ? AND revoked IS NULL"
_LIVE_KEYS = _SELECT_KEYS + " WHERE revoked IS NULL ORDER BY name, created"
_ALL_KEYS = _SELECT_KEYS + " ORDER BY name, created"
_INSERT_KEY = (
    "INSERT INTO keys (id, name, hint, created, expires, admin, models, rpm, rph, rpd, digest)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _record(row: tuple[Any, ...]) -> KeyRecord:
    key_id, name, hint, created, expires, admin, models, rpm, rph, rpd, last_used, revoked = row
    return KeyRecord(
        id=str(key_id),
        name=str(name),
        hint=str(hint),
        created=float(created),
        expires=None if expires is None else float(expires),
        admin=bool(admin),
        models=None if models is None else tuple(json.loads(models)),
        limits=KeyLimits(rpm=rpm, rph=rph, rpd=rpd),
        last_used=None if last_used is None else float(last_used),
        revoked=None if revoked is None else float(revoked),
    )


def _hour(at: float) -> int:
    return math.floor(at / 3600)


class SQLiteKeyStore:
    """`KeyStore` over a `KeyDatabase` (which it closes when it owns it).

    Args:
        database: the open file, or a path to open.
        close_database: close the file with the store (always, for a path opened here).
    """

    def __init__(self, database: KeyDatabase | Path | str, *, close_database: bool = False) -> None:
        self._owns = close_database or not isinstance(database, KeyDatabase)
        self.database = database if isinstance(database, KeyDatabase) else KeyDatabase(database)

    async def create(self, spec: KeySpec, *, now: float) -> tuple[KeyRecord, str]:
        return self.create_now(spec, now=now)

    def create_now(self, spec: KeySpec, *, now: float) -> tuple[KeyRecord, str]:
        """`create`, for a caller without an event loop (the CLI)."""
        record, secret = new_key(spec, now=now)
        models = None if spec.models is None else json.dumps(list(spec.models))
        try:
            with self.database.write() as conn:
                conn.execute(
                    _INSERT_KEY,
                    (
                        record.id,
                        record.name,
                        record.hint,
                        record.created,
                        record.expires,
                        int(record.admin),
                        models,
                        spec.limits.rpm,
                        spec.limits.rph,
                        spec.limits.rpd,
                        hash_secret(secret),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            if "name" in str(exc):
                raise DuplicateKeyName(
                    f"a key named {spec.name!r} already exists: revoke it first, or choose another name"
                ) from None
            raise
        return record, secret

    async def find(self, digest: str) -> KeyRecord | None:
        with self.database.read() as conn:
            row = conn.execute(_FIND_KEY, (digest,)).fetchone()
        return None if row is None else _record(row)

    async def list(self, *, include_revoked: bool = False) -> list[KeyRecord]:
        return self.list_now(include_revoked=include_revoked)

    def list_now(self, *, include_revoked: bool = False) -> list[KeyRecord]:
        with self.database.read() as conn:
            rows = conn.execute(_ALL_KEYS if include_revoked else _LIVE_KEYS).fetchall()
        return [_record(row) for row in rows]

    async def revoke(self, name: str, *, now: float) -> KeyRecord:
        return self.revoke_now(name, now=now)

    def revoke_now(self, name: str, *, now: float) -> KeyRecord:
        with self.database.write() as conn:
            row = conn.execute(_LIVE_KEY_NAMED, (name,)).fetchone()
            if row is None:
                raise UnknownKeyName(f"no key is named {name!r} (see the list of keys)")
            record = _record(row)
            conn.execute("UPDATE keys SET revoked = ? WHERE id = ?", (now, record.id))
            # Its windows count nothing any more; a new key of that name has its own id.
            pattern = f"%/{record.id}/%"
            conn.execute("DELETE FROM limit_entries WHERE key LIKE ?", (pattern,))
            conn.execute("DELETE FROM limit_counters WHERE key LIKE ?", (pattern,))
        return record

    async def record_use(self, key: KeyRecord, *, now: float, admitted: bool) -> None:
        with self.database.write() as conn:
            if admitted:
                conn.execute(
                    "UPDATE keys SET last_used = MAX(COALESCE(last_used, 0), ?) WHERE id = ?", (now, key.id)
                )
            conn.execute(
                "INSERT INTO key_usage (name, hour, requests, rate_limited) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name, hour) DO UPDATE SET requests = requests + excluded.requests,"
                " rate_limited = rate_limited + excluded.rate_limited",
                (key.name, _hour(now), int(admitted), int(not admitted)),
            )

    async def usage(self, since: float) -> list[KeyUsageRow]:
        with self.database.read() as conn:
            rows = conn.execute(
                "SELECT name, SUM(requests), SUM(rate_limited) FROM key_usage WHERE hour >= ?"
                " GROUP BY name ORDER BY name",
                (_hour(since),),
            ).fetchall()
        return [KeyUsageRow(str(name), int(requests), int(limited)) for name, requests, limited in rows]

    def forget_old_usage(self, *, now: float) -> int:
        """Drop hourly counters older than `USAGE_KEPT_HOURS`; returns how many went."""
        with self.database.write() as conn:
            cursor = conn.execute("DELETE FROM key_usage WHERE hour < ?", (_hour(now) - USAGE_KEPT_HOURS,))
        return cursor.rowcount

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._owns:
            self.database.close()
