"""Where the gateway's API keys live: the one place that picks the key store from the settings.

``state = "redis://..."`` (a fleet of replicas sharing one Redis): the keys and their limits
live in that Redis, under the same ``state_prefix`` (`puter_mcp.gateway.redis_keys`). Otherwise:
the machine's SQLite file ``keys.db`` in the data directory (`puter_mcp.gateway.keystore`).
`puter-mcp gateway`, `puter-mcp keys` and `puter-mcp stats` all open their keys here, so they
always agree (docs/gateway-keys.md, "Where keys live").
"""

from __future__ import annotations

import sqlite3
import time

from puter_mcp.core import is_redis_url, masked_url, redis_password
from puter_mcp.gateway.keystore import KeyDatabase, KeyStore, KeyStoreError, SQLiteKeyStore, key_store_file
from puter_mcp.gateway.limiter import Clock, KeyLimiter, SQLiteLimitStorage
from puter_mcp.settings import Paths, Settings

__all__ = ["keys_in_redis", "open_key_store", "open_keys", "where_keys_live"]


def keys_in_redis(settings: Settings) -> bool:
    """Whether the keys live in the Redis the `state` setting names."""
    return is_redis_url(settings.state)


def where_keys_live(settings: Settings, paths: Paths) -> str:
    """The key store as a sentence names it (a Redis URL without its password, or the file)."""
    if keys_in_redis(settings):
        return f"Redis at {masked_url(settings.state)} (prefix {settings.state_prefix!r})"
    return str(key_store_file(paths))


def open_key_store(settings: Settings, paths: Paths) -> KeyStore:
    """The key store the settings name, for the CLI (`keys`, `stats`).

    Raises:
        KeyStoreError: the SQLite file cannot be used (a Redis that does not answer is found
            by the first call, which raises it).
    """
    if keys_in_redis(settings):
        from puter_mcp.gateway.redis_keys import RedisKeyStore

        return RedisKeyStore(
            settings.state,
            prefix=settings.state_prefix,
            password=redis_password(),
            shown_url=masked_url(settings.state),
        )
    return SQLiteKeyStore(key_store_file(paths))


def open_keys(settings: Settings, paths: Paths, *, clock: Clock = time.time) -> tuple[KeyStore, KeyLimiter]:
    """The key store and the limiter counting each key's requests, both where the settings say.

    Raises:
        KeyStoreError: the SQLite file cannot be used.
    """
    if keys_in_redis(settings):
        from puter_mcp.gateway.redis_keys import RedisKeyStore, RedisLimitStorage

        password = redis_password()
        store = RedisKeyStore(
            settings.state,
            prefix=settings.state_prefix,
            password=password,
            shown_url=masked_url(settings.state),
        )
        # The library's Redis storage counts with its own clock (time.time), as every replica does.
        storage = RedisLimitStorage(settings.state, prefix=settings.state_prefix, password=password)
        return store, KeyLimiter(storage)
    database = KeyDatabase(key_store_file(paths))
    sqlite_store = SQLiteKeyStore(database, close_database=True)
    sqlite_storage = SQLiteLimitStorage(database, clock=clock)
    try:
        sqlite_storage.forget_old()
        sqlite_store.forget_old_usage(now=clock())
    except sqlite3.Error as exc:
        database.close()
        raise KeyStoreError(f"cannot use the key store {database.path}: {exc}") from exc
    return sqlite_store, KeyLimiter(sqlite_storage, clock=clock)
