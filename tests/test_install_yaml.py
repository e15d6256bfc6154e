"""Continue's YAML files: any valid YAML is read (doctor) and edited (install) with comments kept."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from puter_mcp.install import Host, InstallContext, InstallRequest, find_installed_entries, install
from puter_mcp.install.entries import Installation
from puter_mcp.install.yamldoc import load_all, to_plain

NOW = datetime(2026, 1, 2, 3, 4, 5)

# Valid YAML that the old hand-written reader skipped: anchors and aliases, flow-style lists and
# maps, a block scalar, comments everywhere, and a second document.
RICH_CONFIG = """\
# My Continue config (keep this comment)
name: Local Assistant
version: 1.0.0
schema: v1
defaults: &defaults {timeout: 30, type: stdio}  # shared settings
rules:
  - |
    Answer briefly.
    Cite sources.
mcpServers:
  - <<: *defaults
    name: sqlite  # the database
    command: npx
    args: [-y, mcp-sqlite]
  - {name: puter, type: stdio, command: /old/puter-mcp, args: []}
---
# a second document Continue ignores
note: kept
"""


@pytest.fixture
def context(tmp_path: Path) -> InstallContext:
    script_dir = tmp_path / "venv" / "bin"
    script_dir.mkdir(parents=True)
    (script_dir / "puter-mcp").write_text("#!/bin/sh\n")
    (script_dir / "puter-mcp").chmod(0o755)
    host = Host("linux", tmp_path / "home", tmp_path / "project", {})
    return InstallContext(
        host=host,
        which=lambda _name: None,
        installation=Installation("local", str(tmp_path), False, script_dir),
        clock=lambda: NOW,
    )


def config_path(context: InstallContext) -> Path:
    path = context.host.home / ".continue" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def servers(text: str) -> list[dict[str, Any]]:
    return to_plain(load_all(text)[0])["mcpServers"]


def test_doctor_reads_a_config_yaml_the_old_reader_skipped(context: InstallContext) -> None:
    config_path(context).write_text(RICH_CONFIG)
    entries = find_installed_entries(home=context.host.home, platform="linux", env={}, which=lambda _n: None)
    (found,) = [entry for entry in entries if entry.client == "continue"]
    assert found.path == config_path(context)
    assert found.entry == {"name": "puter", "type": "stdio", "command": "/old/puter-mcp", "args": []}
    assert any("/old/puter-mcp" in problem for problem in found.problems)


def test_install_edits_it_keeping_comments_anchors_and_the_other_document(context: InstallContext) -> None:
    path = config_path(context)
    path.write_text(RICH_CONFIG)
    result = install(InstallRequest("continue", config=path), context)
    assert result.action == "updated", result.message
    assert result.message.startswith("Updated the 'puter' server")
    text = path.read_text()
    script = str(context.installation.script_dir / "puter-mcp")  # type: ignore[operator]
    assert servers(text)[1] == {"name": "puter", "type": "stdio", "command": script, "args": []}
    # Everything else is as the user wrote it.
    assert text.startswith("# My Continue config")
    for kept in (
        "# My Continue config (keep this comment)",
        "defaults: &defaults {timeout: 30, type: stdio}  # shared settings",
        "  - |\n    Answer briefly.\n    Cite sources.\n",
        "  - <<: *defaults\n    name: sqlite  # the database\n",
        "    args: [-y, mcp-sqlite]\n",
        "# a second document Continue ignores\nnote: kept\n",
    ):
        assert kept in text
    assert servers(text)[0] == {
        "timeout": 30,
        "type": "stdio",
        "name": "sqlite",
        "command": "npx",
        "args": ["-y", "mcp-sqlite"],
    }
    # A second run finds it up to date.
    assert install(InstallRequest("continue", config=path), context).action == "unchanged"


def test_a_new_server_in_an_existing_file_is_added(context: InstallContext) -> None:
    path = config_path(context)
    path.write_text("name: a\nversion: 1.0.0\nschema: v1\n# servers below\nmcpServers: []\n")
    result = install(InstallRequest("continue", config=path), context)
    assert result.message.startswith("Added the 'puter' server to")
    assert [server["name"] for server in servers(path.read_text())] == ["puter"]
    assert "# servers below" in path.read_text()


def test_invalid_yaml_is_left_untouched_with_file_and_line(context: InstallContext) -> None:
    path = config_path(context)
    broken = "name: a\nversion: 1.0.0\nmcpServers:\n  - name: x\n   command: y\n"
    path.write_text(broken)
    result = install(InstallRequest("continue", config=path), context)
    assert result.action == "refused"
    assert str(path) in result.message
    assert "line 5" in result.message
    assert path.read_text() == broken
    assert list(path.parent.glob("*.bak-*")) == []
    entries = find_installed_entries(home=context.host.home, platform="linux", env={}, which=lambda _n: None)
    assert entries == []  # it does not mention puter: nothing of ours to judge


def test_doctor_reports_an_invalid_file_that_mentions_puter_with_its_line(context: InstallContext) -> None:
    path = config_path(context)
    path.write_text("mcpServers:\n  - name: puter\n    command: [unclosed\n")
    entries = find_installed_entries(home=context.host.home, platform="linux", env={}, which=lambda _n: None)
    (found,) = entries
    assert found.path == path
    assert any("line" in problem for problem in found.problems)
