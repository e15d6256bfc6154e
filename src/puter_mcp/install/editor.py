"""Reading, diffing, backing up and atomically replacing a config file.

The rules every client's edit follows: read bytes and decode UTF-8 ourselves (so line endings
and a BOM survive untouched), show a unified diff, copy the old file to
`<file>.bak-<timestamp>` before anything is written, and replace the file in one `os.replace`
so that a crash or a full disk never leaves a half-written config behind. A config that holds
a secret is written by `puter_mcp.files` (owner-only, the home of that rule); any other keeps
the mode the file had.
"""

from __future__ import annotations

import difflib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from puter_mcp.files import PRIVATE_FILE_MODE, write_private_atomic

Clock = Callable[[], datetime]


class UnreadableFileError(ValueError):
    """The file exists but is not text we may edit (not UTF-8, or not a regular file)."""


class ChangedMeanwhileError(RuntimeError):
    """The file changed between reading and writing (e.g. the client saved it)."""


@dataclass(frozen=True)
class PlannedEdit:
    """The whole new text of one file, and what it replaces (None: the file does not exist)."""

    path: Path
    old_text: str | None
    new_text: str

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text


def target_of(path: Path) -> Path:
    """Edit through a symlink (dotfile managers link configs into a repo) instead of replacing
    the link with a regular file."""
    return path.resolve() if path.is_symlink() else path


def read_text(path: Path) -> str | None:
    """The file's text, or None if it does not exist."""
    if not path.exists():
        return None
    if not path.is_file():
        raise UnreadableFileError(f"{path} is not a regular file")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def unified_diff(edit: PlannedEdit) -> str:
    old_lines = (edit.old_text or "").splitlines(keepends=True)
    new_lines = edit.new_text.splitlines(keepends=True)
    before = str(edit.path) if edit.old_text is not None else "/dev/null"
    lines = difflib.unified_diff(old_lines, new_lines, fromfile=before, tofile=str(edit.path))
    # difflib leaves a last line without its newline; show it the way `diff` does.
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def backup_path(path: Path, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    counter = 2
    while candidate.exists():  # two runs in the same second must not overwrite a backup
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{counter}")
        counter += 1
    return candidate


def write_atomically(path: Path, text: str, *, mode: int) -> None:
    """Replace `path` with `text` in one `os.replace`, the new file having `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def copy_private(source: Path, target: Path) -> None:
    """Copy `source` to a new `target` that is owner-only from its first byte (no window in
    which a copy of a secret is readable by others), keeping the times."""
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "wb") as out:
        out.write(source.read_bytes())
    info = source.stat()
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def apply(edit: PlannedEdit, *, now: datetime, private: bool = False) -> Path | None:
    """Write `edit`; return the backup's path (None for a new file).

    `private`: the new text holds a secret (a token), so the file and its backup are made
    readable by their owner only, whatever the old file's mode was.
    """
    if not edit.changed:
        return None
    current = read_text(edit.path)
    if current != edit.old_text:
        raise ChangedMeanwhileError(f"{edit.path} changed while puter-mcp was editing it; run again")
    backup: Path | None = None
    if edit.old_text is not None:
        backup = backup_path(edit.path, now)
        if private:
            copy_private(edit.path, backup)
        else:
            shutil.copy2(edit.path, backup)
    if private:
        edit.path.parent.mkdir(parents=True, exist_ok=True)
        write_private_atomic(edit.path, edit.new_text.encode("utf-8"))
    else:
        mode = 0o644 if edit.old_text is None else stat.S_IMODE(edit.path.stat().st_mode)
        write_atomically(edit.path, edit.new_text, mode=mode)
    return backup
