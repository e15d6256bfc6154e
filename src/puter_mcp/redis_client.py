"""The one way this project opens a Redis client (the state store, the gateway's key store).

Beside `puter_mcp.routing.redis_url` (URLs as strings) rather than in it, so that reading a URL
never imports the client, and outside `routing/`, so that the gateway, which reaches the routing
only through the core, may use it too.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["redis_client", "sync_redis_client"]


def redis_client(url: str, *, password: str | None, socket_timeout: float) -> aioredis.Redis:
    """An asyncio client for `url`: text replies, `socket_timeout` to connect and to answer, and
    one retry without waiting, so that a pooled connection Redis closed (a restart) is replaced
    at once while a Redis that is gone fails fast. Nothing connects until the first command."""
    return aioredis.Redis.from_url(
        url, **_options(password, socket_timeout), retry=AsyncRetry(NoBackoff(), 1)
    )


def sync_redis_client(url: str, *, password: str | None, socket_timeout: float) -> redis.Redis:
    """A blocking client with the same options, for what cannot wait for the event loop (a
    signal handler giving back the slots of a process that is stopping)."""
    return redis.Redis.from_url(url, **_options(password, socket_timeout), retry=Retry(NoBackoff(), 1))


def _options(password: str | None, socket_timeout: float) -> dict[str, Any]:
    return {
        "password": password,
        "decode_responses": True,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
    }
