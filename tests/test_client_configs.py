"""Every ready-made file in client-configs/ parses, and holds exactly what `install` would write
(with a bare `uvx`, since a shared file cannot know where uvx lives on the reader's machine)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from puter_mcp.install import CLIENTS, entry_problems, jsonc, yamlblock
from puter_mcp.install.claude_code import stdio_command
from puter_mcp.install.entries import Launcher, stdio_entry

CONFIGS = Path(__file__).resolve().parent.parent / "client-configs"
UVX = Launcher("uvx", ("puter-mcp",), "uvx")

JSON_FILES = {
    "zed.json": "zed",
    "claude-desktop.json": "claude-desktop",
    "cursor.json": "cursor",
    "vscode.json": "vscode",
    "windsurf.json": "windsurf",
    "claude-code.mcp.json": "claude-code",
}


def test_every_client_has_a_ready_file() -> None:
    covered = {*JSON_FILES.values(), "continue", "claude-code"}
    assert covered == set(CLIENTS)
    expected = {*JSON_FILES, "continue.yaml", "claude-code.sh", "README.md"}
    assert {p.name for p in CONFIGS.iterdir()} == expected


@pytest.mark.parametrize("name", sorted(JSON_FILES))
def test_json_file_parses_and_holds_the_install_entry(name: str) -> None:
    spec = CLIENTS[JSON_FILES[name]]
    # Strict-JSON clients get strict JSON; only JSONC clients may see comments.
    node = jsonc.parse((CONFIGS / name).read_text(encoding="utf-8"), jsonc=spec.jsonc)
    assert node is not None
    data: dict[str, Any] = jsonc.to_python(node)
    assert list(data) == [spec.servers_key]
    entry = data[spec.servers_key]["puter"]
    assert entry == stdio_entry(spec, UVX, {})
    assert entry_problems(spec, entry, check_launcher=False) == []


def test_zed_file_carries_comments_that_zed_accepts() -> None:
    text = (CONFIGS / "zed.json").read_text(encoding="utf-8")
    assert text.startswith("//")
    with pytest.raises(jsonc.JsoncError):
        jsonc.parse(text, jsonc=False)


def test_continue_block_file() -> None:
    spec = CLIENTS["continue"]
    doc = yamlblock.load((CONFIGS / "continue.yaml").read_text(encoding="utf-8"))
    assert {"name", "version", "schema"} <= set(doc)
    assert doc["schema"] == "v1"
    servers = doc["mcpServers"]
    assert isinstance(servers, list)
    [entry] = servers
    assert entry == stdio_entry(spec, UVX, {})
    assert entry_problems(spec, entry, check_launcher=False) == []


def test_claude_code_command_file() -> None:
    lines = [
        line
        for line in (CONFIGS / "claude-code.sh").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(lines) == 1
    assert shlex.split(lines[0]) == stdio_command(UVX, {}, None)
