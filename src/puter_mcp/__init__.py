"""puter-mcp: Puter.com's AI models inside every MCP client, and inside your Python programs.

```
import anyio
import puter_mcp

async def main():
    async with puter_mcp.open_backend(sandbox=True) as backend:
        outcome = await backend.chat(puter_mcp.ChatCall.build(message="hello"))
        print(outcome.model, outcome.text)

anyio.run(main)
```

The names of `__all__` are imported on first use (PEP 562 `__getattr__`): every `puter-mcp`
command imports this package, and its start-up time is measured (bench/overhead.py). See
docs/python.md.
"""

# `typing.TYPE_CHECKING` without importing typing (milliseconds on the start-up path); type
# checkers read this name as true.
TYPE_CHECKING = False

__version__ = "0.1.0"

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
    "ConfigError",
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
    "ReasoningDelta",
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
    "UpstreamRefused",
    "UsageInfo",
    "UsageUpdate",
    "VirtualModelRecord",
    "__version__",
    "open_backend",
]

# Where each name of `__all__` that is not the core's lives.
_HOMES = {
    "ConfigError": "puter_mcp.settings",
    "FailureKind": "puter_mcp.puter.errors",
    "open_backend": "puter_mcp.python_api",
}


def __getattr__(name: str) -> object:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_HOMES.get(name, "puter_mcp.core")), name)
    globals()[name] = value  # the next lookup finds it without calling this again
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and editors see; at run time `__getattr__` imports these
    from puter_mcp.core import (
        CONTENT_EVENTS,
        AccountsOverview,
        AccountStatus,
        Action,
        Answering,
        AttemptRecord,
        AttemptStarted,
        AutoInfo,
        Backend,
        BackendError,
        BadRequest,
        ChatCall,
        ChatEvent,
        ChatMetadata,
        ChatOutcome,
        ContentPart,
        CooldownInfo,
        Credits,
        Finished,
        ImagePart,
        ModelNotFound,
        ModelRecord,
        ModelsPage,
        ModelsQuery,
        NamedTool,
        NoCandidateLeft,
        NotSignedIn,
        ReasoningDelta,
        ReasoningPart,
        StreamFailed,
        StreamProgress,
        TextDelta,
        TextPart,
        Tool,
        ToolCall,
        ToolCallDelta,
        ToolCallRecord,
        ToolChoice,
        Turn,
        UpstreamRefused,
        UsageInfo,
        UsageUpdate,
        VirtualModelRecord,
    )
    from puter_mcp.puter.errors import FailureKind
    from puter_mcp.python_api import open_backend
    from puter_mcp.settings import ConfigError
