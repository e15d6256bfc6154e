"""Stdio served from the event loop (`puter_mcp.stdio_serving.stdio_streams`), and the SDK's
transport where the event loop cannot watch stdin and stdout.

The transport runs in a child process, as an MCP client starts a server: a small echo server
over `stdio_streams` (so that a message can be of any size), and the console script itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SCRIPT, initialize_request, script_env

pytestmark = pytest.mark.slow

# Echoes each request's params back as its result, with what the process looked like then.
ECHO_SERVER = textwrap.dedent(
    """
    import json, os, sys, threading
    import anyio
    from mcp.shared.message import SessionMessage
    from mcp_types import JSONRPCResponse
    from puter_mcp.stdio_serving import stdio_streams

    async def main():
        async with stdio_streams() as (read, write):
            print("stray print")  # must miss the wire
            sys.stdout.flush()
            os.write(1, b"stray write\\n")
            async with write:
                async for item in read:
                    if isinstance(item, Exception):
                        print(f"unreadable: {item!r}", file=sys.stderr)
                        continue
                    request = item.message
                    result = {"params": request.params, "threads": threading.active_count()}
                    await write.send(SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=request.id, result=result)))
        # Serving is over: fd 1 is the wire again, in the mode it had before.
        print(json.dumps({"after": {"blocking": [os.get_blocking(0), os.get_blocking(1)]}}), flush=True)

    anyio.run(main)
    """
)


def _request(number: int, **params: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": number, "method": "echo", "params": params}).encode()


def _answers(stdout: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def _echo_server(stdin: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", ECHO_SERVER],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_pipes_are_served_from_the_event_loop_with_messages_larger_than_a_pipe() -> None:
    big = "x" * 300_000  # past a pipe's 64 KiB both ways: many reads per line, a write that waits
    server = _echo_server(subprocess.PIPE)
    assert server.stdin is not None
    # The request goes in from a thread, and the answer is only read once it is all sent: the
    # server's write must wait for the pipe, in its event loop, not fail or block it.
    feeder = threading.Thread(
        target=lambda: (
            server.stdin.write(_request(1, text=big) + b"\n" + _request(2, text="small")),  # type: ignore[union-attr]
            server.stdin.close(),  # type: ignore[union-attr]
        )
    )
    feeder.start()
    stdout, stderr = server.communicate(timeout=60)
    feeder.join(timeout=10)
    assert server.returncode == 0, stderr.decode()
    *answers, after = _answers(stdout)
    # The last line had no newline before the end of input: it is a line all the same.
    assert [(a["id"], a["result"]["params"]["text"]) for a in answers] == [(1, big), (2, "small")]
    # No worker thread read or wrote a line (the SDK's transport starts one for the first read).
    assert [a["result"]["threads"] for a in answers] == [1, 1]
    assert after == {"after": {"blocking": [True, True]}}
    # Stray output went to stderr, never between the messages.
    assert b"stray print" in stderr and b"stray write" in stderr


def test_stderr_on_the_same_pipe_as_stdout_is_left_blocking() -> None:
    """``2>&1``: the wire's mode is stderr's too, so the SDK's transport serves (a full pipe
    must make a log line wait, not fail), and the answers still arrive."""
    server = subprocess.Popen(
        [sys.executable, "-c", ECHO_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    stdout, _ = server.communicate(_request(1, text="shared") + b"\n", timeout=60)
    assert server.returncode == 0, stdout.decode()
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith(b"{")]
    (answer,) = [line for line in lines if line.get("id") == 1]
    assert answer["result"]["params"] == {"text": "shared"}
    assert answer["result"]["threads"] > 1  # the SDK's transport: a worker thread read the line


def test_a_regular_file_on_stdin_is_served_by_the_sdk_transport(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(
        _request(1, text="from a file") + b"\n" + b"not json\n" + _request(2, text="end") + b"\n"
    )
    with requests.open("rb") as stdin:
        server = _echo_server(stdin)
        stdout, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr.decode()
    *answers, after = _answers(stdout)
    assert [(a["id"], a["result"]["params"]["text"]) for a in answers] == [(1, "from a file"), (2, "end")]
    assert b"unreadable" in stderr  # the bad line reached the server as an error, as before
    assert b"stray print" in stderr and b"stray write" in stderr
    assert after["after"]["blocking"][1] is True


def test_the_console_script_answers_over_pipes_and_over_a_file(tmp_path: Path, home: Path) -> None:
    """The product's own server over both paths: the same answers, the process ends at EOF."""
    lines = [
        json.dumps(initialize_request(1)),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        "this is not json",
    ]
    script = "\n".join(lines).encode() + b"\n"
    file = tmp_path / "session.jsonl"
    file.write_bytes(script)

    def serve(**stdin: Any) -> list[dict[str, Any]]:
        run = subprocess.run(
            [SCRIPT, "--sandbox"], capture_output=True, env=script_env(home, None), timeout=60, **stdin
        )
        assert run.returncode == 0, run.stderr.decode()
        return _answers(run.stdout)

    over_pipes = serve(input=script)
    with file.open("rb") as source:
        over_a_file = serve(stdin=source)
    for answers in (over_pipes, over_a_file):
        by_id = {answer.get("id"): answer for answer in answers}  # the error may come first
        assert len(answers) == 3 and set(by_id) == {1, 2, None}
        assert sorted(t["name"] for t in by_id[2]["result"]["tools"]) == [
            "puter-account",
            "puter-chat",
            "puter-models",
        ]
        assert by_id[None]["error"]["code"] == -32700
    assert [a for a in over_pipes if a.get("id") == 2] == [a for a in over_a_file if a.get("id") == 2]


def test_a_client_that_stops_reading_ends_the_server_with_one_line(home: Path) -> None:
    """The client closed its end of our stdout (it went away): nobody is left to answer, so the
    server stops at once, exit 0, with a sentence on stderr instead of a traceback."""
    server = subprocess.Popen(
        [SCRIPT, "--sandbox"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=script_env(home, None),
    )
    assert server.stdin is not None and server.stdout is not None and server.stderr is not None
    server.stdout.close()
    server.stdin.write(_request(1, text="anyone?") + b"\n")  # answered with an error: to nobody
    server.stdin.flush()
    try:
        returncode = server.wait(timeout=30)  # stdin still open: only the broken pipe ends it
    finally:
        if server.poll() is None:
            server.kill()
        server.stdin.close()
    stderr = server.stderr.read().decode()
    server.stderr.close()
    assert returncode == 0, stderr
    assert "the MCP client closed the pipe it reads answers from" in stderr
    assert "Traceback" not in stderr
