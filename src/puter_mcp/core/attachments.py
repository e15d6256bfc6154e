"""Files and images a caller names by path, made into a call's content (every front end's).

A text file becomes context in the last user turn, before its text, marked with its path:

```
<file path="/home/me/project/notes.md">
...the file's text...
</file>
```

An image (an absolute path or an https URL) becomes an image part of that turn; a local file
is sent inline as a ``data:`` URL with its media type, read from the file's first bytes (its
name may lie). Each refusal is a `BadRequest` naming the path and what is wrong with it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

from puter_mcp.core.errors import BadRequest

__all__ = [
    "MAX_FILES_BYTES",
    "MAX_FILE_BYTES",
    "MAX_IMAGE_BYTES",
    "file_context",
    "image_url",
    "read_text_file",
]

MAX_FILE_BYTES = 256 * 1024
"""The largest text file taken as context: about 64k tokens, a large share of most windows."""
MAX_FILES_BYTES = 1024 * 1024
"""All the files of one call together."""
MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""The largest image: Anthropic refuses images above 5 MB, the strictest of Puter's vendors."""

# The signatures of the image formats every vision model of Puter's vendors reads.
_IMAGE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def _local_path(given: str, argument: str) -> Path:
    path = Path(given).expanduser()
    if not path.is_absolute():
        raise BadRequest(
            f"{argument}: {given!r} is a relative path; give the absolute path (the server's working "
            "directory is not yours)",
            argument=argument,
        )
    if not path.exists():
        raise BadRequest(f"{argument}: {given} does not exist", argument=argument)
    if not path.is_file():
        raise BadRequest(f"{argument}: {given} is not a file", argument=argument)
    return path


def _read(path: Path, limit: int, argument: str, what: str) -> bytes:
    """The file's bytes, refusing one larger than `limit` without reading it all."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise BadRequest(
            f"{argument}: {path} cannot be read ({exc.strerror or exc})", argument=argument
        ) from exc
    if len(data) > limit:
        raise BadRequest(
            f"{argument}: {path} is larger than {limit // 1024} KiB, the limit for {what}; "
            "give a smaller file or the part that matters",
            argument=argument,
        )
    return data


def read_text_file(given: str) -> str:
    """The text of an absolute path's UTF-8 text file.

    Raises:
        BadRequest: the path is relative, missing, not a file, unreadable, larger than
            `MAX_FILE_BYTES`, or binary (a NUL byte, or not UTF-8).
    """
    path = _local_path(given, "files")
    data = _read(path, MAX_FILE_BYTES, "files", "a text file")
    if b"\x00" in data:
        raise BadRequest(
            f"files: {path} is a binary file, not text (send images with `images`)", argument="files"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"files: {path} is not UTF-8 text (undecodable byte at offset {exc.start})", argument="files"
        ) from exc


def file_context(paths: Sequence[str]) -> str:
    """The files' texts, each marked with its path, for the last user turn.

    Raises:
        BadRequest: as `read_text_file`, or the files together exceed `MAX_FILES_BYTES`.
    """
    blocks: list[str] = []
    total = 0
    for given in paths:
        text = read_text_file(given)
        total += len(text.encode("utf-8"))
        if total > MAX_FILES_BYTES:
            raise BadRequest(
                f"files: together they are larger than {MAX_FILES_BYTES // 1024} KiB, the limit for one "
                f"call (reached at {given}); give fewer or smaller files",
                argument="files",
            )
        ending = "" if text.endswith("\n") else "\n"
        blocks.append(f'<file path="{Path(given).expanduser()}">\n{text}{ending}</file>')
    return "\n\n".join(blocks)


def _media_type(data: bytes) -> str | None:
    for signature, media_type in _IMAGE_SIGNATURES:
        if data.startswith(signature):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_url(given: str) -> str:
    """The URL an image is sent as: an https URL as it is, an absolute path inline (``data:``).

    Raises:
        BadRequest: an http (not https) URL; a relative, missing or unreadable path; a file
            larger than `MAX_IMAGE_BYTES`, or not a PNG, JPEG, GIF or WebP image.
    """
    if given.startswith("https://") or given.startswith("data:"):
        return given  # `ImagePart` checks its shape
    if "://" in given:
        raise BadRequest(
            f"images: {given!r} is not an https URL or an absolute path (the model's vendor fetches "
            "only https URLs)",
            argument="images",
        )
    path = _local_path(given, "images")
    data = _read(path, MAX_IMAGE_BYTES, "images", "an image")
    media_type = _media_type(data)
    if media_type is None:
        raise BadRequest(f"images: {path} is not a PNG, JPEG, GIF or WebP image", argument="images")
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
