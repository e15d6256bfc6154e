"""One declarative record per MCP client: where its config lives and what an entry looks like.

The facts come from docs/clients.md (and each client's documentation). Keeping them
as data, rather than as one install function per client, means the installer, `doctor` and the
tests all read the same record, so a path or key fixed here is fixed everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from puter_mcp.install.host import Host

SERVER_NAME = "puter"
"""The key (or list item name) of our entry in every client's config."""

PACKAGE = "puter-mcp"
"""The package uvx runs and the name of the installed console script."""

Scope = Literal["user", "project"]
FileFormat = Literal["json", "continue-block"]


@dataclass(frozen=True)
class HttpShape:
    """How a client spells a streamable-HTTP server entry (the spellings differ per client)."""

    url_key: str
    type_value: str | None = None
    headers_path: tuple[str, ...] = ("headers",)


@dataclass(frozen=True)
class ClientSpec:
    """Everything the installer needs to know about one client."""

    name: str
    title: str
    file_format: FileFormat
    servers_key: str
    # Whether the client's parser accepts comments and trailing commas. For strict-JSON clients a
    # file with comments is invalid for the client itself, so we refuse to edit it.
    jsonc: bool
    # GUI apps do not inherit the shell's PATH ("spawn uvx ENOENT"): write absolute paths.
    gui: bool
    user_path: Callable[[Host], Path] | None
    project_path: Callable[[Host], Path] | None
    stdio_type: str | None
    http: HttpShape | None
    after: str
    no_http_reason: str = ""
    # Continue's servers are list items that carry their own `name`.
    named_items: bool = False
    # Claude Code is configured through its own CLI (`claude mcp add`) unless --scope project.
    prints_command: bool = False

    @property
    def scopes(self) -> tuple[Scope, ...]:
        found: list[Scope] = []
        if self.user_path is not None or self.prints_command:
            found.append("user")
        if self.project_path is not None:
            found.append("project")
        return tuple(found)

    def config_path(self, host: Host, scope: Scope) -> Path | None:
        """The file to edit for `scope`, or None when that scope is not a file we write."""
        locate = self.user_path if scope == "user" else self.project_path
        return locate(host) if locate is not None else None


def _zed_settings(host: Host) -> Path:
    # Zed uses ~/.config/zed on macOS too (not ~/Library), and %APPDATA%\Zed on Windows.
    if host.platform == "win32":
        return host.appdata() / "Zed" / "settings.json"
    if host.platform == "darwin":
        return host.home / ".config" / "zed" / "settings.json"
    return host.xdg_config() / "zed" / "settings.json"


def _claude_desktop_config(host: Host) -> Path:
    # There is no official Linux build; the community builds read ~/.config/Claude.
    return host.app_config("Claude") / "claude_desktop_config.json"


def _vscode_user_mcp(host: Host) -> Path:
    # Since VS Code 1.102 user-level servers live in mcp.json in the profile folder.
    return host.app_config("Code") / "User" / "mcp.json"


ZED = ClientSpec(
    name="zed",
    title="Zed",
    file_format="json",
    servers_key="context_servers",
    jsonc=True,
    gui=True,
    user_path=_zed_settings,
    project_path=None,
    stdio_type=None,
    http=HttpShape(url_key="url"),
    after="Zed reloads settings.json by itself; check the Agent panel's server list.",
)

CLAUDE_DESKTOP = ClientSpec(
    name="claude-desktop",
    title="Claude Desktop",
    file_format="json",
    servers_key="mcpServers",
    jsonc=False,
    gui=True,
    user_path=_claude_desktop_config,
    project_path=None,
    stdio_type=None,
    http=None,
    no_http_reason=(
        "Claude Desktop only launches stdio servers from claude_desktop_config.json. Install the "
        "stdio form (drop --transport http), or bridge to your HTTP server with "
        "`npx -y mcp-remote URL` as the command."
    ),
    after="Quit Claude Desktop completely and start it again.",
)

