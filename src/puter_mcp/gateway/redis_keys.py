"""The gateway's API keys and their limits in Redis, shared by every replica of a fleet.

Selected when ``state`` is a ``redis://`` (or ``rediss://``) URL (docs/gateway-keys.md); the
keys then live in the same Redis as the routing state, under the same ``state_prefix``:

```
{prefix}{keys}:key:<digest>   hash: one key (id, name, hint, created, expires, admin, models,
                              rpm, rph, rpd, last_used, revoked), by the SHA-256 of its secret
{prefix}{keys}:names          hash: name -> digest, for the keys not revoked (names are unique)
{prefix}{keys}:all            set: every digest ever stored (the list with revoked keys)
{prefix}{keys}:ids            hash: id -> digest (counting a use knows the key's id)
{prefix}{keys}:usage:<hour>   hash: ``r:<name>`` requests, ``l:<name>`` 429s in that UTC hour;
                              expires USAGE_KEPT_HOURS after it
{prefix}limits:LIMITER/...    the `limits` library's moving windows (a list per key and window)
```

The ``{keys}`` hash tag puts every key-store key in one Redis Cluster slot, so that the scripts
that touch several of them (create, revoke, record a use) are allowed there. Each of those
steps is one Lua script, so two replicas never both create a name or both revoke a key.

Nothing is cached: every request looks its key up in Redis (one HGETALL), so a key created on
one replica works on every other at once and a revoked one stops at once.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from limits.aio.storage import RedisStorage
from redis.exceptions import RedisError

from puter_mcp.gateway.keystore import (
    USAGE_KEPT_HOURS,
    DuplicateKeyName,
    KeyLimits,
    KeyRecord,
    KeySpec,
    KeyStoreError,
    KeyUsageRow,
    UnknownKeyName,
    hash_secret,
    new_key,
)
from puter_mcp.redis_client import redis_client

__all__ = ["REDIS_KEY_ERRORS", "SOCKET_TIMEOUT", "RedisKeyStore", "RedisLimitStorage"]

SOCKET_TIMEOUT = 2.0
"""Seconds to wait for Redis: a request whose key cannot be checked fails (503) rather than hangs."""

REDIS_KEY_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError)
"""What a Redis that does not answer raises (turned into `KeyStoreError` here)."""

_T = TypeVar("_T")

# KEYS: names, key hash, all, ids. ARGV: name, digest, id, then the hash's fields and values.
_CREATE = """
if redis.call('hsetnx', KEYS[1], ARGV[1], ARGV[2]) == 0 then
    return 0
end
redis.call('hset', KEYS[2], unpack(ARGV, 4))
redis.call('sadd', KEYS[3], ARGV[2])
redis.call('hset', KEYS[4], ARGV[3], ARGV[2])
return 1
"""

# KEYS: names, key hash. ARGV: name, digest, now. The name must still lead to that digest
# (another replica may have revoked it since it was looked up).
_REVOKE = """
if redis.call('hget', KEYS[1], ARGV[1]) ~= ARGV[2] then
    return false
end
redis.call('hdel', KEYS[1], ARGV[1])
redis.call('hset', KEYS[2], 'revoked', ARGV[3])
return redis.call('hgetall', KEYS[2])
"""

# KEYS: key hash, usage hash of the hour. ARGV: now, admitted (1/0), name, seconds to keep.
_RECORD_USE = """
if ARGV[2] == '1' and redis.call('exists', KEYS[1]) == 1 then
    local last = tonumber(redis.call('hget', KEYS[1], 'last_used') or '0')
    if tonumber(ARGV[1]) > last then
        redis.call('hset', KEYS[1], 'last_used', ARGV[1])
    end
