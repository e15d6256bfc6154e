"""Opening a store for a path or a URL, the way every puter-mcp process does.

`open_state_store` never raises for a bad file: a damaged database is moved aside and replaced
by a new one; a locked, unreachable or newer one leaves this process with memory only, with a
warning; and the SQLite store it returns degrades to memory at run time if an operation fails
(after one attempt to replace a file found damaged), so state problems never crash a tool call.
A Redis URL gives the Redis store, which degrades to memory while Redis does not answer and
goes back to it when it does.
Which store to open is the caller's business (the core reads it from the settings): nothing here
knows where the configuration or the state directory is.
"""

from __future__ import annotations

import logging
from pathlib import Path

from puter_mcp.routing.redis_url import is_redis_url, masked_url
from puter_mcp.routing.state.fallback import FallbackStateStore
from puter_mcp.routing.state.memory import MemoryStateStore
from puter_mcp.routing.state.protocol import StateStore, WarningSink
from puter_mcp.routing.state.records import DEFAULT_ORIGIN, StateStoreError
from puter_mcp.routing.state.sqlite import STORE_ERRORS, Housekeeping, SQLiteStateStore

__all__ = ["MEMORY", "NETWORK_SCHEMES", "REDIS_RETRY_AFTER", "open_state_store"]

_log = logging.getLogger(__name__)

MEMORY = "memory"
"""The target that names a store for this process only."""

NETWORK_SCHEMES = ("unix://",)
"""URL forms reserved for a later networked store (``redis://`` and ``rediss://`` are served)."""

REDIS_RETRY_AFTER = 5.0
"""Seconds between two tries of a Redis that stopped answering (the replica uses memory meanwhile)."""


def _log_warning(message: str) -> None:
    _log.warning("%s", message)


def open_state_store(
    target: Path | str,
    *,
    origin: str = DEFAULT_ORIGIN,
    on_warning: WarningSink | None = None,
    busy_timeout: float = 0.5,
    housekeeping: Housekeeping | None = None,
    prefix: str | None = None,
    password: str | None = None,
) -> StateStore:
    """Open the shared state, or memory if it cannot be used.

    Args:
        target: the SQLite database file, ``"memory"`` for this process only, or a
            ``redis://`` / ``rediss://`` URL.
        origin: the Puter API origin whose records to see (`Settings.api_origin`).
        on_warning: receives one sentence naming the file and what to do, when the file cannot
            be used now, is moved aside, or fails later; default: a ``logging`` warning.
        busy_timeout: seconds to wait for another process's write lock.
        housekeeping: old records to forget once the file is open.
        prefix: Redis only: what every key starts with (default ``puter-mcp:``).
        password: Redis only: used when the URL has none.

    Raises:
        StateStoreError: `target` is a ``unix://`` URL (reserved for a later version).
    """
    warn = on_warning or _log_warning
    if isinstance(target, str):
        if target == MEMORY:
            return MemoryStateStore()
        if is_redis_url(target):
            return _open_redis(target, origin, warn, housekeeping, prefix, password)
        if target.startswith(NETWORK_SCHEMES):
            raise StateStoreError(
                f"a networked state store ({target.split('://', 1)[0]}://...) is not available in "
                "this version of puter-mcp; use a SQLite file or memory"
            )
    path = Path(target)
    try:
        primary = SQLiteStateStore(
            path, origin=origin, busy_timeout=busy_timeout, on_warning=warn, housekeeping=housekeeping
        )
    except STORE_ERRORS as error:
        warn(
            f"puter-mcp: cannot use the shared state file {path} ({error}). Cooldowns and "
            "pacing are kept in memory for this process only, so other puter-mcp processes will "
            f"not see them. If {path} is from a newer puter-mcp, quit every puter-mcp "
            "process and delete it (it is recreated on the next start); if it is locked, another "
            "program holds it."
        )
        return MemoryStateStore()
    return FallbackStateStore(
        primary,
        on_warning=warn,
        errors=STORE_ERRORS,
        name=f"the shared state file {path}",
        advice=(
            f"If this happens again, quit every puter-mcp process and delete {path} "
            "(it is recreated on the next start)."
        ),
    )


def _open_redis(
    url: str,
    origin: str,
    warn: WarningSink,
    housekeeping: Housekeeping | None,
    prefix: str | None,
    password: str | None,
) -> StateStore:
    # Imported here: the client is needed only by the processes that use Redis.
    from puter_mcp.routing.state.redis import DEFAULT_PREFIX, REDIS_STORE_ERRORS, RedisStateStore

    primary = RedisStateStore(
        url, origin=origin, prefix=prefix or DEFAULT_PREFIX, password=password, housekeeping=housekeeping
    )
    return FallbackStateStore(
        primary,
        on_warning=warn,
        errors=REDIS_STORE_ERRORS,
        name=f"the Redis state store at {masked_url(url)}",
        advice="Check that Redis runs and that the URL and PUTER_MCP_REDIS_PASSWORD are right "
        "(`puter-mcp doctor` checks them).",
        retry_after=REDIS_RETRY_AFTER,
    )
