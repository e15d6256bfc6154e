"""The `claude mcp add` command for Claude Code, and running it.

Claude Code keeps user and local servers in ~/.claude.json, a large file that Claude Code
itself rewrites constantly; its own CLI is the supported way to change it, so we build (and
with --run, run) that command instead of editing the file.

Argument order matters: `--env` and `--header` are variadic in Claude Code's parser and
swallow the positional arguments that follow them (anthropics/claude-code#29221, #62332), so
options that take one value come first, then the name (and URL), then the variadic options,
and for stdio a `--` ends them before the server's own command.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from puter_mcp.install.clients import SERVER_NAME
from puter_mcp.install.entries import Launcher

Runner = Callable[[list[str]], "CommandOutcome"]


@dataclass(frozen=True)
class CommandOutcome:
    returncode: int
    output: str


def stdio_command(launcher: Launcher, env: Mapping[str, str], scope: str | None) -> list[str]:
    argv = ["claude", "mcp", "add"]
    if scope:
        argv += ["--scope", scope]
    argv.append(SERVER_NAME)
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    return [*argv, "--", launcher.command, *launcher.args]


def http_command(url: str, headers: Mapping[str, str], scope: str | None) -> list[str]:
    argv = ["claude", "mcp", "add", "--transport", "http"]
    if scope:
        argv += ["--scope", scope]
    argv += [SERVER_NAME, url]
    for key, value in headers.items():
        argv += ["--header", f"{key}: {value}"]
    return argv


def shell_text(argv: list[str]) -> str:
    return shlex.join(argv)


def run_command(argv: list[str]) -> CommandOutcome:
    """Run `claude ...`; argv[0] is the absolute path found on PATH (Windows needs it for
    `claude.cmd`). No shell is involved, so no quoting can go wrong."""
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    output = "\n".join(part.strip() for part in (completed.stdout, completed.stderr) if part.strip())
    return CommandOutcome(completed.returncode, output)
