"""Every ready-made file in client-configs/ parses, and holds exactly what `install` would write
for a checkout run with uv (with a bare `uvx` and a placeholder path, since a shared file cannot
know where either lives on the reader's machine); the files that can carry comments also name the
line to use once puter-mcp is published."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from puter_mcp.install import CLIENTS, entry_problems, jsonc, yamldoc
from puter_mcp.install.claude_code import stdio_command
from puter_mcp.install.entries import Launcher, stdio_entry

CONFIGS = Path(__file__).resolve().parent.parent / "client-configs"
PLACEHOLDER = "/ABSOLUTE/PATH/TO/puter-mcp"
UVX = Launcher("uvx", ("--from", PLACEHOLDER, "puter-mcp"), "uvx-from")
PUBLISHED_LINES = {
    "zed.json": '"args": ["puter-mcp"]',
    "vscode.json": '"args": ["puter-mcp"]',
    "continue.yaml": "args: [puter-mcp]",
    "claude-code.sh": "claude mcp add puter -- uvx puter-mcp",
    "README.md": '"args": ["puter-mcp"]',
}

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
    doc = yamldoc.to_plain(yamldoc.load_all((CONFIGS / "continue.yaml").read_text(encoding="utf-8"))[0])
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


@pytest.mark.parametrize("name", sorted(PUBLISHED_LINES))
def test_files_with_comments_say_which_line_to_use_before_and_after_publishing(name: str) -> None:
    text = (CONFIGS / name).read_text(encoding="utf-8")
    assert "BEFORE puter-mcp is on PyPI" in text or "Before puter-mcp is on PyPI" in text
    assert PLACEHOLDER in text
    published = [line for line in text.splitlines() if PUBLISHED_LINES[name] in line]
    assert published and all("AFTER" in line or "After" in line for line in published)
