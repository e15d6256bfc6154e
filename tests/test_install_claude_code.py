"""`install claude-code --run` keeps tokens off the command line; the Claude Desktop HTTP hint
bridges with mcp-remote and carries the token in an env variable."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from puter_mcp.install import Host, InstallContext, InstallRequest, install
from puter_mcp.install import cli as install_cli
from puter_mcp.install.claude_code import CommandOutcome
from puter_mcp.install.entries import Installation

URL = "http://127.0.0.1:8000/mcp"
TOKEN = "pmcp-0123456789abcdefXYZ"


class Claude:
    """A fake `claude` that records the argv it was run with."""

    def __init__(self) -> None:
        self.argv: list[list[str]] = []

    def __call__(self, argv: list[str]) -> CommandOutcome:
        self.argv.append(argv)
        return CommandOutcome(0, "Added MCP server puter")


def context(tmp_path: Path, claude: Claude, env: dict[str, str]) -> InstallContext:
    tools = {"uvx": "/opt/uv/uvx", "claude": "/opt/claude/claude"}
    return InstallContext(
        host=Host("linux", tmp_path, tmp_path, env),
        which=tools.get,
        installation=Installation("index"),
        runner=claude,
    )


def test_an_exported_token_is_passed_by_reference_not_by_value(tmp_path: Path) -> None:
    claude = Claude()
    env = {"PUTER_MCP_AUTH_TOKEN": TOKEN}
    request = InstallRequest("claude-code", transport="http", url=URL, run=True)
    result = install(request, context(tmp_path, claude, env))
    assert result.action == "ran", result.message
    [argv] = claude.argv
    assert TOKEN not in " ".join(argv)
    assert "Authorization: Bearer ${PUTER_MCP_AUTH_TOKEN}" in argv
    assert "Warning" not in result.message
    assert "PUTER_MCP_AUTH_TOKEN exported" in result.message


def test_an_account_token_in_env_is_passed_by_reference(tmp_path: Path) -> None:
    claude = Claude()
    request = InstallRequest("claude-code", env={"PUTER_AUTH_TOKEN": TOKEN}, run=True)
    install(request, context(tmp_path, claude, {"PUTER_AUTH_TOKEN": TOKEN}))
    [argv] = claude.argv
    assert TOKEN not in " ".join(argv)
    assert "PUTER_AUTH_TOKEN=${PUTER_AUTH_TOKEN}" in argv


def test_a_token_only_given_on_the_command_line_goes_into_argv_with_a_warning(tmp_path: Path) -> None:
    claude = Claude()
    request = InstallRequest("claude-code", transport="http", url=URL, auth_token=TOKEN, run=True)
    result = install(request, context(tmp_path, claude, {}))
    [argv] = claude.argv
    assert f"Authorization: Bearer {TOKEN}" in argv
    assert "Warning" in result.message
    assert "--scope project" in result.message
    assert TOKEN not in result.message


def test_claude_desktop_http_hint_bridges_with_the_header_in_an_env_variable(tmp_path: Path) -> None:
    request = InstallRequest("claude-desktop", transport="http", url=URL, auth_token=TOKEN)
    result = install(request, context(tmp_path, Claude(), {}))
    assert result.action == "refused"
    assert TOKEN not in result.message
    snippet = json.loads(result.message[result.message.index("{") :])
    entry = snippet["puter"]
    assert entry["args"] == ["-y", "mcp-remote", URL, "--header", "Authorization:${PUTER_MCP_AUTH}"]
    assert entry["env"]["PUTER_MCP_AUTH"].startswith("Bearer pmcp")
    assert "…" in entry["env"]["PUTER_MCP_AUTH"]


def test_help_gives_claude_codes_own_default_scope() -> None:
    parser = argparse.ArgumentParser(prog="puter-mcp install")
    install_cli.configure_parser(parser)
    text = " ".join(parser.format_help().split())
    assert "the default, except for claude-code" in text
    assert "local: this project, only you" in text
