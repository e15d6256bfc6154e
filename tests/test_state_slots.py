"""Places held by a process that ended come back at once.

A real `puter-mcp` server (the console script, over stdio) has two calls in flight on an
account whose in-flight cap is 2, against the emulator answering slowly; it is then stopped with
SIGKILL, SIGTERM or SIGHUP. The next call, from this test's own backend on the same state
database, must be answered at once instead of waiting for the slots' 15-minute lease.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from mcp import Client
from redis import Redis

from puter_mcp.core import Backend, ChatCall
from puter_mcp.core.results import ChatOutcome
from puter_mcp.emulator import Fault
from puter_mcp.settings import Paths, Settings
from tests.helpers import (
    SCRIPT,
    Emulator,
    RedisServer,
    initialize_request,
    save_accounts,
    settings_for,
    stop_with,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]


def _lines(stream: IO[bytes]) -> queue.Queue[bytes]:
    found: queue.Queue[bytes] = queue.Queue()

    def pump() -> None:
        for line in stream:
            found.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return found


def _send(process: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
    process.stdin.flush()


def _wait_until(condition: Any, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _slots_of(db: Path, pid: int) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, released_at FROM slots WHERE pid = ?", (pid,)).fetchall()
    conn.close()
    return rows


def _start_stdio(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], queue.Queue[bytes]]:
    """A stdio server with two `puter-chat` calls sent to it (raw JSON-RPC: the test must be
    free to kill the server under them)."""
    server = subprocess.Popen(
        [SCRIPT], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert server.stdout is not None and server.stderr is not None
    answers, logged = _lines(server.stdout), _lines(server.stderr)
    _send(server, initialize_request(1))
    assert b'"id":1' in answers.get(timeout=20)
    _send(server, {"method": "notifications/initialized"})
    for number in (2, 3):
        arguments = {"message": "slow", "model": "gpt-5-nano"}
        _send(
            server,
            {"id": number, "method": "tools/call", "params": {"name": "puter-chat", "arguments": arguments}},
        )
    return server, logged


def _start_http(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], queue.Queue[bytes]]:
    """`serve --transport http` with two calls from MCP clients in background threads."""
    command = [SCRIPT, "serve", "--transport", "http", "--port", "0"]
    server = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert server.stderr is not None
    logged = _lines(server.stderr)
    line = b""
    while b"serving MCP at " not in line:
        line = logged.get(timeout=20)
    url = line.decode().split("serving MCP at ", 1)[1].split()[0]

    async def call() -> None:
        async with Client(url) as client:
            await client.call_tool("puter-chat", {"message": "slow", "model": "gpt-5-nano"})

    def run() -> None:
        with contextlib.suppress(BaseException):  # the server is killed under it: expected
            anyio.run(call)

    for _ in range(2):
        threading.Thread(target=run, daemon=True).start()
    return server, logged


def _server_env(home: Path, emulator: Emulator, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "PUTER_MCP_HOME": str(home),
        "PUTER_API_ORIGIN": emulator.url,
        "PUTER_GUI_ORIGIN": emulator.url,
        **extra,
    }


def _assert_the_next_call_is_answered_at_once(settings: Settings, paths: Paths, user: str) -> None:
    """Within one second, from another process's point of view (this test's own backend)."""
    quick = settings.model_copy(update={"routing": settings.routing.model_copy(update={"deadline": 1.0})})

    async def next_call() -> ChatOutcome:
        async with Backend.create(quick, paths, env={}) as backend:
            return await backend.chat(ChatCall.build(message="next", model="gpt-5-nano"))

    outcome = anyio.run(next_call)
    assert outcome.account == user
    assert outcome.waited_s == 0


@pytest.mark.parametrize(
    ("transport", "how"),
    [
        ("stdio", signal.SIGKILL),
        ("stdio", signal.SIGTERM),
        ("stdio", signal.SIGHUP),
        ("http", signal.SIGTERM),
    ],
    ids=["stdio-SIGKILL", "stdio-SIGTERM", "stdio-SIGHUP", "http-SIGTERM"],
)
def test_a_stopped_servers_places_come_back_at_once(
    emulator: Emulator, home: Path, transport: str, how: signal.Signals
) -> None:
    settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.temp)  # a temporary account: two requests in flight at most
    user = emulator.temp.username
    emulator.state.add_fault(Fault.STALL_BEFORE_HEADERS, times=2, seconds=30)
    env = _server_env(home, emulator)
    server, logged = (_start_stdio if transport == "stdio" else _start_http)(env)
    try:
        _wait_until(lambda: emulator.state.in_flight(user) == 2, "both calls to be in flight")
        assert [released for _, released in _slots_of(paths.state_db, server.pid)] == [None, None]
    except BaseException:
        server.kill()
        server.wait()
        raise
    assert stop_with(server, how) == -how
    if how != signal.SIGKILL:
        # The handler gave both places back before the process ended, and said so.
        assert all(released is not None for _, released in _slots_of(paths.state_db, server.pid))
        said = f"stopping on {how.name}; gave back 2 pacing slots".encode()
        _wait_until(lambda: said in b"".join(list(logged.queue)), "the log line")
    # The emulator sees the connections close and frees its own places.
    _wait_until(lambda: emulator.state.in_flight(user) == 0, "the emulator to free its places")

    _assert_the_next_call_is_answered_at_once(settings, paths, user)


def test_a_stopped_servers_places_in_redis_come_back_at_once(
    emulator: Emulator, home: Path, redis_server: RedisServer, redis_prefix: str
) -> None:
    """The same over the Redis store, which replicas share: SIGTERM gives the places back there."""
    settings, paths = settings_for(emulator, home, state=redis_server.url, state_prefix=redis_prefix)
    save_accounts(paths, emulator.temp)
    user = emulator.temp.username
    emulator.state.add_fault(Fault.STALL_BEFORE_HEADERS, times=2, seconds=30)
    env = _server_env(home, emulator, PUTER_MCP_STATE=redis_server.url, PUTER_MCP_STATE_PREFIX=redis_prefix)
    redis = Redis(port=redis_server.port, decode_responses=True)

    def running() -> int:
        return sum(int(redis.zcard(key)) for key in redis.scan_iter(f"{redis_prefix}*:running"))

    server, logged = _start_http(env)
    try:
        _wait_until(lambda: emulator.state.in_flight(user) == 2, "both calls to be in flight")
        assert running() == 2
    except BaseException:
        server.kill()
        server.wait()
        raise
    assert stop_with(server, signal.SIGTERM) == -signal.SIGTERM
    assert running() == 0  # given back by the handler, before the process ended
    said = b"stopping on SIGTERM; gave back 2 pacing slots"
    _wait_until(lambda: said in b"".join(list(logged.queue)), "the log line")
    _wait_until(lambda: emulator.state.in_flight(user) == 0, "the emulator to free its places")
    _assert_the_next_call_is_answered_at_once(settings, paths, user)
