"""Over real stdio (the console script), a line that is not a JSON-RPC message gets a JSON-RPC error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.helpers import SCRIPT, Emulator, initialize_request, script_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

INITIALIZE = initialize_request(9)

# (line sent, error code expected, id expected)
BAD_LINES: list[tuple[bytes, int, Any]] = [
    (b"this is not json", -32700, None),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "ping"', -32700, None),
    (b'{"jsonrpc": "2.0", "id": 2, "method": "ping", "params": {"x": "\\ud800"}}', -32700, None),
    (b"[]", -32600, None),
    (b"42", -32600, None),
    (b'{"jsonrpc": "1.0", "id": 3, "method": "ping"}', -32600, 3),
    (b'{"jsonrpc": "2.0", "id": "four"}', -32600, "four"),
    (b'{"jsonrpc": "2.0", "id": true, "method": 5}', -32600, None),
]


async def test_bad_lines_are_answered_and_the_server_keeps_serving(emulator: Emulator, home: Path) -> None:
    process = await anyio.open_process([SCRIPT], env=script_env(home, emulator))
    assert process.stdin is not None and process.stdout is not None
    answers: list[dict[str, Any]] = []
    try:
        for line, _code, _id in BAD_LINES:
            await process.stdin.send(line + b"\n")
        await process.stdin.send(json.dumps(INITIALIZE).encode() + b"\n")
        buffered = b""
        with anyio.fail_after(20):  # a dropped line would leave this waiting
            while len(answers) < len(BAD_LINES) + 1:
                buffered += await process.stdout.receive()
                *complete, buffered = buffered.split(b"\n")
                answers += [json.loads(text) for text in complete if text.strip()]
    finally:
        await process.stdin.aclose()
        with anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
    for (line, code, expected_id), answer in zip(BAD_LINES, answers, strict=False):
        assert answer["jsonrpc"] == "2.0", line
        assert answer["error"]["code"] == code, (line, answer)
        assert answer["id"] == expected_id, (line, answer)
        assert answer["error"]["message"], line
    initialized = answers[-1]
    assert initialized["id"] == 9
    assert initialized["result"]["serverInfo"]["name"] == "puter"
