"""The `puter-mcp install CLIENT` sub-command: argument parsing and printing, nothing else."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from puter_mcp.install.clients import CLIENTS
from puter_mcp.install.installer import (
    AUTH_TOKEN_ENV,
    InstallContext,
    InstallRequest,
    InstallResult,
    InvalidRequestError,
    install,
)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_ARGUMENTS = 2


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Add puter-mcp to an MCP client's config (or update it), keeping the rest of the file as it "
        "was. The old file is kept as <file>.bak-<timestamp>; running it twice changes nothing."
    )
    parser.add_argument("client", choices=list(CLIENTS), help="the MCP client to configure")
    parser.add_argument(
        "--config", type=Path, metavar="PATH", help="edit this file instead of the client's usual one"
    )
    parser.add_argument(
        "--scope",
        choices=("user", "project"),
        help="user: for all your projects (the default, except for claude-code); project: the current "
        "directory (cursor, vscode, continue, claude-code). claude-code without --scope uses Claude "
        "Code's own default, local: this project, only you",
    )
    parser.add_argument(
        "--transport",
        choices=("stdio", "http"),
        help="stdio: the client starts puter-mcp (default); http: it connects to a running server at --url",
    )
    parser.add_argument("--url", help="the server's streamable-HTTP URL, e.g. http://127.0.0.1:8000/mcp")
    parser.add_argument(
        "--auth-token-file",
        metavar="PATH",
        help=f"a file holding the bearer token for --transport http (default: ${AUTH_TOKEN_ENV} if set)",
    )
    parser.add_argument(
        "--auth-token",
        metavar="TOKEN",
        help="'-' reads the bearer token for --transport http from stdin. A token written here is "
        f"visible to other users (ps): prefer --auth-token-file or ${AUTH_TOKEN_ENV}.",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable for the server process (repeatable; stdio only)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the change as a diff; write nothing")
    parser.add_argument(
        "--run",
        action="store_true",
        help="claude-code: run `claude mcp add` instead of printing it (secrets already exported are "
        "passed as ${NAME} references, never as values)",
    )


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidRequestError(f"--env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def _warn(line: str) -> None:
    sys.stderr.write(line + "\n")


def _auth_token(args: argparse.Namespace) -> str | None:
    """The bearer token of `--auth-token-file`, `--auth-token -` (stdin) or `--auth-token`."""
    from puter_mcp.secret_input import SecretInputError, read_secret

    try:
        return read_secret(
            value=getattr(args, "auth_token", None),
            file=getattr(args, "auth_token_file", None),
            what="the bearer token",
            flag="--auth-token",
            safer=f"--auth-token-file PATH, --auth-token - or ${AUTH_TOKEN_ENV}",
            warn=_warn,
        )
    except SecretInputError as exc:
        raise InvalidRequestError(str(exc)) from exc


def request_from_args(args: argparse.Namespace) -> InstallRequest:
    """The request the command line asks for.

    Raises:
        InvalidRequestError: a malformed ``--env``, or a token file that cannot be read.
    """
    url = getattr(args, "url", None)
    transport = getattr(args, "transport", None) or ("http" if url else "stdio")
    return InstallRequest(
        client=args.client,
        transport=transport,
        url=url,
        auth_token=_auth_token(args),
        env=_parse_env(getattr(args, "env", None) or []),
        scope=getattr(args, "scope", None),
        config=getattr(args, "config", None),
        dry_run=bool(getattr(args, "dry_run", False)),
        run=bool(getattr(args, "run", False)),
    )


def print_result(result: InstallResult, out: TextIO) -> None:
    if result.dry_run and result.diff:
        out.write(result.diff)
        if not result.diff.endswith("\n"):
            out.write("\n")
    out.write(result.message + "\n")


def run(args: argparse.Namespace, context: InstallContext | None = None) -> int:
    """Install for `args.client`; 0 done (or nothing to do), 1 refused, 2 bad arguments."""
    try:
        result = install(request_from_args(args), context)
    except InvalidRequestError as exc:
        sys.stderr.write(f"puter-mcp install: {exc}\n")
        return EXIT_BAD_ARGUMENTS
    print_result(result, sys.stdout if result.ok else sys.stderr)
    return EXIT_OK if result.ok else EXIT_REFUSED