end
local field = (ARGV[2] == '1' and 'r:' or 'l:') .. ARGV[3]
redis.call('hincrby', KEYS[2], field, 1)
redis.call('expire', KEYS[2], ARGV[4])
return 1
"""


def _hour(at: float) -> int:
    return math.floor(at / 3600)


def _optional_float(value: str | None) -> float | None:
    return None if value is None or value == "" else float(value)


def _optional_int(value: str | None) -> int | None:
    return None if value is None or value == "" else int(value)


def _record(fields: dict[str, str]) -> KeyRecord:
    models = fields.get("models")
    return KeyRecord(
        id=fields["id"],
        name=fields["name"],
        hint=fields["hint"],
        created=float(fields["created"]),
        expires=_optional_float(fields.get("expires")),
        admin=fields.get("admin") == "1",
        models=None if not models else tuple(json.loads(models)),
        limits=KeyLimits(
            rpm=_optional_int(fields.get("rpm")),
            rph=_optional_int(fields.get("rph")),
            rpd=_optional_int(fields.get("rpd")),
        ),
        last_used=_optional_float(fields.get("last_used")),
        revoked=_optional_float(fields.get("revoked")),
    )


def _pairs(values: list[Any]) -> dict[str, str]:
    return {str(values[i]): str(values[i + 1]) for i in range(0, len(values) - 1, 2)}


class RedisKeyStore:
    """`KeyStore` in Redis (see the module's docstring for the layout).

    Args:
        url: ``redis://host:port/db`` or ``rediss://...``; a password in it wins over `password`.
        prefix: what every key starts with (the `state_prefix` setting).
        password: used when the URL has none (``PUTER_MCP_REDIS_PASSWORD``).
        shown_url: how errors name the server (the URL without its password).
        clock: epoch seconds, for `usage` (which hours exist up to now).

    Every method raises `KeyStoreError` (never the client's errors) when Redis does not answer.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "puter-mcp:",
        password: str | None = None,
        shown_url: str = "Redis",
        socket_timeout: float = SOCKET_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis_client(url, password=password, socket_timeout=socket_timeout)
        self._shown = shown_url
        self._clock = clock
        self._base = f"{prefix}{{keys}}:"
        self._names = self._base + "names"
        self._all = self._base + "all"
        self._ids = self._base + "ids"
        self._digests: dict[str, str] = {}  # id -> digest: fixed for a key's life, so kept
        self._create = self._redis.register_script(_CREATE)
        self._revoke = self._redis.register_script(_REVOKE)
        self._record_use = self._redis.register_script(_RECORD_USE)

    def _key(self, digest: str) -> str:
        return f"{self._base}key:{digest}"

    def _usage(self, hour: int) -> str:
        return f"{self._base}usage:{hour}"

    async def _hgetall(self, key: str) -> dict[str, str]:
        return cast(dict[str, str], await self._redis.hgetall(key))  # type: ignore[misc]

    async def _hget(self, key: str, field: str) -> str | None:
        return cast(str | None, await self._redis.hget(key, field))  # type: ignore[misc]

    async def _talk(self, call: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await call()
        except REDIS_KEY_ERRORS as exc:
            # The client's message names host and port, never the password.
            raise KeyStoreError(f"the key store in {self._shown} does not answer: {exc}") from exc

    async def create(self, spec: KeySpec, *, now: float) -> tuple[KeyRecord, str]:
        record, secret = new_key(spec, now=now)
        digest = hash_secret(secret)
        fields: dict[str, str] = {
            "id": record.id,
            "name": record.name,
            "hint": record.hint,
            "created": repr(record.created),
            "admin": "1" if record.admin else "0",
        }
        if record.expires is not None:
            fields["expires"] = repr(record.expires)
        if record.models is not None:
            fields["models"] = json.dumps(list(record.models))
        for label, amount, _seconds in record.limits.windows():
            fields[label] = str(amount)
        flat = [item for pair in fields.items() for item in pair]
        made = await self._talk(
            lambda: self._create(
                keys=[self._names, self._key(digest), self._all, self._ids],
                args=[spec.name, digest, record.id, *flat],
            )
        )
        if not made:
            raise DuplicateKeyName(
                f"a key named {spec.name!r} already exists: revoke it first, or choose another name"
            )
        return record, secret

    async def find(self, digest: str) -> KeyRecord | None:
        fields = await self._talk(lambda: self._hgetall(self._key(digest)))
        if not fields:
            return None
        record = _record(fields)
        self._remember(record.id, digest)
        return record

    def _remember(self, key_id: str, digest: str) -> None:
        if len(self._digests) >= 10_000:
            self._digests.clear()  # bounded; a forgotten one is read again from the ids hash
        self._digests[key_id] = digest

    async def list(self, *, include_revoked: bool = False) -> list[KeyRecord]:
        async def read() -> list[dict[str, str]]:
            if include_revoked:
                digests = sorted(cast(set[str], await self._redis.smembers(self._all)))  # type: ignore[misc]
            else:
                digests = list((await self._hgetall(self._names)).values())
            async with self._redis.pipeline(transaction=False) as pipe:
                for digest in digests:
                    pipe.hgetall(self._key(digest))
                return await pipe.execute()

        found = await self._talk(read)
        records = [_record(fields) for fields in found if fields]
        return sorted(records, key=lambda record: (record.name, record.created))

    async def revoke(self, name: str, *, now: float) -> KeyRecord:
        digest = await self._talk(lambda: self._hget(self._names, name))
        values: list[Any] | None = None
        if digest is not None:
            values = cast(
                list[Any] | None,
                await self._talk(
                    lambda: self._revoke(
                        keys=[self._names, self._key(digest)], args=[name, digest, repr(now)]
                    )
                ),
            )
        if not values:
            raise UnknownKeyName(f"no key is named {name!r} (see the list of keys)")
        # Its windows in the limiter are left to expire on their own (a day at most): a new
        # key of that name has its own id and starts with empty windows.
        return _record(_pairs(values))

    async def record_use(self, key: KeyRecord, *, now: float, admitted: bool) -> None:
        digest = self._digests.get(key.id)
        if digest is None:
            digest = await self._talk(lambda: self._hget(self._ids, key.id))
            if digest is None:
                return  # not a key of this store
            self._remember(key.id, digest)
        hour = _hour(now)
        keep = (hour + 1 + USAGE_KEPT_HOURS) * 3600 - math.floor(now)
        await self._talk(
            lambda: self._record_use(
                keys=[self._key(digest), self._usage(hour)],
                args=[repr(now), "1" if admitted else "0", key.name, keep],
            )
        )

    async def usage(self, since: float) -> list[KeyUsageRow]:
        last = _hour(self._clock())
        first = max(_hour(since), last - USAGE_KEPT_HOURS)

        async def read() -> list[dict[str, str]]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for hour in range(first, last + 1):
                    pipe.hgetall(self._usage(hour))
                return await pipe.execute()

        totals: dict[str, list[int]] = {}
        for fields in await self._talk(read):
            for field, value in fields.items():
                kind, _, name = field.partition(":")
                counts = totals.setdefault(name, [0, 0])
                counts[0 if kind == "r" else 1] += int(value)
        return [KeyUsageRow(name, counts[0], counts[1]) for name, counts in sorted(totals.items())]

    async def aclose(self) -> None:
        await self._redis.aclose()


class RedisLimitStorage(RedisStorage):
    """The `limits` library's own async Redis storage (redis-py), with what `KeyLimiter` needs
    to apply several windows all or none without a transaction: `give_back` undoes one entry
    taken in a window when a later window of the same request refuses.

    Each acquire is the library's Lua script (check and take in one step), so two replicas never
    both take a window's last place.

    Args:
        url: ``redis://...`` or ``rediss://...``, as the `state` setting names it.
        prefix: the `state_prefix` setting; the windows live under ``{prefix}limits:``.
        password: used when the URL has none.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "puter-mcp:",
        password: str | None = None,
        socket_timeout: float = SOCKET_TIMEOUT,
    ) -> None:
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_timeout,
        }
        if password is not None:
            options["password"] = password
        super().__init__(
            "async+" + url,
            wrap_exceptions=True,
            implementation="redispy",
            key_prefix=f"{prefix}limits",
            **options,
        )

    async def give_back(self, key: str) -> None:
        """Undo one entry taken in the window `key` (the newest: entries differ only by their
        time, and the newest is the one just taken or one taken a moment later)."""
        connection: Any = cast(Any, self.bridge).get_connection()
        await connection.lpop(self.bridge.prefixed_key(key))

    async def aclose(self) -> None:
        connection: Any = cast(Any, self.bridge).get_connection()
        await connection.aclose()
