"""The backend every front end uses: the MCP server, the CLI, the doctor, the HTTP gateway.

The core knows no front end: it imports nothing of MCP, argparse or an HTTP server, and its
messages name no command and no tool. A front end imports what it needs from here (this
module's `__all__`), and words the errors of `puter_mcp.core.errors` for its own users.
"""

from puter_mcp.core.backend import Backend, sandbox_home
from puter_mcp.core.calls import ChatCall, ModelsQuery, Turn
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
    UsageInfo,
    VirtualModelRecord,
)

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
    "CooldownInfo",
    "Credits",
    "Finished",
    "ModelNotFound",
    "ModelRecord",
    "ModelsPage",
    "ModelsQuery",
    "NoCandidateLeft",
    "NotSignedIn",
    "ReasoningDelta",
    "StreamFailed",
    "StreamProgress",
    "TextDelta",
    "ToolCallDelta",
    "Turn",
    "UpstreamRefused",
    "UsageInfo",
    "UsageUpdate",
    "VirtualModelRecord",
    "sandbox_home",
]
