"""Reading a secret given to a command: from a file, from stdin, or (discouraged) from argv.

A secret typed on the command line can be read by every user of the machine (`ps`) and stays in
the shell's history, so the command line offers a file (`--token-file PATH`), stdin (`-`) and an
environment variable first, and a secret passed as a plain argument earns a warning.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

__all__ = ["SecretInputError", "read_secret"]


class SecretInputError(ValueError):
    """The secret cannot be read; the message says from where and what to do."""


def read_secret(
    *,
    value: str | None,
    file: str | None,
    what: str,
    flag: str,
    safer: str,
    warn: Callable[[str], None],
    stdin: TextIO | None = None,
) -> str | None:
    """The secret from `--FLAG-file PATH`, `--FLAG -` (stdin) or `--FLAG VALUE`, or None.

    Args:
        value: the value of `flag` (``-`` reads one line of stdin).
        file: the value of `flag`-file: a file holding the secret (surrounding blanks ignored).
        what: what the secret is, for messages ("the Puter token").
        flag: the option's name, for messages ("--token").
        safer: the safer ways to pass it, for the warning.
        warn: where warnings go (stderr).

    Raises:
        SecretInputError: both forms given, the file unreadable, or the secret empty.
    """
    if value is not None and file is not None:
        raise SecretInputError(f"give either {flag} or {flag}-file, not both")
    if file is not None:
        secret = _read_file(Path(file).expanduser(), what, flag, warn)
        source = f"the file {file}"
    elif value == "-":
        secret = (stdin or sys.stdin).readline().strip()
        source = "stdin"
    elif value is not None:
        warn(
            f"puter-mcp: warning: {what} given on the command line can be seen by other users of "
            f"this machine (ps) and stays in your shell history; use {safer} instead."
        )
        secret = value.strip()
        source = f"{flag}"
    else:
        return None
    if not secret:
        raise SecretInputError(f"{what} read from {source} is empty: put it there, or use {safer}")
    return secret


def _read_file(path: Path, what: str, flag: str, warn: Callable[[str], None]) -> str:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is no part of a secret
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SecretInputError(
            f"cannot read {what} from {path} ({reason}): check the path given to {flag}-file"
        ) from exc
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(f"puter-mcp: warning: {path} holds {what} but others can read it; run `chmod 600 {path}`.")
    return text.strip()