CURSOR = ClientSpec(
    name="cursor",
    title="Cursor",
    file_format="json",
    servers_key="mcpServers",
    jsonc=False,
    gui=True,
    user_path=lambda host: host.home / ".cursor" / "mcp.json",
    project_path=lambda host: host.cwd / ".cursor" / "mcp.json",
    stdio_type=None,
    http=HttpShape(url_key="url"),
    after="Open Cursor Settings > MCP and check that 'puter' is enabled.",
)

VSCODE = ClientSpec(
    name="vscode",
    title="VS Code",
    file_format="json",
    servers_key="servers",
    jsonc=True,
    gui=True,
    user_path=_vscode_user_mcp,
    project_path=lambda host: host.cwd / ".vscode" / "mcp.json",
    stdio_type="stdio",
    http=HttpShape(url_key="url", type_value="http"),
    after="Run 'MCP: List Servers' in VS Code and start 'puter' (Copilot Chat, agent mode).",
)

WINDSURF = ClientSpec(
    name="windsurf",
    title="Windsurf",
    file_format="json",
    servers_key="mcpServers",
    jsonc=False,
    gui=True,
    user_path=lambda host: host.home / ".codeium" / "windsurf" / "mcp_config.json",
    project_path=None,
    stdio_type=None,
    http=HttpShape(url_key="serverUrl"),
    after="Press refresh in Windsurf's Cascade MCP panel.",
)

CONTINUE = ClientSpec(
    name="continue",
    title="Continue",
    file_format="continue-block",
    servers_key="mcpServers",
    jsonc=False,
    gui=True,
    user_path=lambda host: host.home / ".continue" / "mcpServers" / "puter.yaml",
    project_path=lambda host: host.cwd / ".continue" / "mcpServers" / "puter.yaml",
    stdio_type="stdio",
    http=HttpShape(url_key="url", type_value="streamable-http", headers_path=("requestOptions", "headers")),
    named_items=True,
    after="Reload Continue; MCP tools are available in agent mode only.",
)

CLAUDE_CODE = ClientSpec(
    name="claude-code",
    title="Claude Code",
    file_format="json",
    servers_key="mcpServers",
    jsonc=False,
    gui=False,
    user_path=None,
    project_path=lambda host: host.cwd / ".mcp.json",
    stdio_type="stdio",
    http=HttpShape(url_key="url", type_value="http"),
    prints_command=True,
    after="Check with `claude mcp list`; project servers ask for approval on first use.",
)

CLIENTS: dict[str, ClientSpec] = {
    spec.name: spec for spec in (ZED, CLAUDE_DESKTOP, CONTINUE, CURSOR, VSCODE, WINDSURF, CLAUDE_CODE)
}


def get_client(name: str) -> ClientSpec:
    try:
        return CLIENTS[name]
    except KeyError:
        known = ", ".join(CLIENTS)
        raise ValueError(f"unknown client {name!r}; choose one of: {known}") from None


@dataclass(frozen=True)
class Location:
    """A place where a client may hold servers: a file and the key path to its servers object."""

    client: ClientSpec
    scope: str
    path: Path
    keys: tuple[str, ...]


def config_locations(spec: ClientSpec, host: Host) -> list[Location]:
    """Every config `doctor` should look at for `spec`, including ones `install` never writes
    (Claude Code keeps user and local servers in ~/.claude.json, managed by its own CLI)."""
    found: list[Location] = []
    for scope in spec.scopes:
        path = spec.config_path(host, scope)
        if path is not None:
            found.append(Location(spec, scope, path, (spec.servers_key,)))
    if spec is CLAUDE_CODE:
        state = host.home / ".claude.json"
        found.append(Location(spec, "user", state, ("mcpServers",)))
        found.append(Location(spec, "local", state, ("projects", str(host.cwd), "mcpServers")))
    return found
