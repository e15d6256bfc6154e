"""The public Python API: the names `puter_mcp` and `puter_mcp.core` export, and `open_backend`."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

import puter_mcp
import puter_mcp.core

# Pinned, as httpx pins its exported members: adding a name is a decision, removing one breaks
# the programs that use it.
PUBLIC_NAMES = [
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

# What a front end may import from the core (its public face).
CORE_NAMES = [
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


def test_the_package_exports_exactly_the_pinned_names() -> None:
    assert puter_mcp.__all__ == PUBLIC_NAMES


def test_the_core_exports_exactly_the_pinned_names() -> None:
    assert puter_mcp.core.__all__ == CORE_NAMES


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_each_exported_name_resolves_to_the_object_of_its_home(name: str) -> None:
    value = getattr(puter_mcp, name)
    if name in CORE_NAMES:
        assert value is getattr(puter_mcp.core, name)
    assert value is not None


def test_the_exported_names_come_from_their_homes() -> None:
    from puter_mcp.puter.errors import FailureKind
    from puter_mcp.python_api import open_backend
    from puter_mcp.settings import ConfigError

    assert puter_mcp.FailureKind is FailureKind
    assert puter_mcp.open_backend is open_backend
    assert puter_mcp.ConfigError is ConfigError


def test_star_import_gives_every_exported_name() -> None:
    namespace: dict[str, object] = {}
    exec("from puter_mcp import *", namespace)  # noqa: S102 (a star import needs a module scope)
    assert set(PUBLIC_NAMES) - {"__version__"} <= set(namespace)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Engine'"):
        _ = puter_mcp.Engine  # type: ignore[attr-defined]
    assert "open_backend" in dir(puter_mcp)


def test_importing_the_package_imports_nothing_else() -> None:
    # Every `puter-mcp` command imports the package first: its exports must cost nothing until
    # they are used (start-up time is measured by bench/overhead.py).
    code = (
        "import sys, puter_mcp\n"
        "print(sorted(m for m in sys.modules if m.startswith(('puter_mcp', 'pydantic', 'anyio'))))\n"
        "puter_mcp.ChatCall\n"
        "print('puter_mcp.core' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines() == ["['puter_mcp']", "True"]


@pytest.mark.anyio
async def test_open_backend_in_the_sandbox_answers_without_an_account(home: Path) -> None:
    async with puter_mcp.open_backend(sandbox=True, env={"PUTER_MCP_HOME": str(home)}) as backend:
        outcome = await backend.chat(puter_mcp.ChatCall.build(message="hello", model="gpt-5-nano"))
        page = await backend.list_models(puter_mcp.ModelsQuery(query="gpt-5-nano"))
    assert outcome.sandbox
    assert outcome.model.startswith("gpt-5-nano")
    assert "hello" in outcome.text
    assert any(model.id == outcome.model for model in page.models)
    assert page.sandbox  # the listing says it is emulated, as the answer does


@pytest.mark.anyio
async def test_open_backend_reads_the_users_config_file(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('default_model = "gpt-5-nano"\n')
    env = {"PUTER_MCP_HOME": str(home)}
    async with puter_mcp.open_backend(sandbox=True, config_file=config, env=env) as backend:
        outcome = await backend.chat(puter_mcp.ChatCall.build(message="hello"))
    assert outcome.model_requested == "gpt-5-nano"


@pytest.mark.anyio
async def test_open_backend_without_an_account_says_so(home: Path) -> None:
    async with puter_mcp.open_backend(env={"PUTER_MCP_HOME": str(home)}) as backend:
        with pytest.raises(puter_mcp.NotSignedIn) as caught:
            await backend.chat(puter_mcp.ChatCall.build(message="hello"))
    assert caught.value.action == "sign_in"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("default_model = 3\n", "default_model"),
        ('[chains.review]\nmodels = "gpt-5-nano"\n', "[chains.review]"),
    ],
    ids=["a wrong value", "a wrong chain"],
)
async def test_a_mistake_in_the_config_file_is_a_config_error(
    home: Path, tmp_path: Path, text: str, named: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(puter_mcp.ConfigError, match=str(config)) as caught:
        async with puter_mcp.open_backend(sandbox=True, config_file=config, env={}):
            pass
    assert named in str(caught.value)


@pytest.mark.anyio
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_open_backend_leaves_the_programs_signal_handlers_alone(home: Path) -> None:
    before = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGHUP)}
    async with puter_mcp.open_backend(sandbox=True, env={"PUTER_MCP_HOME": str(home)}):
        during = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGHUP)}
    assert during == before
