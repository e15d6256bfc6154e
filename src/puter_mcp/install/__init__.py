"""`puter-mcp install CLIENT`: put the `puter` server into an MCP client's config.

Public surface: `install` (one client, one request), `find_installed_entries` (for `doctor`),
and `cli.configure_parser` / `cli.run` for the `install` sub-command.
"""

from __future__ import annotations

from puter_mcp.install.clients import CLIENTS, PACKAGE, SERVER_NAME, ClientSpec, get_client
from puter_mcp.install.host import Host
from puter_mcp.install.installed import InstalledEntry, entry_problems, find_installed_entries
from puter_mcp.install.installer import (
    AUTH_TOKEN_ENV,
    InstallContext,
    InstallRequest,
    InstallResult,
    InvalidRequestError,
    install,
)

__all__ = [
    "AUTH_TOKEN_ENV",
    "CLIENTS",
    "PACKAGE",
    "SERVER_NAME",
    "ClientSpec",
    "Host",
    "InstallContext",
    "InstallRequest",
    "InstallResult",
    "InstalledEntry",
    "InvalidRequestError",
    "entry_problems",
    "find_installed_entries",
    "get_client",
    "install",
]
