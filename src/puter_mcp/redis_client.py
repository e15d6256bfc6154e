"""The one way this project opens a Redis client (the state store, the gateway's key store).

Beside `puter_mcp.routing.redis_url` (URLs as strings) rather than in it, so that reading a URL
never imports the client, and outside `routing/`, so that the gateway, which reaches the routing
only through the core, may use it too.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = ["redis_client"]


def redis_client(url: str, *, password: str | None, socket_timeout: float) -> aioredis.Redis:
    """An asyncio client for `url`: text replies, `socket_timeout` to connect and to answer, and
    one retry without waiting, so that a pooled connection Redis closed (a restart) is replaced
    at once while a Redis that is gone fails fast. Nothing connects until the first command."""
    return aioredis.Redis.from_url(
        url,
        password=password,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 1),
    )
