"""`puter-mcp install CLIENT` on temporary files: every client, every outcome.

Each test builds a fake machine in tmp_path (home, APPDATA, cwd, a fake `uvx` executable) and a
fixed clock, so nothing touches the real home directory or PATH.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import os
import shlex
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from puter_mcp.install import (
    Host,
    InstallContext,
    InstallRequest,
    InstallResult,
    InvalidRequestError,
    find_installed_entries,
    install,
    jsonc,
)
from puter_mcp.install import cli as install_cli
from puter_mcp.install.claude_code import CommandOutcome
from puter_mcp.install.entries import Installation
from puter_mcp.install.host import normalise_platform
from puter_mcp.install.redact import mask, redact
from puter_mcp.install.yamldoc import load_all, to_plain

URL = "http://127.0.0.1:8000/mcp"
TOKEN = "pmcp-0123456789abcdefXYZ"
NOW = datetime(2026, 1, 2, 3, 4, 5)
FROM_INDEX = Installation("index")
JSON_CLIENTS = ["zed", "claude-desktop", "cursor", "vscode", "windsurf"]
SERVERS_KEY = {
    "zed": "context_servers",
    "claude-desktop": "mcpServers",
    "cursor": "mcpServers",
    "vscode": "servers",
    "windsurf": "mcpServers",
    "claude-code": "mcpServers",
}


class Machine:
    """A pretend computer under tmp_path."""

    def __init__(self, root: Path, platform: str = "linux", tools: tuple[str, ...] = ("uvx",)) -> None:
        self.root = root
        self.home = root / "home"
        self.cwd = root / "project"
        self.bin = root / "bin"
        for folder in (self.home, self.cwd, self.bin):
            folder.mkdir(parents=True, exist_ok=True)
        self.tools: dict[str, str] = {}
        for tool in tools:
            self.add_tool(tool)
        self.env = {"APPDATA": str(root / "AppData" / "Roaming")}
        self.platform = platform
        self.commands: list[list[str]] = []
        self.outcome = CommandOutcome(0, "Added stdio MCP server puter")

    def add_tool(self, name: str) -> str:
        path = self.bin / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
        self.tools[name] = str(path)
        return str(path)

    def which(self, name: str) -> str | None:
        return self.tools.get(name)

    def runner(self, argv: list[str]) -> CommandOutcome:
        self.commands.append(argv)
        return self.outcome

    def context(self) -> InstallContext:
        host = Host(normalise_platform(self.platform), self.home, self.cwd, self.env)
        return InstallContext(
            host=host, which=self.which, installation=FROM_INDEX, clock=lambda: NOW, runner=self.runner
        )

    def install(self, client: str, **options: Any) -> InstallResult:
        return install(InstallRequest(client, **options), self.context())

    def cli(self, *argv: str) -> int:
        parser = argparse.ArgumentParser(prog="puter-mcp install")
        install_cli.configure_parser(parser)
        return install_cli.run(parser.parse_args(argv), self.context())

    def backups(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if ".bak-" in p.name)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def load_yaml(text: str) -> Any:
    """The first YAML document of `text` as plain values."""
    return to_plain(load_all(text)[0])


def read_json(path: Path, *, comments: bool = False) -> Any:
    node = jsonc.parse(path.read_text(encoding="utf-8"), jsonc=comments)
    assert node is not None
    return jsonc.to_python(node)


def stdio_expected(client: str, command: str, args: list[str]) -> dict[str, Any]:
    if client in {"vscode", "claude-code"}:
        return {"type": "stdio", "command": command, "args": args}
    return {"command": command, "args": args}


def assert_only_additions(old: str, new: str) -> None:
    """Every old line is still there, except a line that only gained a trailing comma."""
    removed = [
        line[1:] for line in difflib.ndiff(old.splitlines(), new.splitlines()) if line.startswith("- ")
    ]
    added = [line[1:] for line in difflib.ndiff(old.splitlines(), new.splitlines()) if line.startswith("+ ")]
    for line in removed:
        assert line.rstrip() + "," in [a.rstrip() for a in added], f"line lost or changed: {line!r}"


# --- where each client's file is, per OS --------------------------------------------------------

EXPECTED_PATHS = {
    ("zed", "linux"): "home/.config/zed/settings.json",
    ("zed", "darwin"): "home/.config/zed/settings.json",
    ("zed", "win32"): "AppData/Roaming/Zed/settings.json",
    ("claude-desktop", "linux"): "home/.config/Claude/claude_desktop_config.json",
    ("claude-desktop", "darwin"): "home/Library/Application Support/Claude/claude_desktop_config.json",
    ("claude-desktop", "win32"): "AppData/Roaming/Claude/claude_desktop_config.json",
    ("cursor", "linux"): "home/.cursor/mcp.json",
    ("cursor", "darwin"): "home/.cursor/mcp.json",
    ("cursor", "win32"): "home/.cursor/mcp.json",
    ("vscode", "linux"): "home/.config/Code/User/mcp.json",
    ("vscode", "darwin"): "home/Library/Application Support/Code/User/mcp.json",
    ("vscode", "win32"): "AppData/Roaming/Code/User/mcp.json",
    ("windsurf", "linux"): "home/.codeium/windsurf/mcp_config.json",
    ("windsurf", "darwin"): "home/.codeium/windsurf/mcp_config.json",
    ("windsurf", "win32"): "home/.codeium/windsurf/mcp_config.json",
    ("continue", "linux"): "home/.continue/mcpServers/puter.yaml",
    ("continue", "darwin"): "home/.continue/mcpServers/puter.yaml",
    ("continue", "win32"): "home/.continue/mcpServers/puter.yaml",
}


@pytest.mark.parametrize(("client", "platform"), sorted(EXPECTED_PATHS))
def test_new_file_is_created_where_the_client_reads_it(tmp_path: Path, client: str, platform: str) -> None:
    machine = Machine(tmp_path, platform)
    result = machine.install(client)
    expected = tmp_path / EXPECTED_PATHS[(client, platform)]
    assert (result.action, result.path, result.backup) == ("created", expected, None)
    assert expected.is_file()
    assert machine.backups() == []


def test_xdg_config_home_moves_linux_configs(machine: Machine) -> None:
    machine.env["XDG_CONFIG_HOME"] = str(machine.root / "xdg")
    assert machine.install("zed").path == machine.root / "xdg" / "zed" / "settings.json"
    assert machine.install("vscode").path == machine.root / "xdg" / "Code" / "User" / "mcp.json"


# --- new file, entry shape, absolute launcher ---------------------------------------------------


@pytest.mark.parametrize("client", JSON_CLIENTS)
def test_new_json_file_holds_the_stdio_entry_with_absolute_uvx(machine: Machine, client: str) -> None:
    result = machine.install(client)
    assert result.path is not None
    data = read_json(result.path)
    assert data == {
        SERVERS_KEY[client]: {"puter": stdio_expected(client, machine.tools["uvx"], ["puter-mcp"])}
    }
    assert os.path.isabs(data[SERVERS_KEY[client]]["puter"]["command"])
    assert "Created" in result.message


def test_without_uvx_the_installed_script_is_used_with_no_arguments(tmp_path: Path) -> None:
    machine = Machine(tmp_path, tools=("puter-mcp",))
    result = machine.install("cursor")
    assert result.path is not None
    entry = read_json(result.path)["mcpServers"]["puter"]
    assert entry == {"command": machine.tools["puter-mcp"], "args": []}


def test_a_script_beside_the_interpreter_is_found_when_nothing_is_on_path(tmp_path: Path) -> None:
    machine = Machine(tmp_path, tools=())
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "puter-mcp").write_text("#!/bin/sh\n")
    context = machine.context()
    context = InstallContext(
        host=context.host,
        which=machine.which,
        installation=Installation("other", script_dir=venv_bin),
        clock=lambda: NOW,
    )
    result = install(InstallRequest("claude-code", scope="project"), context)
    assert result.path is not None
    # Claude Code would take a bare name, but this script is not on PATH: it must be absolute.
    entry = read_json(result.path)["mcpServers"]["puter"]
    assert entry["command"] == str(venv_bin / "puter-mcp")


def test_no_launcher_at_all_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    machine = Machine(tmp_path, tools=())
    result = machine.install("zed")
    assert result.action == "refused"
    assert "uvx" in result.message
    assert not (machine.home / ".config" / "zed" / "settings.json").exists()


def test_env_flags_land_in_the_entry(machine: Machine) -> None:
    result = machine.install("windsurf", env={"PUTER_MCP_PROFILE": "work"})
    assert result.path is not None
    entry = read_json(result.path)["mcpServers"]["puter"]
    assert entry["env"] == {"PUTER_MCP_PROFILE": "work"}


# --- existing files: other servers kept, layout preserved ---------------------------------------

ZED_BEFORE = """// Zed settings
//
// For information on how to configure Zed, see the Zed
// documentation: https://zed.dev/docs/configuring-zed
{
  "ui_font_size": 16, // big
  /* the theme */
  "theme": {
    "mode": "system",
    "dark": "One Dark",
  },
  "context_servers": {
    "github": {
      "command": "github-mcp",
      "args": [],
    }, // keep me
  },
}
"""

ZED_AFTER = """// Zed settings
//
// For information on how to configure Zed, see the Zed
// documentation: https://zed.dev/docs/configuring-zed
{
  "ui_font_size": 16, // big
  /* the theme */
  "theme": {
    "mode": "system",
    "dark": "One Dark",
  },
  "context_servers": {
    "github": {
      "command": "github-mcp",
      "args": [],
    }, // keep me
    "puter": {
      "command": "UVX",
      "args": ["puter-mcp"]
    },
  },
}
"""


def test_zed_comments_and_trailing_commas_survive_byte_for_byte(machine: Machine) -> None:
    settings_file = machine.home / ".config" / "zed" / "settings.json"
    settings_file.parent.mkdir(parents=True)
    settings_file.write_bytes(ZED_BEFORE.encode())
    result = machine.install("zed")
    assert result.action == "updated"
    assert settings_file.read_bytes() == ZED_AFTER.replace("UVX", machine.tools["uvx"]).encode()
    backup = settings_file.with_name("settings.json.bak-20260102-030405")
    assert result.backup == backup
    assert backup.read_bytes() == ZED_BEFORE.encode()


def test_zed_update_replaces_only_the_entry_span(machine: Machine) -> None:
    settings_file = machine.home / ".config" / "zed" / "settings.json"
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text(ZED_BEFORE)
    machine.install("zed")
    installed = settings_file.read_text()
    assert machine.install("zed", transport="http", url=URL).action == "updated"
    expected = installed.replace(
        f'{{\n      "command": "{machine.tools["uvx"]}",\n      "args": ["puter-mcp"]\n    }}',
        f'{{\n      "url": "{URL}"\n    }}',
    )
    assert expected != installed
    assert settings_file.read_text() == expected


@pytest.mark.parametrize("client", [*JSON_CLIENTS, "claude-code"])
def test_existing_file_keeps_other_servers_and_keys(machine: Machine, client: str) -> None:
    key = SERVERS_KEY[client]
    path = (
        machine.cwd / ".mcp.json" if client == "claude-code" else machine.install(client, dry_run=True).path
    )
    assert path is not None
    before = {
        "$schema": "https://example.invalid/schema.json",
        key: {"other": {"command": "/usr/bin/other", "args": ["--flag"], "env": {"A": "1"}}},
        "zzz": [1, 2.5, True, None],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    old_text = json.dumps(before, indent=4) + "\n"
    path.write_text(old_text)
    options: dict[str, Any] = {"scope": "project"} if client == "claude-code" else {}
    result = machine.install(client, **options)
    assert result.action == "updated"
    after = read_json(path)
    assert after[key]["other"] == before[key]["other"]
    assert after["zzz"] == before["zzz"]
    assert list(after) == list(before)
    assert "puter" in after[key]
    assert_only_additions(old_text, path.read_text())
    # The new member follows the file's four-space indentation.
    assert '\n        "puter": {\n' in path.read_text()


def test_servers_key_missing_is_added_to_existing_file(machine: Machine) -> None:
    path = machine.home / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text('{\n  "theme": "dark"\n}\n')
    machine.install("cursor")
    assert read_json(path) == {
        "theme": "dark",
        "mcpServers": {"puter": {"command": machine.tools["uvx"], "args": ["puter-mcp"]}},
    }


def test_crlf_line_endings_are_kept(machine: Machine) -> None:
    path = machine.home / ".codeium" / "windsurf" / "mcp_config.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{\r\n  "mcpServers": {\r\n    "a": {"command": "x"}\r\n  }\r\n}\r\n')
    machine.install("windsurf")
    data = path.read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert read_json(path)["mcpServers"]["a"] == {"command": "x"}


def test_editing_through_a_symlink_keeps_the_link(machine: Machine) -> None:
    real = machine.root / "dotfiles" / "mcp.json"
    real.parent.mkdir()
    real.write_text('{"mcpServers": {}}\n')
    link = machine.home / ".cursor" / "mcp.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    machine.install("cursor")
    assert link.is_symlink()
    assert "puter" in read_json(real)["mcpServers"]


def test_file_mode_is_kept_on_update(machine: Machine) -> None:
    path = machine.home / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text("{}\n")
    path.chmod(0o640)
    machine.install("cursor")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_new_file_holding_a_token_is_private(machine: Machine) -> None:
    result = machine.install("cursor", transport="http", url=URL, auth_token=TOKEN)
    assert result.path is not None
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600


# --- idempotence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("client", [*JSON_CLIENTS, "continue"])
def test_second_run_changes_nothing(machine: Machine, client: str) -> None:
    first = machine.install(client)
    assert first.path is not None
    before = first.path.read_bytes()
    mtime = first.path.stat().st_mtime_ns
    second = machine.install(client)
    assert second.action == "unchanged"
    assert "already up to date" in second.message
    assert first.path.read_bytes() == before
    assert first.path.stat().st_mtime_ns == mtime
    assert machine.backups() == []


def test_same_entry_with_other_key_order_is_up_to_date(machine: Machine) -> None:
    path = machine.home / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True)
    text = json.dumps({"mcpServers": {"puter": {"args": ["puter-mcp"], "command": machine.tools["uvx"]}}})
    path.write_text(text)
    assert machine.install("cursor").action == "unchanged"
    assert path.read_text() == text


def test_two_updates_in_one_second_keep_both_backups(machine: Machine) -> None:
    machine.install("cursor")
    machine.install("cursor", env={"A": "1"})
    machine.install("cursor", env={"A": "2"})
    names = [p.name for p in machine.backups()]
    assert names == ["mcp.json.bak-20260102-030405", "mcp.json.bak-20260102-030405-2"]


# --- invalid files are left alone ----------------------------------------------------------------

INVALID = {
    "broken JSON": ("cursor", '{"mcpServers": {\n'),
    "Zed's invalid list of servers": ("zed", '{\n  "context_servers": [\n    "puter": {}\n  ]\n}\n'),
    "servers is a list": ("zed", '{"context_servers": []}\n'),
    "top level is a list": ("vscode", "[]\n"),
    "comments in a strict JSON file": ("claude-desktop", '// hi\n{"mcpServers": {}}\n'),
    "trailing comma in a strict JSON file": ("windsurf", '{"mcpServers": {},}\n'),
    "servers is a string": ("windsurf", '{"mcpServers": "none"}\n'),
    "Continue file that is not YAML": (
        "continue",
        "name: x\nversion: 1\nschema: v1\nmcpServers: [\n  - name: b\n",
    ),
    "Continue servers not a list": ("continue", "name: x\nversion: a\nschema: v1\nmcpServers:\n  a: b\n"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_file_is_reported_and_left_untouched(machine: Machine, case: str, capsys: Any) -> None:
    client, text = INVALID[case]
    path = machine.install(client, dry_run=True).path
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    mtime = path.stat().st_mtime_ns
    assert machine.cli(client) == 1
    assert "untouched" in capsys.readouterr().err
    result = machine.install(client)
    assert result.action == "refused"
    assert path.read_text() == text
    assert path.stat().st_mtime_ns == mtime
    assert machine.backups() == []


def test_invalid_json_message_names_line_and_column(machine: Machine) -> None:
    path = machine.home / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text('{\n  "mcpServers": {\n    "a": 1\n    "b": 2\n  }\n}\n')
    result = machine.install("cursor")
    assert "line 4, column 5" in result.message


def test_non_utf8_file_is_left_untouched(machine: Machine) -> None:
    path = machine.home / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"a": "\xff"}')
    result = machine.install("cursor")
    assert result.action == "refused"
    assert "UTF-8" in result.message
    assert path.read_bytes() == b'{"a": "\xff"}'


# --- dry run and secrets -------------------------------------------------------------------------


@pytest.mark.parametrize("client", [*JSON_CLIENTS, "continue"])
def test_dry_run_writes_nothing_and_shows_the_diff(machine: Machine, client: str, capsys: Any) -> None:
    assert machine.cli(client, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "+++ " in out
    assert "Dry run" in out
    assert list(machine.home.iterdir()) == []
    assert not (machine.root / "AppData").exists()
    created = machine.install(client)
    assert created.path is not None
    before = created.path.read_bytes()
    result = machine.install(client, env={"PUTER_MCP_PROFILE": "work"}, dry_run=True)
    assert (result.action, result.dry_run) == ("updated", True)
    assert created.path.read_bytes() == before
    assert machine.backups() == []


def test_dry_run_masks_the_bearer_token(machine: Machine, capsys: Any) -> None:
    assert machine.cli("zed", "--url", URL, "--auth-token", TOKEN, "--dry-run") == 0
    out = capsys.readouterr().out
    assert TOKEN not in out
    assert f"Bearer {TOKEN[:4]}…{TOKEN[-4:]}" in out


def test_dry_run_masks_a_token_already_in_the_file(machine: Machine) -> None:
    machine.install("cursor", transport="http", url=URL, auth_token=TOKEN)
    result = machine.install("cursor", dry_run=True)
    assert TOKEN not in result.diff
    assert f'-        "Authorization": "Bearer {mask(TOKEN)}"\n' in result.diff


def test_secret_env_values_are_masked_in_the_diff(machine: Machine) -> None:
    long_key = "sk-abcdefghijklmnopqrstuvwxyz"
    result = machine.install("cursor", env={"PUTER_MCP_API_KEY": long_key}, dry_run=True)
    assert long_key not in result.diff
    assert "sk-a…wxyz" in result.diff
    short = machine.install("cursor", env={"PUTER_MCP_API_KEY": "sk-abcdefghijklmnop"}, dry_run=True)
    assert "abcdefghijklmnop" not in short.diff and "sk-a" not in short.diff  # short: nothing shown


def test_mask_and_redact() -> None:
    long = "abcdefghijklmnopqrstuvwxyz"
    assert mask(long) == "abcd…wxyz"
    assert mask("abcdefghijklmnop") == "****"  # a short secret shows nothing
    assert mask("short") == "****"
    assert redact(f'"Authorization": "Bearer {long}"') == '"Authorization": "Bearer abcd…wxyz"'
    assert redact(f"PUTER_MCP_TOKEN={long} x") == "PUTER_MCP_TOKEN=abcd…wxyz x"
    assert redact('"PASSWORD": "${input:pw}"') == '"PASSWORD": "${input:pw}"'


# --- HTTP forms ----------------------------------------------------------------------------------

HTTP_ENTRIES: dict[str, dict[str, Any]] = {
    "zed": {"url": URL, "headers": {"Authorization": f"Bearer {TOKEN}"}},
    "cursor": {"url": URL, "headers": {"Authorization": f"Bearer {TOKEN}"}},
    "vscode": {"type": "http", "url": URL, "headers": {"Authorization": f"Bearer {TOKEN}"}},
    "windsurf": {"serverUrl": URL, "headers": {"Authorization": f"Bearer {TOKEN}"}},
    "claude-code": {"type": "http", "url": URL, "headers": {"Authorization": f"Bearer {TOKEN}"}},
}


@pytest.mark.parametrize("client", sorted(HTTP_ENTRIES))
def test_http_entry_shape_per_client(machine: Machine, client: str) -> None:
    options: dict[str, Any] = {"scope": "project"} if client == "claude-code" else {}
    result = machine.install(client, transport="http", url=URL, auth_token=TOKEN, **options)
    assert result.path is not None
    assert read_json(result.path)[SERVERS_KEY[client]]["puter"] == HTTP_ENTRIES[client]
    assert TOKEN not in result.message


def test_http_without_token_has_no_headers(machine: Machine) -> None:
    result = machine.install("windsurf", transport="http", url=URL)
    assert result.path is not None
    assert read_json(result.path)["mcpServers"]["puter"] == {"serverUrl": URL}


def test_token_is_taken_from_the_environment(machine: Machine) -> None:
    machine.env["PUTER_MCP_AUTH_TOKEN"] = TOKEN
    result = machine.install("cursor", transport="http", url=URL)
    assert result.path is not None
    assert read_json(result.path)["mcpServers"]["puter"]["headers"] == {"Authorization": f"Bearer {TOKEN}"}


def test_continue_http_block(machine: Machine) -> None:
    result = machine.install("continue", transport="http", url=URL, auth_token=TOKEN)
    assert result.path is not None
    doc = load_yaml(result.path.read_text())
    assert doc["mcpServers"] == [
        {
            "name": "puter",
            "type": "streamable-http",
            "url": URL,
            "requestOptions": {"headers": {"Authorization": f"Bearer {TOKEN}"}},
        }
    ]


def test_claude_desktop_refuses_http(machine: Machine, capsys: Any) -> None:
    assert machine.cli("claude-desktop", "--transport", "http", "--url", URL) == 1
    err = capsys.readouterr().err
    assert "mcp-remote" in err
    assert "stdio" in err
    assert list(machine.root.rglob("claude_desktop_config.json")) == []


# --- Continue block file -------------------------------------------------------------------------


def test_continue_new_block_file(machine: Machine) -> None:
    result = machine.install("continue")
    assert result.path is not None
    text = result.path.read_text()
    assert text.startswith("# Written by `puter-mcp install continue`")
    assert {key: load_yaml(text)[key] for key in ("name", "version", "schema")} == {
        "name": "puter-mcp",
        "version": "0.0.1",
        "schema": "v1",
    }
    assert load_yaml(text)["mcpServers"] == [
        {"name": "puter", "type": "stdio", "command": machine.tools["uvx"], "args": ["puter-mcp"]}
    ]


def test_continue_keeps_other_servers_and_header(machine: Machine) -> None:
    path = machine.cwd / ".continue" / "mcpServers" / "puter.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(
        "name: My tools\nversion: 1.2.3\nschema: v1\nmcpServers:\n"
        '  - name: sqlite\n    command: npx\n    args: ["-y", "mcp-sqlite"]\n    timeout: 30\n'
        "  - name: puter\n    command: old\n"
    )
    result = machine.install("continue", scope="project")
    assert result.action == "updated"
    doc: Any = load_yaml(path.read_text())
    assert (doc["name"], doc["version"], doc["schema"]) == ("My tools", "1.2.3", "v1")
    assert doc["mcpServers"][0] == {
        "name": "sqlite",
        "command": "npx",
        "args": ["-y", "mcp-sqlite"],
        "timeout": 30,
    }
    # The user's flow-style list and plain scalars are kept as they were written.
    assert 'args: ["-y", "mcp-sqlite"]' in path.read_text()
    assert "    timeout: 30\n" in path.read_text()
    assert doc["mcpServers"][1]["command"] == machine.tools["uvx"]


# --- Claude Code ---------------------------------------------------------------------------------


def test_claude_code_prints_the_command(machine: Machine, capsys: Any) -> None:
    assert machine.cli("claude-code") == 0
    out = capsys.readouterr().out
    assert "claude mcp add puter -- uvx puter-mcp" in out
    assert machine.commands == []
    assert not (machine.cwd / ".mcp.json").exists()


COMMANDS = {
    "user scope": ({"scope": "user"}, "claude mcp add --scope user puter -- uvx puter-mcp"),
    "env after the name": (
        {"env": {"PUTER_MCP_PROFILE": "a b"}},
        "claude mcp add puter --env 'PUTER_MCP_PROFILE=a b' -- uvx puter-mcp",
    ),
    "http": (
        {"transport": "http", "url": URL, "scope": "user"},
        f"claude mcp add --transport http --scope user puter {URL}",
    ),
    "http with token": (
        {"transport": "http", "url": URL, "auth_token": TOKEN},
        f"claude mcp add --transport http puter {URL} --header 'Authorization: Bearer {mask(TOKEN)}'",
    ),
}


@pytest.mark.parametrize("case", sorted(COMMANDS))
def test_claude_code_command_text(machine: Machine, case: str) -> None:
    options, expected = COMMANDS[case]
    result = machine.install("claude-code", **options)
    assert (result.action, result.command) == ("printed", expected)
    assert shlex.split(result.command)[:3] == ["claude", "mcp", "add"]


def test_claude_code_run_uses_the_real_token(machine: Machine) -> None:
    machine.add_tool("claude")
    result = machine.install("claude-code", transport="http", url=URL, auth_token=TOKEN, run=True)
    assert result.action == "ran"
    assert machine.commands == [
        [machine.tools["claude"], "mcp", "add", "--transport", "http", "puter", URL, "--header",
         f"Authorization: Bearer {TOKEN}"],
    ]  # fmt: skip
    assert TOKEN not in result.message


def test_claude_code_run_failure_is_reported_with_a_hint(machine: Machine, capsys: Any) -> None:
    machine.add_tool("claude")
    machine.outcome = CommandOutcome(1, "MCP server puter already exists in local config")
    assert machine.cli("claude-code", "--run") == 1
    err = capsys.readouterr().err
    assert "already exists" in err
    assert "claude mcp remove puter" in err


def test_claude_code_run_without_claude_on_path(machine: Machine) -> None:
    result = machine.install("claude-code", run=True)
    assert result.action == "refused"
    assert "claude mcp add puter -- uvx puter-mcp" in result.message
    assert machine.commands == []


def test_claude_code_project_scope_writes_mcp_json_with_bare_uvx(machine: Machine) -> None:
    result = machine.install("claude-code", scope="project")
    mcp_json = machine.cwd / ".mcp.json"
    assert result.path == mcp_json
    assert read_json(mcp_json) == {
        "mcpServers": {"puter": {"type": "stdio", "command": "uvx", "args": ["puter-mcp"]}}
    }
    assert machine.install("claude-code", scope="project").action == "unchanged"


def test_config_flag_overrides_the_path(machine: Machine) -> None:
    target = machine.root / "elsewhere" / "mcp.json"
    assert machine.cli("cursor", "--config", str(target)) == 0
    assert "puter" in read_json(target)["mcpServers"]
    assert not (machine.home / ".cursor").exists()


def test_project_scope_for_cursor_and_vscode(machine: Machine) -> None:
    assert machine.install("cursor", scope="project").path == machine.cwd / ".cursor" / "mcp.json"
    assert machine.install("vscode", scope="project").path == machine.cwd / ".vscode" / "mcp.json"
    assert machine.install("continue", scope="project").path == (
        machine.cwd / ".continue" / "mcpServers" / "puter.yaml"
    )


# --- bad arguments -------------------------------------------------------------------------------

BAD_ARGUMENTS = {
    "project scope where there is none": ("zed", "--scope", "project"),
    "http without url": ("cursor", "--transport", "http"),
    "url that is not http": ("cursor", "--url", "ftp://127.0.0.1/mcp"),
    "env with http": ("cursor", "--url", URL, "--env", "A=1"),
    "token without http": ("cursor", "--auth-token", TOKEN),
    "env without =": ("cursor", "--env", "NOVALUE"),
    "env name invalid": ("cursor", "--env", "1A=b"),
    "run for a file client": ("zed", "--run"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_exit_2_and_write_nothing(machine: Machine, case: str, capsys: Any) -> None:
    assert machine.cli(*BAD_ARGUMENTS[case]) == 2
    assert "puter-mcp install:" in capsys.readouterr().err
    assert [p for p in machine.root.rglob("*") if p.is_file() and p.parent != machine.bin] == []


def test_unknown_client_is_invalid() -> None:
    with pytest.raises(InvalidRequestError):
        install(InstallRequest("emacs"), InstallContext(host=Host("linux", Path("/nonexistent"), Path("/"))))


def test_url_alone_implies_http(machine: Machine) -> None:
    assert machine.cli("cursor", "--url", URL) == 0
    assert read_json(machine.home / ".cursor" / "mcp.json")["mcpServers"]["puter"] == {"url": URL}


# --- doctor's view: find_installed_entries -------------------------------------------------------


def entries_by_client(machine: Machine) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for entry in find_installed_entries(
        home=machine.home, platform=machine.platform, env=machine.env, cwd=machine.cwd, which=machine.which
    ):
        found.setdefault(entry.client, []).append(entry)
    return found


def test_installed_entries_are_found_and_healthy(machine: Machine) -> None:
    for client in [*JSON_CLIENTS, "continue"]:
        machine.install(client)
    machine.install("claude-code", scope="project")
    found = entries_by_client(machine)
    assert sorted(found) == sorted([*JSON_CLIENTS, "continue", "claude-code"])
    for client, entries in found.items():
        assert [(e.name, e.problems) for e in entries] == [("puter", ())], client


def test_missing_launcher_is_flagged(machine: Machine) -> None:
    machine.install("claude-desktop")
    Path(machine.tools["uvx"]).unlink()
    [entry] = entries_by_client(machine)["claude-desktop"]
    assert entry.problems == (f"the launcher {machine.tools['uvx']} does not exist",)


def test_shown_entry_masks_tokens(machine: Machine) -> None:
    machine.install("cursor", transport="http", url=URL, auth_token=TOKEN)
    [entry] = entries_by_client(machine)["cursor"]
    assert entry.entry["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in entry.shown_entry()
    assert mask(TOKEN) in entry.shown_entry()


def test_bare_command_in_gui_client_is_flagged_as_enoent_risk(machine: Machine) -> None:
    path = machine.home / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {"puter": {"command": "uvx", "args": ["puter-mcp"]}}}')
    [entry] = entries_by_client(machine)["cursor"]
    assert len(entry.problems) == 1
    assert "spawn uvx ENOENT" in entry.problems[0]


MALFORMED = {
    "windsurf url key": ("windsurf", {"url": URL}, "Windsurf expects `serverUrl`, not `url`"),
    "no command": ("cursor", {"args": ["puter-mcp"]}, "neither `command` nor a URL"),
    "old zed shape": ("zed", {"command": {"path": "uvx", "args": []}}, "old {path, args} shape"),
    "args not strings": ("cursor", {"command": "UVX", "args": [1]}, "`args` is not a list of strings"),
    "uvx without package": ("cursor", {"command": "UVX", "args": ["other"]}, "uvx is not told"),
    "desktop url": ("claude-desktop", {"url": URL}, "cannot use a URL"),
    "vscode wrong type": ("vscode", {"type": "http", "command": "UVX", "args": ["puter-mcp"]}, "`type`"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_entries_are_flagged(machine: Machine, case: str) -> None:
    client, entry, problem = MALFORMED[case]
    entry = json.loads(json.dumps(entry).replace("UVX", machine.tools["uvx"]))
    path = machine.install(client, dry_run=True).path
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({SERVERS_KEY[client]: {"puter": entry}}))
    [found] = entries_by_client(machine)[client]
    assert any(problem in p for p in found.problems), found.problems


def test_entries_under_another_name_that_run_puter_mcp_are_found(machine: Machine) -> None:
    path = machine.home / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps({"mcpServers": {"ai": {"command": machine.tools["uvx"], "args": ["puter-mcp"]}}})
    )
    [entry] = entries_by_client(machine)["cursor"]
    assert (entry.name, entry.problems) == ("ai", ())


def test_invalid_file_mentioning_puter_is_reported(machine: Machine) -> None:
    path = machine.home / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"mcpServers": {"puter": ')
    [entry] = entries_by_client(machine)["cursor"]
    assert entry.entry is None
    assert entry.problems[0].startswith("not valid JSON")


def test_claude_code_user_and_local_entries_in_claude_json(machine: Machine) -> None:
    state = {
        "mcpServers": {"puter": {"type": "stdio", "command": "uvx", "args": ["puter-mcp"]}},
        "projects": {
            str(machine.cwd): {"mcpServers": {"puter": {"type": "stdio", "command": "nowhere-mcp"}}}
        },
    }
    (machine.home / ".claude.json").write_text(json.dumps(state))
    found = {(e.scope, e.problems) for e in entries_by_client(machine)["claude-code"]}
    # Claude Code runs from a shell: a bare `uvx` on PATH is fine there.
    assert found == {("user", ()), ("local", ("`nowhere-mcp` is not on PATH",))}


def test_windows_paths_are_searched(tmp_path: Path) -> None:
    machine = Machine(tmp_path, "win32")
    machine.install("zed")
    [entry] = entries_by_client(machine)["zed"]
    assert entry.path == tmp_path / "AppData" / "Roaming" / "Zed" / "settings.json"


# --- the JSONC editor on its own -----------------------------------------------------------------


def test_jsonc_inline_object_stays_on_one_line() -> None:
    assert jsonc.upsert('{"a": 1}', ["s", "p"], {"x": [1]}) == '{"a": 1, "s": {"p": {"x": [1]}}}'
    assert jsonc.upsert('{"s": {}}', ["s", "p"], 1) == '{"s": {"p": 1}}'
    assert jsonc.upsert('{"s": {"q": 2,}}', ["s", "p"], 1) == '{"s": {"q": 2, "p": 1,}}'


def test_jsonc_empty_and_comment_only_documents() -> None:
    assert json.loads(jsonc.upsert("", ["s", "p"], 1)) == {"s": {"p": 1}}
    text = jsonc.upsert("// just a comment\n", ["s", "p"], 1)
    assert text.startswith("// just a comment\n{")
    assert jsonc.upsert("\ufeff{}", ["s"], 1).startswith("\ufeff{")


def test_jsonc_empty_object_with_comment_keeps_the_comment() -> None:
    text = '{\n  "s": {\n    // add servers here\n  }\n}'
    assert jsonc.upsert(text, ["s", "p"], 1) == '{\n  "s": {\n    "p": 1\n    // add servers here\n  }\n}'


def test_jsonc_member_goes_after_a_same_line_comment() -> None:
    text = '{\n  "a": 1 // one\n}'
    assert jsonc.upsert(text, ["b"], 2) == '{\n  "a": 1, // one\n  "b": 2\n}'


def test_jsonc_tab_indentation_is_followed() -> None:
    assert jsonc.upsert('{\n\t"a": 1\n}\n', ["s", "p"], 1) == '{\n\t"a": 1,\n\t"s": {\n\t\t"p": 1\n\t}\n}\n'


def test_jsonc_duplicate_keys_update_the_last_one() -> None:
    text = '{"s": {"p": 1, "p": 2}}'
    assert jsonc.upsert(text, ["s", "p"], 3) == '{"s": {"p": 1, "p": 3}}'


@pytest.mark.parametrize(
    ("text", "comments_allowed", "error"),
    [
        ('{"a": 1,}', False, "trailing commas"),
        ("/* c */ {}", False, "comments"),
        ('{"a": 1} x', True, "unexpected text"),
        ('{"a" 1}', True, "expected ':'"),
        ("{'a': 1}", True, "quoted key"),
        ('{"a": "\n"}', True, "Invalid control character"),
        ("{/* open", True, "unterminated"),
        ('{"a": [1,,]}', True, "expected a value"),
    ],
)
def test_jsonc_errors(text: str, comments_allowed: bool, error: str) -> None:
    with pytest.raises(jsonc.JsoncError, match=error):
        jsonc.parse(text, jsonc=comments_allowed)


def test_jsonc_accepts_what_strict_mode_rejects() -> None:
    node = jsonc.parse('/* c */ {"a": [1, 2,], // x\n "b": {},}', jsonc=True)
    assert node is not None
    assert jsonc.to_python(node) == {"a": [1, 2], "b": {}}


json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    doc=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
    servers=st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    entry=json_values,
    indent=st.sampled_from([None, 2, 4, "\t"]),
)
def test_jsonc_upsert_sets_exactly_one_member(
    doc: dict[str, Any], servers: dict[str, Any], entry: Any, indent: int | str | None
) -> None:
    doc = {**doc, "mcpServers": servers}
    text = json.dumps(doc, indent=indent, ensure_ascii=False)
    edited = jsonc.upsert(text, ["mcpServers", "puter"], entry, jsonc=False)
    expected = {**doc, "mcpServers": {**servers, "puter": entry}}
    assert jsonc.same_json(json.loads(edited), expected)
    assert jsonc.upsert(edited, ["mcpServers", "puter"], entry, jsonc=False) == edited


def test_the_bearer_token_comes_from_a_file_or_stdin_without_a_warning(
    machine: Machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    token_file = tmp_path / "bearer"
    token_file.write_text(f"  {TOKEN}\n")
    token_file.chmod(0o600)
    assert machine.cli("zed", "--url", URL, "--auth-token-file", str(token_file), "--dry-run") == 0
    out, err = capsys.readouterr()
    assert f"Bearer {TOKEN[:4]}…{TOKEN[-4:]}" in out and "warning" not in err
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    assert machine.cli("zed", "--url", URL, "--auth-token", "-", "--dry-run") == 0
    out, err = capsys.readouterr()
    assert f"Bearer {TOKEN[:4]}…{TOKEN[-4:]}" in out and "warning" not in err


def test_a_bearer_token_in_argv_earns_a_warning_and_a_missing_file_a_clear_error(
    machine: Machine, tmp_path: Path, capsys: Any
) -> None:
    assert machine.cli("zed", "--url", URL, "--auth-token", TOKEN, "--dry-run") == 0
    err = capsys.readouterr().err
    assert "warning" in err and "--auth-token-file" in err and TOKEN not in err
    missing = tmp_path / "nowhere"
    assert machine.cli("zed", "--url", URL, "--auth-token-file", str(missing), "--dry-run") == 2
    err = capsys.readouterr().err
    assert str(missing) in err
