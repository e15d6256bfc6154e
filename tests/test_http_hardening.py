"""HTTP hardening: strong tokens off loopback, deadlines for request headers and bodies, a busy port said plainly."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import anyio
import pytest

from puter_mcp.core import Backend, BackendError
from puter_mcp.http_serving import MIN_PUBLIC_TOKEN_LENGTH, binding_problem
from puter_mcp.server import serve_http
from tests.helpers import HTTP_AUTH_TOKEN, SCRIPT, script_env, served

pytestmark = pytest.mark.anyio


def test_binding_rules() -> None:
    assert binding_problem("127.0.0.1", None) is None
    assert binding_problem("::1", "short") is None  # loopback: a token is optional
    assert "without a bearer token" in (binding_problem("0.0.0.0", None) or "")
    short = binding_problem("0.0.0.0", "x" * (MIN_PUBLIC_TOKEN_LENGTH - 1)) or ""
    assert f"at least {MIN_PUBLIC_TOKEN_LENGTH} characters" in short
    assert "x" * 8 not in short  # the token itself is never repeated
    assert binding_problem("0.0.0.0", "x" * MIN_PUBLIC_TOKEN_LENGTH) is None


def test_serve_refuses_a_short_token_off_loopback(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            SCRIPT,
            "serve",
            "--transport",
            "http",
            "--host",
            "127.0.0.2",
            "--port",
            "0",
            "--auth-token",
            "short-1",
        ],
        env=script_env(tmp_path, None),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "at least 32 characters" in done.stderr
    assert "short-1" not in done.stderr
    assert done.stdout == ""


async def _read_until_closed(stream: anyio.abc.ByteStream) -> bytes:
    seen = b""
    while True:
        try:
            seen += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
            return seen


async def test_a_connection_that_trickles_its_headers_is_dropped(backend: Backend) -> None:
    async with served(backend, header_timeout=0.3) as url:
        port = int(url.split(":")[2].split("/")[0])
        async with await anyio.connect_tcp("127.0.0.1", port) as slow:
            await slow.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            with anyio.fail_after(5):  # far above the deadline: only a hang fails here
                # One more header line before the deadline does not restart it.
                await anyio.sleep(0.15)
                await slow.send(b"X-Slow: 1\r\n")
                assert await _read_until_closed(slow) == b""


async def test_a_keep_alive_connection_is_held_to_the_deadline_again(backend: Backend) -> None:
    request = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {HTTP_AUTH_TOKEN}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        "Content-Length: 2\r\n\r\n{}"
    ).encode()
    async with served(backend, header_timeout=0.3) as url:
        port = int(url.split(":")[2].split("/")[0])
        async with await anyio.connect_tcp("127.0.0.1", port) as conn:
            await conn.send(request)
            with anyio.fail_after(5):
                first = await conn.receive()
                assert first.startswith(b"HTTP/1.1 ")  # a whole request in time is answered
                await conn.send(b"POST /mcp HTTP/1.1\r\n")
                await _read_until_closed(conn)  # uvicorn's own keep-alive timer stops at the first byte


async def test_the_mcp_transport_times_out_a_body_that_arrives_too_slowly(backend: Backend) -> None:
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:1\r\nAuthorization: Bearer {HTTP_AUTH_TOKEN}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        "Content-Length: 200\r\n\r\n{"
    ).encode()
    async with served(backend, body_timeout=0.3) as url:
        port = int(url.split(":")[2].split("/")[0])
        async with await anyio.connect_tcp("127.0.0.1", port) as slow:
            await slow.send(head)  # one byte of a 200-byte body, and no more
            with anyio.fail_after(5):  # far above the deadline: only a hang fails here
                answer = await _read_until_closed(slow)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"did not arrive within 0.3 s" in answer


async def test_a_busy_port_is_said_plainly(backend: Backend) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BackendError) as caught, anyio.fail_after(10):
            await serve_http(backend, transport="http", host="127.0.0.1", port=port, auth_token=None)
    assert (
        str(caught.value)
        == f"port {port} is in use on 127.0.0.1; pick another with --port (0 picks a free one)"
    )


def test_serve_on_a_busy_port_exits_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [SCRIPT, "serve", "--transport", "http", "--port", str(port)],
            env=script_env(tmp_path, None),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode != 0
    assert f"port {port} is in use on 127.0.0.1; pick another with --port (0 picks a free one)" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr
