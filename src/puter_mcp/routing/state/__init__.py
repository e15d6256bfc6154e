"""The state every puter-mcp process of one user shares: cooldowns, pacing, last use, attempts.

The router never talks to a database: it goes through the async `StateStore` protocol
(`protocol.py`), so another store (e.g. Redis) can be added without touching the router.

- `records.py`: what is stored, and the rules every store applies alike;
- `memory.py`: `MemoryStateStore`, one process only (tests, and the fallback);
- `sqlite.py`: `SQLiteStateStore`, shared by the processes of one user through one file;
- `redis.py`: `RedisStateStore`, shared by gateway replicas through one Redis (imported only
  where a ``redis://`` URL is opened, so that other processes never load the client);
- `fallback.py`: `FallbackStateStore`, which switches any store to memory when it fails;
- `factory.py`: `open_state_store`, what the application calls.

Every record is keyed by the Puter API origin it was learned against, and every slot names the
process that holds it, so that a dead process's places are freed at once (see docs/state.md).
"""

from puter_mcp.routing.state.factory import MEMORY, open_state_store
from puter_mcp.routing.state.fallback import FallbackStateStore
from puter_mcp.routing.state.memory import MemoryStateStore
from puter_mcp.routing.state.protocol import CooldownChanges, StateStore, WarningSink, release_process_slots
from puter_mcp.routing.state.records import (
    DEFAULT_ORIGIN,
    Admitted,
    Attempt,
    Cooldown,
    CooldownChange,
    CooldownKey,
    Decision,
    Judge,
    Scope,
    Slot,
    SlotRefusal,
    SlotRequest,
    StateStoreError,
    WindowUsage,
)
from puter_mcp.routing.state.sqlite import (
    SCHEMA_VERSION,
    Housekeeping,
    SQLiteStateStore,
    StateFileCheck,
    check_state_file,
    is_corruption,
)

__all__ = [
    "DEFAULT_ORIGIN",
    "MEMORY",
    "SCHEMA_VERSION",
    "Admitted",
    "Attempt",
    "Cooldown",
    "CooldownChange",
    "CooldownChanges",
    "CooldownKey",
    "Decision",
    "FallbackStateStore",
    "Housekeeping",
    "Judge",
    "MemoryStateStore",
    "SQLiteStateStore",
    "Scope",
    "Slot",
    "SlotRefusal",
    "SlotRequest",
    "StateFileCheck",
    "StateStore",
    "StateStoreError",
    "WarningSink",
    "WindowUsage",
    "check_state_file",
    "is_corruption",
    "open_state_store",
    "release_process_slots",
]
