"""`puter-chat`'s `files` and `images` through the SDK's in-memory `Client`, against the emulator.

What reached Puter is read from the emulator's request log (each complete call's messages)."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import TextContent

from puter_mcp.core import Backend
from puter_mcp.core.attachments import MAX_FILE_BYTES
from puter_mcp.emulator.catalogue import default_catalogue
from puter_mcp.server import build_server
from tests.helpers import Emulator

pytestmark = pytest.mark.anyio


def _png() -> bytes:
    """A real 1x1 PNG (a signature alone would do for the media type; this is a whole image)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def _text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def ask(backend: Backend, **arguments: Any) -> Any:
    async with Client(build_server(backend)) as client:
        return await client.call_tool("puter-chat", arguments)


async def test_files_are_sent_as_context_marked_with_their_paths(
    backend: Backend, emulator: Emulator, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("The secret word is pelican.\n")
    code = tmp_path / "main.py"
    code.write_text("print('hi')")
    result = await ask(
        backend, message="what is the secret word?", model="gpt-5-nano", files=[str(notes), str(code)]
    )
    assert not result.is_error, _text(result)
    assert 'You said: "what is the secret word?"' in _text(result)
    [sent] = emulator.chat_requests()
    context, question = sent.messages[0]["content"]
    assert context["text"] == (
        f'<file path="{notes}">\nThe secret word is pelican.\n</file>\n\n<file path="{code}">\nprint(\'hi\')\n</file>'
    )
    assert question == {"type": "text", "text": "what is the secret word?"}


async def test_images_are_sent_as_parts_a_local_one_inline(
    backend: Backend, emulator: Emulator, tmp_path: Path
) -> None:
    picture = tmp_path / "dot.png"
    picture.write_bytes(_png())
    url = "https://example.com/cat.jpg"
    result = await ask(backend, message="what do you see?", model="gpt-5-nano", images=[str(picture), url])
    assert not result.is_error, _text(result)
    assert "(with 2 images)" in _text(result)
    [sent] = emulator.chat_requests()
    parts = sent.messages[0]["content"]
    inline = "data:image/png;base64," + base64.b64encode(_png()).decode()
    assert parts[1:] == [
        {"type": "image_url", "image_url": {"url": inline}},
        {"type": "image_url", "image_url": {"url": url}},
    ]


async def test_a_named_model_that_takes_no_images_is_refused_before_any_request(
    backend: Backend, emulator: Emulator
) -> None:
    result = await ask(backend, message="look", model="deepseek-chat", images=["https://example.com/a.png"])
    assert result.is_error
    assert "'deepseek-chat' (deepseek-v3.2) takes no images" in _text(result)
    assert emulator.chat_requests() == []


async def test_a_chain_keeps_only_the_models_that_take_images(backend: Backend, emulator: Emulator) -> None:
    catalogue = default_catalogue()
    # coding-fast: claude-haiku, gpt-5-mini, gemini-flash, then deepseek-chat and codestral
    # (which take none). Every model that takes images fails, so the call runs out.
    for name in ("claude-haiku-latest", "gpt-5-mini", "gemini-flash-latest"):
        emulator.state.add_fault("upstream_provider_unavailable", model=name, times=None)
    result = await ask(
        backend, message="look", model="coding-fast", images=["https://example.com/a.png"], fallback=False
    )
    assert result.is_error
    asked = {record.model for record in emulator.chat_requests()}
    assert asked == {"claude-haiku-4-5-20251001", "gpt-5-mini-2025-08-07", "gemini-3-flash-preview"}
    for name in asked:
        model = catalogue.find(name)
        assert model is not None and model.input_modalities is not None and "image" in model.input_modalities


@pytest.mark.parametrize(
    ("argument", "make", "words"),
    [
        ("files", lambda tmp: "notes.md", "'notes.md' is a relative path"),
        ("files", lambda tmp: str(tmp / "missing.txt"), "missing.txt does not exist"),
        ("files", lambda tmp: str(tmp), "is not a file"),
        ("files", lambda tmp: _write(tmp / "blob.bin", b"ab\x00cd"), "blob.bin is a binary file"),
        (
            "files",
            lambda tmp: _write(tmp / "latin.txt", "café".encode("latin-1")),
            "latin.txt is not UTF-8 text",
        ),
        (
            "files",
            lambda tmp: _write(tmp / "big.txt", b"x" * (MAX_FILE_BYTES + 1)),
            "big.txt is larger than 256 KiB",
        ),
        ("images", lambda tmp: "http://example.com/a.png", "is not an https URL or an absolute path"),
        (
            "images",
            lambda tmp: _write(tmp / "fake.png", b"not an image"),
            "fake.png is not a PNG, JPEG, GIF or WebP",
        ),
        ("images", lambda tmp: "dot.png", "'dot.png' is a relative path"),
    ],
)
async def test_files_and_images_that_cannot_be_sent_are_refused_with_the_path(
    backend: Backend, emulator: Emulator, tmp_path: Path, argument: str, make: Any, words: str
) -> None:
    given = make(tmp_path)
    result = await ask(backend, message="hi", model="gpt-5-nano", **{argument: [given]})
    assert result.is_error
    assert f"{argument}: " in _text(result)
    assert words in _text(result)
    assert emulator.chat_requests() == []


async def test_the_output_schema_has_room_for_tool_calls(backend: Backend) -> None:
    async with Client(build_server(backend)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    chat = tools["puter-chat"]
    assert chat.output_schema is not None
    assert "tool_calls" in chat.output_schema["properties"]
    assert {"files", "images"} <= set(chat.input_schema["properties"])


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)
