"""What `install` says it did: Created a file, Added an entry, Updated one, or left it unchanged."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from puter_mcp.install import Host, InstallContext, InstallRequest, install
from puter_mcp.install.entries import Installation

NOW = datetime(2026, 1, 2, 3, 4, 5)


def context(tmp_path: Path) -> InstallContext:
    script_dir = tmp_path / "venv" / "bin"
    script_dir.mkdir(parents=True)
    (script_dir / "puter-mcp").write_text("#!/bin/sh\n")
    return InstallContext(
        host=Host("linux", tmp_path / "home", tmp_path, {}),
        which=lambda _name: None,
        installation=Installation("local", str(tmp_path), False, script_dir),
        clock=lambda: NOW,
    )


def test_created_added_updated_unchanged(tmp_path: Path) -> None:
    ready = context(tmp_path)
    path = tmp_path / "home" / ".cursor" / "mcp.json"

    created = install(InstallRequest("cursor"), ready)
    assert (created.action, created.message.split(" ", 1)[0]) == ("created", "Created")

    path.write_text(json.dumps({"mcpServers": {"other": {"command": "x"}}}))
    added = install(InstallRequest("cursor"), ready)
    assert added.action == "updated"
    assert added.message.startswith(f"Added the 'puter' server to {path}")

    data = json.loads(path.read_text())
    data["mcpServers"]["puter"]["args"] = ["--old"]
    path.write_text(json.dumps(data))
    updated = install(InstallRequest("cursor"), ready)
    assert updated.message.startswith(f"Updated the 'puter' server in {path}")

    unchanged = install(InstallRequest("cursor"), ready)
    assert unchanged.action == "unchanged"
    assert unchanged.message.startswith(f"The 'puter' server in {path} is unchanged")
