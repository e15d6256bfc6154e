"""Opening the configured state store: the one place that reads the `state` setting.

The engine, `puter-mcp login` (through the CLI, which hands the store to the sign-in) and
`puter-mcp doctor` all open the store here, so that they always agree on which store and which
file. The routing layer knows no settings: this module turns them into a target and an origin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from puter_mcp.routing.redis_url import is_redis_url, masked_url, redis_password
from puter_mcp.routing.state import (
    MEMORY,
    Housekeeping,
    StateFileCheck,
    StateStore,
    check_state_file,
    open_state_store,
)
from puter_mcp.settings import Paths, Settings

__all__ = [
    "ATTEMPTS_KEPT",
    "EXPIRED_COOLDOWNS_KEPT",
    "check_shared_store",
    "check_store",
    "is_redis_url",
    "masked_url",
    "open_store",
    "redis_password",
]

logger = logging.getLogger(__name__)

ATTEMPTS_KEPT = 30 * 86400.0
"""Seconds attempt records are kept: they are for status and benchmarks, not an archive."""

EXPIRED_COOLDOWNS_KEPT = 86400.0
"""Seconds an ended cooldown is kept: long enough to remember a rate-limit escalation."""


def open_store(
    settings: Settings,
    paths: Paths,
    *,
    on_warning: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> StateStore:
    """The store the settings name (`Settings.state`), keyed by the Puter they talk to.

    Never raises for a bad file: see `puter_mcp.routing.state.open_state_store`; what went wrong
    goes to `on_warning` (default: the log).
    """
    target: str | Path = paths.state_db
    if settings.state == "memory":
        target = MEMORY
    elif is_redis_url(settings.state):
        target = settings.state
    return open_state_store(
        target,
        origin=settings.api_origin,
        on_warning=on_warning or logger.warning,
        housekeeping=Housekeeping(
            now=clock(), attempts_max_age=ATTEMPTS_KEPT, cooldowns_max_age=EXPIRED_COOLDOWNS_KEPT
        ),
        prefix=settings.state_prefix,
        password=redis_password(),
    )


def check_store(settings: Settings, paths: Paths) -> StateFileCheck:
    """Open the configured store the way every process does, and say how that went (doctor)."""
    if settings.state == "memory":
        return StateFileCheck(
            "ok", 'state = "memory": each process keeps its own state; nothing is shared or kept'
        )
    return check_state_file(paths.state_db)


async def check_shared_store(settings: Settings, paths: Paths) -> StateFileCheck:
    """`check_store` for every kind of store: a Redis URL is reached over the network (its
    version and the time of one round trip); a file or memory is checked as `check_store` does."""
    if not is_redis_url(settings.state):
        return check_store(settings, paths)
    from puter_mcp.routing.state.redis import check_redis

    found = await check_redis(settings.state, password=redis_password(), prefix=settings.state_prefix)
    return StateFileCheck("ok" if found.ok else "unreadable", found.detail)
