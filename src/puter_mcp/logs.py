"""Logging for every puter-mcp process, and the `puter-mcp logs` command.

Where log lines go, and why:

- **stderr**, never stdout: with the stdio transport, stdout *is* the MCP protocol, and one
  stray line there breaks the client's connection.
- **a rotating file** in the platformdirs log directory (1 MB x 3 by default): MCP clients start
  the server themselves and often hide or drop its stderr, so the file is the only place a user
  can look after something went wrong. A directory created here is 0700 and the files are
  0600, set explicitly rather than left to the umask, because log lines name accounts and models. Every puter-mcp process
  of the user appends to the same file (each line carries its process id); a process notices
  when another one rotated the file and follows it to the new one.

Tokens never reach a log line: a `RedactingFilter` on every handler masks anything shaped like
a JWT (Puter's tokens), every ``Bearer <credential>``, and every secret registered at run time
with `register_secret` (an HTTP transport's auth token need not look like a JWT). It masks the
rendered message, exception tracebacks and stack traces alike: an exception message quoting a
request is the classic way a credential slips into a log.

A log file that cannot be opened is reported on stderr and skipped: logging must never stop
the server from starting.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
from collections.abc import Iterable
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from puter_mcp.accounts.secrets import redact
from puter_mcp.files import PRIVATE_FILE_MODE, chmod_private, ensure_private_dir

if TYPE_CHECKING:  # argparse only for the `logs` command's signatures: the core imports this module
    import argparse

    from puter_mcp.settings import Paths

__all__ = [
    "BACKUP_COUNT",
    "LOG_FORMAT",
    "MAX_BYTES",
    "PrivateRotatingFileHandler",
    "RedactingFilter",
    "configure_logging",
    "configure_parser",
    "ensure_log_file",
    "forget_secrets",
    "register_secret",
    "run",
    "tail_log",
]

MAX_BYTES = 1_000_000
"""Size at which the log file is rotated."""

BACKUP_COUNT = 3
"""Rotated files kept beside the current one (``puter-mcp.log.1`` ... ``.3``)."""

LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
"""One line per record; the process id tells apart the servers of several MCP clients."""


# Shorter strings cannot be told apart from ordinary words: masking them would mangle every
# line that happens to contain them, and such a "secret" protects nothing anyway.
_MIN_SECRET_LENGTH = 4

# Loggers that write one INFO line per HTTP request (with its URL): noise at INFO, useful when
# debugging. httpcore2 logs only at DEBUG, and never header values.
_CHATTY_LOGGERS = ("httpx2", "httpcore2")

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# --------------------------------------------------------------------------------------------
# Secrets known at run time


_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(token: str | SecretStr | None) -> None:
    """Mask `token` in every log line from now on (for the life of the process).

    Call it for every credential the process holds: account tokens, the environment's token,
    the HTTP transport's auth token. JWT-shaped tokens and ``Bearer`` values are masked even
    unregistered; registering catches the rest. Empty values and strings shorter than four
    characters are ignored.
    """
    if token is None:
        return
    plain = (token.get_secret_value() if isinstance(token, SecretStr) else token).strip()
    if len(plain) < _MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        _secrets.add(plain)


def forget_secrets() -> None:
    """Drop every registered secret (for tests, which must not leak state into each other)."""
    with _secrets_lock:
        _secrets.clear()


def _registered() -> list[str]:
    with _secrets_lock:
        return list(_secrets)


# --------------------------------------------------------------------------------------------
# The filter


class RedactingFilter(logging.Filter):
    """Masks tokens in a record's message, traceback and stack before any handler writes it.

    It renders the message (``msg % args``) itself and stores the masked result, so that a
    token passed as an argument is caught too, and it formats the traceback into the record's
    ``exc_text`` cache, which every `logging.Formatter` uses instead of formatting the
    exception again. Masking is idempotent, so a record that passes several handlers (each with
    this filter) is not damaged.
    """

    def __init__(self, extra_secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._extra = tuple(extra_secrets)

    def _redact(self, text: str) -> str:
        return redact(text, [*self._extra, *_registered()])

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the template, drop the args it cannot use
            message = str(record.msg)
        record.msg = self._redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


# --------------------------------------------------------------------------------------------
# The file


def _open_private(path: Path, encoding: str | None, errors: str | None) -> io.TextIOWrapper:
    """Open `path` for appending, creating it owner-only (the umask is not trusted)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), PRIVATE_FILE_MODE)
    try:
        stream = os.fdopen(fd, "a", encoding=encoding or "utf-8", errors=errors)
    except BaseException:
        os.close(fd)
        raise
    with contextlib.suppress(OSError):  # a file someone loosened is brought back to 0600
        chmod_private(path, PRIVATE_FILE_MODE)
    return stream


