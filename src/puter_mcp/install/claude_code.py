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


@dataclass(frozen=True)
class ArgvValues:
    """The env and headers to put on `claude mcp add`'s command line, secrets replaced by
    `${NAME}` references where possible; `exposed` names the secrets that had to go in as they are."""

    env: dict[str, str]
    headers: dict[str, str]
    exposed: tuple[str, ...]
    referenced: tuple[str, ...]


def reference(name: str) -> str:
    """Claude Code expands `${NAME}` from its own environment when it starts or connects to a
    server, so the command line (visible to every local user in `ps`) never holds the value."""
    return "${" + name + "}"


def argv_values(
    env: Mapping[str, str],
    token: str | None,
    *,
    token_variable: str,
    is_secret: Callable[[str], bool],
    environment: Mapping[str, str],
) -> ArgvValues:
    """Replace each secret by a reference to the variable that already holds it in `environment`;
    a secret no variable holds has nowhere else to go and is listed in `exposed`."""
    exposed: list[str] = []
    referenced: list[str] = []
    safe_env: dict[str, str] = {}
    for key, value in env.items():
        if value and is_secret(key) and environment.get(key) == value:
            safe_env[key] = reference(key)
            referenced.append(key)
        else:
            safe_env[key] = value
            if value and is_secret(key):
                exposed.append(key)
    headers: dict[str, str] = {}
    if token:
        if environment.get(token_variable) == token:
            headers["Authorization"] = f"Bearer {reference(token_variable)}"
            referenced.append(token_variable)
        else:
            headers["Authorization"] = f"Bearer {token}"
            exposed.append("--auth-token")
    return ArgvValues(safe_env, headers, tuple(exposed), tuple(referenced))


def shell_text(argv: list[str]) -> str:
    return shlex.join(argv)


def run_command(argv: list[str]) -> CommandOutcome:
    """Run `claude ...`; argv[0] is the absolute path found on PATH (Windows needs it for
    `claude.cmd`). No shell is involved, so no quoting can go wrong."""
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    output = "\n".join(part.strip() for part in (completed.stdout, completed.stderr) if part.strip())
    return CommandOutcome(completed.returncode, output)
