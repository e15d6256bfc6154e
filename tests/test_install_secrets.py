"""A config that `install` puts a token into is readable by its owner only, and so is its backup."""

from __future__ import annotations

import stat
from datetime import datetime
from pathlib import Path

import pytest

from puter_mcp.install import Host, InstallContext, InstallRequest, install
from puter_mcp.install.entries import Installation

TOKEN = "pmcp-0123456789abcdefXYZ"
NOW = datetime(2026, 1, 2, 3, 4, 5)


def context(tmp_path: Path) -> InstallContext:
    uvx = tmp_path / "bin" / "uvx"
    uvx.parent.mkdir(parents=True)
    uvx.write_text("#!/bin/sh\n")
    uvx.chmod(0o755)
    host = Host("linux", tmp_path / "home", tmp_path, {})
    return InstallContext(
        host=host,
        which=lambda name: str(uvx) if name == "uvx" else None,
        installation=Installation("index"),
        clock=lambda: NOW,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(
    "request_",
    [
        InstallRequest("cursor", transport="http", url="http://127.0.0.1:8000/mcp", auth_token=TOKEN),
        InstallRequest("cursor", env={"PUTER_AUTH_TOKEN": TOKEN}),
    ],
    ids=["bearer token", "account token in env"],
)
def test_a_world_readable_config_that_gets_a_token_becomes_owner_only_with_its_backup(
    tmp_path: Path, request_: InstallRequest
) -> None:
    path = tmp_path / "home" / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {"other": {"command": "x"}}}\n')
    path.chmod(0o644)
    result = install(request_, context(tmp_path))
    assert result.action == "updated", result.message
    assert result.backup is not None
    assert TOKEN in path.read_text()
    assert mode(path) == 0o600
    assert mode(result.backup) == 0o600
    assert "readable by you only (mode 0600)" in result.message
    assert TOKEN not in result.message


def test_a_config_without_a_secret_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "home" / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text("{}\n")
    path.chmod(0o644)
    result = install(InstallRequest("cursor"), context(tmp_path))
    assert result.backup is not None
    assert mode(path) == 0o644
    assert mode(result.backup) == 0o644
    assert "0600" not in result.message