def ensure_log_file(path: Path) -> int:
    """Create the log directory (0700) and file (0600) if needed and check it can be appended to.

    Returns the file's size in bytes. `doctor` uses this to check the log file, and the file
    handler to open it, so both apply the same permissions.

    Raises:
        OSError: the directory cannot be created or the file cannot be opened for appending.
    """
    # A directory that already exists is left alone: it may be a shared one the user chose.
    ensure_private_dir(path.parent)
    with _open_private(path, "utf-8", None) as stream:
        return stream.seek(0, os.SEEK_END)


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A `RotatingFileHandler` whose files are owner-only and which follows other processes'
    rotations.

    The standard handler creates new files with the umask's permissions (often world-readable)
    and keeps writing to a file another process has renamed to ``.1``, which then grows
    without bound. Before each record this one checks that its open file is still the one at
    the log's path, and reopens it if not.
    """

    def _open(self) -> io.TextIOWrapper:
        return _open_private(Path(self.baseFilename), self.encoding, self.errors)

    def _follow_rotation(self) -> None:
        # Windows cannot rename a file another process holds open, so there is nothing to follow.
        if self.stream is None or sys.platform == "win32":
            return
        try:
            mine = os.fstat(self.stream.fileno())
        except (OSError, ValueError):
            return  # our stream is unusable; the next write reports it the usual way
        try:
            current = os.stat(self.baseFilename)
        except FileNotFoundError:
            current = None  # renamed away, not yet recreated
        except OSError:
            return
        if current is None or (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
            stale = self.stream
            self.stream = self._open()  # if this fails, the old stream is kept: better than none
            with contextlib.suppress(OSError):
                stale.close()

    def shouldRollover(self, record: logging.LogRecord) -> int:
        self._follow_rotation()
        return super().shouldRollover(record)


def _file_handler(path: Path, max_bytes: int, backup_count: int) -> PrivateRotatingFileHandler:
    ensure_log_file(path)
    return PrivateRotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8", delay=False
    )


# --------------------------------------------------------------------------------------------
# Configuration


_OURS = "_puter_mcp_handler"


def _level_number(level: str) -> int:
    name = level.strip().upper()
    if name not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    return logging.getLevelNamesMapping()[name]


def _writes_to_stdout(handler: logging.Handler) -> bool:
    stream: Any = getattr(handler, "stream", None)
    return stream is not None and stream in (sys.stdout, sys.__stdout__)


def configure_logging(
    level: str,
    log_file: Path | None,
    *,
    stderr: bool = True,
    max_bytes: int = MAX_BYTES,
    backup_count: int = BACKUP_COUNT,
) -> None:
    """Set up the root logger: stderr and a rotating, owner-only log file, both redacted.

    Safe to call again (the handlers it installed before are replaced; other handlers, such as
    a test framework's, are kept, except any that writes to stdout). A log file that cannot be
    opened is reported on stderr and skipped.

    Args:
        level: DEBUG, INFO, WARNING or ERROR (case-insensitive).
        log_file: the file to append to (`Paths.log_file`); None for stderr only.
        stderr: also log to stderr.
        max_bytes, backup_count: rotation (the defaults are `MAX_BYTES` and `BACKUP_COUNT`).

    Raises:
        ValueError: `level` is not a level name.
    """
    number = _level_number(level)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _OURS, False) or _writes_to_stdout(handler):
            root.removeHandler(handler)
            with contextlib.suppress(Exception):
                handler.close()

    formatter = logging.Formatter(LOG_FORMAT)
    handlers: list[logging.Handler] = []
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    if log_file is not None:
        try:
            handlers.append(_file_handler(log_file, max_bytes, backup_count))
        except OSError as exc:
            sys.stderr.write(
                f"puter-mcp: cannot write the log file {log_file} ({exc.strerror or exc}); "
                "logging to stderr only. `puter-mcp doctor` checks the log directory.\n"
            )
            sys.stderr.flush()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RedactingFilter())
        setattr(handler, _OURS, True)
        root.addHandler(handler)
    root.setLevel(number)
    chatty = logging.DEBUG if number <= logging.DEBUG else max(logging.WARNING, number)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(chatty)


# --------------------------------------------------------------------------------------------
# Reading the log back


_BLOCK = 64 * 1024


def _last_lines(path: Path, wanted: int) -> list[str]:
    """The last `wanted` lines of one file, reading backwards in blocks (logs can be large)."""
    with path.open("rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= wanted:
            step = min(_BLOCK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    if position > 0:
        lines = lines[1:]  # the first one is probably cut
    return lines[-wanted:]


def _rotated(path: Path) -> list[Path]:
    """The current log then its rotated predecessors, newest first, as far as they exist."""
    files = [path]
    for number in range(1, 100):
        older = path.with_name(f"{path.name}.{number}")
        if not older.is_file():
            break
        files.append(older)
    return files


def tail_log(path: Path, lines: int = 50) -> str:
    """The last `lines` lines of the log (continuing into rotated files if the current one is short).

    Lines are masked again on the way out, so a log written before redaction existed (or by
    hand) does not show a token either.

    Raises:
        FileNotFoundError: there is no log file yet.
        OSError: it cannot be read.
    """
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    collected: list[str] = []
    for file in _rotated(path):
        if len(collected) >= lines:
            break
        try:
            older = _last_lines(file, lines - len(collected))
        except FileNotFoundError:
            if file == path:
                raise
            break
        collected = older + collected
    return "\n".join(redact(line, _registered()) for line in collected)


# --------------------------------------------------------------------------------------------
# `puter-mcp logs`


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of `puter-mcp logs` to its sub-parser."""
    parser.add_argument(
        "-n",
        "--lines",
        type=int,
        default=50,
        metavar="N",
        help="How many of the last lines to show (default 50).",
    )
    parser.add_argument("--path", action="store_true", help="Print only the log file's path.")


def run(args: argparse.Namespace, paths: Paths) -> int:
    """`puter-mcp logs`: the log file's path, then its last lines (to stdout).

    Exit code 0 (also when there is no log yet), or 1 when the log exists but cannot be read.
    """
    path = paths.log_file
    if getattr(args, "path", False):
        print(path)
        return 0
    print(f"Log file: {path}")
    try:
        text = tail_log(path, max(0, int(getattr(args, "lines", 50))))
    except FileNotFoundError:
        print("(no log yet: it is written once puter-mcp has run)")
        return 0
    except OSError as exc:
        print(f"puter-mcp: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if text:
        print(text)
    return 0
