"""`KeyRing`: the gateway's API keys and their limits, the `KeyGate` every request passes.

For each request the gateway hands over the key the client sent and the model it names:

1. no key: refused (401) when keys are required, else admitted without a key;
2. a key while keys are not required: a puter-mcp key (``pmk-...``) is checked as in 3, since
   someone who sends one expects its limits to hold; anything else is the dummy key the SDKs
   insist on sending (``sk-anything``, ``ollama``) and is taken as no key;
3. an unknown, revoked or expired key: 401 (the message never repeats the key);
4. a key limited to some models, asking for another: 403;
5. a key over one of its limits (per minute, hour, day): 429 with the seconds until its window
   frees a place (Retry-After). A refused request uses no place; an admitted one counts at once,
   in every window, in every process of the machine (`puter_mcp.gateway.limiter`), or of the
   fleet when the keys live in Redis (`puter_mcp.gateway.keyplace`).

Each request and each 429 is counted per key and hour in the key store, for ``/stats``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from limits.errors import StorageError

from puter_mcp.gateway.access import Caller, KeyUsage
from puter_mcp.gateway.failures import GatewayError
from puter_mcp.gateway.keyplace import open_keys
from puter_mcp.gateway.keystore import (
    KeyDatabase,
    KeyRecord,
    KeySpec,
    KeyStore,
    KeyStoreError,
    SQLiteKeyStore,
    hash_secret,
    looks_like_key,
)
from puter_mcp.gateway.limiter import Clock, KeyLimiter, SQLiteLimitStorage
from puter_mcp.settings import Paths, Settings

__all__ = ["KeyRing"]

_log = logging.getLogger(__name__)

_CREATE_HINT = "`puter-mcp keys create NAME` on the gateway's machine"


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


class KeyRing:
    """The `KeyGate` over a `KeyStore` and a `KeyLimiter`.

    Args:
        store: where the keys are (shared by every gateway process).
        limiter: counts each key's requests (its storage shared likewise).
        required: every request must carry a valid key.
        clock: epoch seconds (tests pass their own, the limiter's).
    """

    def __init__(
        self, store: KeyStore, limiter: KeyLimiter, *, required: bool, clock: Clock = time.time
    ) -> None:
        self.store = store
        self.limiter = limiter
        self.required = required
        self._clock = clock

    @classmethod
    def open(cls, path: Path, *, required: bool, clock: Clock = time.time) -> KeyRing:
        """The ring over the SQLite key store at `path` (created owner-only if missing), its
        limiter counting in the same file.

        Raises:
            KeyStoreError: the file cannot be used; the message says why.
        """
        database = KeyDatabase(path)
        store = SQLiteKeyStore(database, close_database=True)
        storage = SQLiteLimitStorage(database, clock=clock)
        try:
            storage.forget_old()
            store.forget_old_usage(now=clock())
        except sqlite3.Error as exc:
            database.close()
            raise KeyStoreError(f"cannot use the key store {path}: {exc}") from exc
        return cls(store, KeyLimiter(storage, clock=clock), required=required, clock=clock)

    @classmethod
    def for_settings(
        cls, settings: Settings, paths: Paths, *, required: bool, clock: Clock = time.time
    ) -> KeyRing:
        """The ring over the key store the settings name: the Redis of ``state = "redis://..."``
        (shared by a fleet), else the machine's SQLite file (`puter_mcp.gateway.keyplace`).

        Raises:
            KeyStoreError: the SQLite file cannot be used; the message says why.
        """
        store, limiter = open_keys(settings, paths, clock=clock)
        return cls(store, limiter, required=required, clock=clock)

    # -- the gate ----------------------------------------------------------------------------

    async def admit(self, secret: str | None, model: str | None, *, spend: bool = True) -> Caller:
        secret = (secret or "").strip() or None
        if secret is None or (not self.required and not looks_like_key(secret)):
            if self.required:
                raise GatewayError(
                    401,
                    "this gateway requires an API key: send it as `Authorization: Bearer <key>` "
                    f"or `x-api-key: <key>`; its owner creates keys with {_CREATE_HINT}",
                    code="missing_api_key",
                )
            return Caller()
        try:
            return await self._admit_key(secret, model, spend=spend)
        except (KeyStoreError, StorageError, sqlite3.Error) as exc:
            # Fail closed: a key that cannot be checked is not admitted.
            _log.error("the key store failed while checking a key: %s", exc)
            raise GatewayError(
                503, "the gateway cannot check API keys right now (its key store failed); see its log"
            ) from None

    async def _admit_key(self, secret: str, model: str | None, *, spend: bool) -> Caller:
        now = self._clock()
        key = await self.store.find(hash_secret(secret))
        if key is None or key.revoked is not None:
            raise GatewayError(
                401,
                "the API key is not valid (unknown or revoked): check the key the client sends, "
                f"or create one with {_CREATE_HINT}",
                code="invalid_api_key",
            )
        if key.expired(now):
            assert key.expires is not None
            raise GatewayError(
                401,
                f"the API key {key.name!r} expired on {_day(key.expires)}: create a new one with "
                f"{_CREATE_HINT}",
                code="expired_api_key",
                key=key.name,
            )
        if not key.allows_model(model):
            allowed = ", ".join(key.models or ())
            raise GatewayError(
                403,
                f"the API key {key.name!r} may not use the model {model!r}; it may use: {allowed}",
                param="model",
                code="model_not_allowed",
                key=key.name,
            )
        if not spend:
            return Caller(key=key.name, admin=key.admin)
        verdict = await self.limiter.admit(key.id, key.limits)
        await self.store.record_use(key, now=now, admitted=verdict.admitted)
        if not verdict.admitted:
            assert verdict.retry_after is not None
            raise GatewayError(
                429,
                f"the API key {key.name!r} is over its limit of {verdict.describe()}; "
                f"a request may go again in {max(1, round(verdict.retry_after))} s",
                code="rate_limit_exceeded",
                retry_after=verdict.retry_after,
                key=key.name,
            )
        return Caller(key=key.name, admin=key.admin)

    async def usage(self, since: float) -> list[KeyUsage]:
        rows = await self.store.usage(since)
        return [KeyUsage(key=row.name, requests=row.requests, rate_limited=row.rate_limited) for row in rows]

    async def aclose(self) -> None:
        await self.store.aclose()
        close_storage = getattr(self.limiter.storage, "aclose", None)  # a Redis connection pool
        if close_storage is not None:
            await close_storage()

    # -- administration (the admin routes; the CLI uses the store directly) ------------------

    async def create(self, spec: KeySpec) -> tuple[KeyRecord, str]:
        return await self.store.create(spec, now=self._clock())

    async def list(self) -> list[KeyRecord]:
        return await self.store.list()

    async def revoke(self, name: str) -> KeyRecord:
        return await self.store.revoke(name, now=self._clock())

    def now(self) -> float:
        return self._clock()
