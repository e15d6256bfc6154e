"""The backend every front end uses: the MCP server, the CLI, the doctor, the HTTP gateway.

The core knows no front end: it imports nothing of MCP, argparse or an HTTP server, and its
messages name no command and no tool. A front end imports what it needs from here (this
module's `__all__`), and words the errors of `puter_mcp.core.errors` for its own users.
"""

from typing import TYPE_CHECKING, Any

from puter_mcp.core.backend import Backend, sandbox_home
from puter_mcp.core.calls import (
    ChatCall,
    ContentPart,
    ImagePart,
    ModelsQuery,
    NamedTool,
    ReasoningEffort,
    ReasoningPart,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    Turn,
)
from puter_mcp.core.errors import (
    Action,
    BackendError,
    BadRequest,
    ModelNotFound,
    NoCandidateLeft,
    NotSignedIn,
    UpstreamRefused,
)
from puter_mcp.core.events import (
    CONTENT_EVENTS,
    Answering,
    AttemptStarted,
    ChatEvent,
    Finished,
    ReasoningDelta,
    StreamFailed,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from puter_mcp.core.results import (
    AccountsOverview,
    AccountStatus,
    AttemptRecord,
    AutoInfo,
    ChatMetadata,
    ChatOutcome,
    CooldownInfo,
    Credits,
    ModelRecord,
    ModelsPage,
    StreamProgress,
    ToolCallRecord,
    UsageInfo,
    VirtualModelRecord,
)
from puter_mcp.puter.effort import effort_from_thinking_budget
from puter_mcp.puter.errors import FailureKind

# From the light module, not core.stores: importing the state package would slow every start.
from puter_mcp.routing.redis_url import is_redis_url, masked_url, redis_password

if TYPE_CHECKING:
    from puter_mcp.core.readiness import Readiness
    from puter_mcp.core.stats_view import UpstreamAttempt, UsageFigures, UsageReport

# Names only the gateway and the CLI's `stats` use: imported when first asked for, so that
# an MCP server, which never asks, starts without them (the cold start is a target).
_LAZY = {
    "Readiness": "puter_mcp.core.readiness",
    "UpstreamAttempt": "puter_mcp.core.stats_view",
    "UsageFigures": "puter_mcp.core.stats_view",
    "UsageReport": "puter_mcp.core.stats_view",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CONTENT_EVENTS",
    "AccountStatus",
    "AccountsOverview",
    "Action",
    "Answering",
    "AttemptRecord",
    "AttemptStarted",
    "AutoInfo",
    "Backend",
    "BackendError",
    "BadRequest",
    "ChatCall",
    "ChatEvent",
    "ChatMetadata",
    "ChatOutcome",
    "ContentPart",
    "CooldownInfo",
    "Credits",
    "FailureKind",
    "Finished",
    "ImagePart",
    "ModelNotFound",
    "ModelRecord",
    "ModelsPage",
    "ModelsQuery",
    "NamedTool",
    "NoCandidateLeft",
    "NotSignedIn",
    "Readiness",
    "ReasoningDelta",
    "ReasoningEffort",
    "ReasoningPart",
    "StreamFailed",
    "StreamProgress",
    "TextDelta",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallRecord",
    "ToolChoice",
    "Turn",
    "UpstreamAttempt",
    "UpstreamRefused",
    "UsageFigures",
    "UsageInfo",
    "UsageReport",
    "UsageUpdate",
    "VirtualModelRecord",
    "effort_from_thinking_budget",
    "is_redis_url",
    "masked_url",
    "redis_password",
    "sandbox_home",
]
