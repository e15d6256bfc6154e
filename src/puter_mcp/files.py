"""Owner-only directories and files, written atomically: the one home of these rules.

Every file puter-mcp writes may hold a secret or something a secret can be learned from (tokens,
account names, the models a person uses), so each is created owner-only (0600 in a 0700
directory) whatever the umask, and replaced in one ``os.replace`` so that a reader, or a
process killed half-way, never sees half a file. This module imports nothing of puter-mcp: the
settings, the accounts store, the state store, the logs and the catalogue cache all use it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "PrivateDirError",
    "chmod_private",
    "ensure_private_dir",
    "write_private_atomic",
]

PRIVATE_FILE_MODE = 0o600


class PrivateDirError(OSError):
    """A directory puter-mcp needs cannot be created; the message names it and what to do."""


PRIVATE_DIR_MODE = 0o700


def _file_in_the_way(directory: Path) -> Path | None:
    """The nearest of `directory` and its parents that exists and is not a directory."""
    for candidate in (directory, *directory.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def ensure_private_dir(directory: Path) -> Path:
    """Create `directory` (and missing parents) owner-only (0700) if it does not exist yet.

    Every puter-mcp directory is made here, so that each is private whatever the umask, and
    so that a file standing where a directory should be is reported in one clear sentence
    instead of a traceback. A directory that already exists is left as it is: it may be one
    the user chose and shares.

    Raises:
        PrivateDirError: a file stands in the way, or the directory cannot be created; the
            message says which path and what to do.
    """
    if directory.is_dir():
        return directory
    missing = [d for d in (directory, *directory.parents) if not d.exists()][::-1]
    try:
        for level in missing:  # parents first, each owner-only (mkdir(parents=True) would not be)
            level.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
            if sys.platform != "win32":
                os.chmod(level, PRIVATE_DIR_MODE)  # mkdir's mode is filtered by the umask
        if not directory.is_dir():
            raise NotADirectoryError(directory)
    except (FileExistsError, NotADirectoryError) as exc:
        blocker = _file_in_the_way(directory) or directory
        raise PrivateDirError(
            f"cannot create the directory {directory}: {blocker} is a file, and puter-mcp needs a "
            f"directory there. Move or delete {blocker}, or set PUTER_MCP_HOME to a directory of "
            "your choice to keep every puter-mcp file there"
        ) from exc
    except OSError as exc:
        raise PrivateDirError(
            f"cannot create the directory {directory} ({exc.strerror or exc}). Check the "
            "permissions of its parent, or set PUTER_MCP_HOME to a directory you own"
        ) from exc
    return directory


def chmod_private(path: Path, mode: int) -> None:
    # On Windows chmod only toggles the read-only flag; the profile directory's ACL is what
    # keeps other users out there.
    if sys.platform != "win32":
        os.chmod(path, mode)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not possible (nor needed) on Windows."""
    if sys.platform == "win32":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the data itself is synced
    finally:
        os.close(fd)


def _replace(source: Path, target: Path) -> None:
    """``os.replace``, retried briefly on Windows, where a reader's open handle blocks it."""
    attempts = 20 if sys.platform == "win32" else 1
    for attempt in range(attempts):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)


def write_private_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that any reader sees either the old or the new file."""
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp_path = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            if sys.platform != "win32":
                os.fchmod(handle.fileno(), PRIVATE_FILE_MODE)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp_path.unlink()
        raise
    chmod_private(path, PRIVATE_FILE_MODE)
    _fsync_directory(path.parent)
