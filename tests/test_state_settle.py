"""`settle`, the second step of a call: every store's next operation sees it, and the SQLite
store's writer thread writes it for the other processes without holding the answer up."""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from redis.exceptions import RedisError

from puter_mcp.puter.errors import FailureKind
from puter_mcp.routing.state import (
    Attempt,
    Cooldown,
    Scope,
    Slot,
    SQLiteStateStore,
    StateStore,
    WindowUsage,
)
from puter_mcp.routing.state.redis import RedisStateStore
from tests.helpers import RedisServer

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
RATE_LIMIT = Cooldown(Scope.ACCOUNT, "a", None, FailureKind.RATE_LIMITED, until=T0 + 60, since=T0)


async def take(store: StateStore, slot_id: str, now: float = T0) -> Slot:
    slot = await store.acquire_slot(
        "a", slot_id=slot_id, now=now, window=10.5, max_requests=5, max_in_flight=2, lease_until=now + 900
    )
    assert isinstance(slot, Slot)
    return slot


def attempt(at: float = T0) -> Attempt:
    return Attempt(time=at, account="a", model="m", kind=None, latency_ms=12.0, request_id="r1")


async def test_the_next_operation_sees_a_settle_whole(store: StateStore) -> None:
    slot = await take(store, "s1")
    store.log_attempt(attempt())
    await store.settle(slot.id, now=T0 + 1, counted=True, changes=[(RATE_LIMIT.key, lambda old: RATE_LIMIT)])
    # Whether or not a store finished the step in the background, nothing after it sees less.
    assert await store.window_usage("a", now=T0 + 1, window=10.5) == WindowUsage(requests=1, in_flight=0)
    assert await store.cooldowns_for("a", "m") == [RATE_LIMIT]
    assert [a.request_id for a in await store.recent_attempts()] == ["r1"]


async def test_settles_in_a_row_keep_their_order(store: StateStore) -> None:
    first = await take(store, "s1")
    second = await take(store, "s2")
    later = Cooldown(Scope.ACCOUNT, "a", None, FailureKind.RATE_LIMITED, until=T0 + 90, since=T0, level=1)
    await store.settle(first.id, now=T0 + 1, counted=True, changes=[(RATE_LIMIT.key, lambda old: RATE_LIMIT)])
    await store.settle(second.id, now=T0 + 1, counted=False, changes=[(later.key, lambda old: later)])
    assert await store.cooldowns_for("a", "m") == [later]
    # The uncounted one left the window; the counted one stays in it.
    assert await store.window_usage("a", now=T0 + 1, window=10.5) == WindowUsage(requests=1, in_flight=0)


async def test_another_process_sees_a_settle_without_a_further_operation(tmp_path: Path) -> None:
    mine = SQLiteStateStore(tmp_path / "s.db")
    other = SQLiteStateStore(tmp_path / "s.db")  # what another process reads
    try:
        slot = await take(mine, "s1", now=time.time())
        mine.log_attempt(attempt(time.time()))
        await mine.settle(slot.id, now=time.time(), counted=True)
        # Only the writer thread can write it now: `mine` does nothing more.
        for _ in range(1000):  # 5 s at most
            if await other.recent_attempts():
                break
            await anyio.sleep(0.005)
        assert [a.request_id for a in await other.recent_attempts()] == ["r1"]
        usage = await other.window_usage("a", now=time.time(), window=10.5)
        assert usage.in_flight == 0
    finally:
        await mine.aclose()
        await other.aclose()


@contextlib.asynccontextmanager
async def settled_behind_a_lock(path: Path) -> AsyncIterator[tuple[SQLiteStateStore, sqlite3.Connection]]:
    """A store that has handed a settle (and an attempt) over while another connection, as
    another process would, holds the write lock; the lock is still held when this yields."""
    mine = SQLiteStateStore(path, busy_timeout=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        slot = await take(mine, "s1")
        blocker.execute("BEGIN IMMEDIATE")
        mine.log_attempt(attempt())
        await mine.settle(slot.id, now=T0 + 1, counted=True)  # hands over, never raises
        yield mine, blocker
    finally:
        blocker.close()
        await mine.aclose()


async def test_a_settle_the_writer_cannot_write_waits_for_the_next_operation(tmp_path: Path) -> None:
    async with settled_behind_a_lock(tmp_path / "s.db") as (mine, blocker):
        await anyio.sleep(0.3)  # the writer tries, meets the lock, and leaves the settle queued
        blocker.execute("COMMIT")
        assert blocker.execute("SELECT count(*) FROM attempts").fetchone() == (0,)
        # The store's next operation writes it before anything else: nothing was lost.
        assert await mine.window_usage("a", now=T0 + 1, window=10.5) == WindowUsage(requests=1, in_flight=0)
        assert blocker.execute("SELECT count(*) FROM attempts").fetchone() == (1,)


async def test_a_locked_database_fails_the_next_operation_not_the_settle(tmp_path: Path) -> None:
    async with settled_behind_a_lock(tmp_path / "s.db") as (mine, blocker):
        # The failure reaches the next operation (where the fallback wrapper turns it into
        # memory), and the settle is still there to write once the lock is gone.
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await mine.window_usage("a", now=T0 + 1, window=10.5)
        blocker.execute("COMMIT")
        assert await mine.window_usage("a", now=T0 + 1, window=10.5) == WindowUsage(requests=1, in_flight=0)


async def test_closing_writes_what_is_pending_and_stops_the_writer(tmp_path: Path) -> None:
    mine = SQLiteStateStore(tmp_path / "s.db")
    slot = await take(mine, "s1")
    mine.log_attempt(attempt())
    await mine.settle(slot.id, now=T0 + 1, counted=True)
    writer = mine._writer
    assert writer is not None and writer.alive
    await mine.aclose()
    assert not writer.alive
    other = SQLiteStateStore(tmp_path / "s.db")
    try:
        assert [a.request_id for a in await other.recent_attempts()] == ["r1"]
        assert await other.window_usage("a", now=T0 + 1, window=10.5) == WindowUsage(requests=1, in_flight=0)
    finally:
        await other.aclose()


async def test_a_store_dropped_unclosed_ends_its_writer(tmp_path: Path) -> None:
    mine = SQLiteStateStore(tmp_path / "s.db")
    await mine.settle((await take(mine, "s1")).id, now=T0 + 1, counted=True)
    writer = mine._writer
    assert writer is not None
    del mine  # never closed
    gc.collect()
    for _ in range(500):  # 5 s at most
        if not writer.alive:
            break
        await anyio.sleep(0.01)
    assert not writer.alive


async def test_a_settle_redis_does_not_take_is_written_when_it_is_back(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    store = RedisStateStore(server.url, socket_timeout=0.5)
    try:
        slot = await take(store, "s1")
        store.log_attempt(attempt())
        server.stop()
        await store.settle(slot.id, now=T0 + 1, counted=True)  # hands over, never raises
        # The next operation meets the failure (the fallback wrapper turns it into memory) ...
        with pytest.raises((RedisError, OSError)):
            await store.window_usage("a", now=T0 + 1, window=10.5)
        # ... and once Redis answers again (restarted empty), the settle is written first.
        server.start()
        assert [a.request_id for a in await store.recent_attempts()] == ["r1"]
    finally:
        await store.aclose()
        server.stop()


async def test_a_settle_whose_writing_failed_is_written_by_the_next_operation(
    redis_server: RedisServer, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisStateStore(redis_server.url, prefix=redis_prefix)
    try:
        slot = await take(store, "s1")
        real_write = store._write
        failures = [RedisError("Redis went away for a moment")]

        async def failing_once(*args: object, **kwargs: object) -> object:
            if failures:
                raise failures.pop()
            return await real_write(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "_write", failing_once)
        await store.settle(slot.id, now=T0 + 1, counted=True)
        # Without the second try, the slot would hold its place until its lease ends.
        assert await store.window_usage("a", now=T0 + 1, window=10.5) == WindowUsage(requests=1, in_flight=0)
        assert not failures
    finally:
        await store.aclose()


def test_a_process_that_exits_without_closing_its_store_writes_what_it_handed_over(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys, anyio
        from puter_mcp.routing.state import Attempt, SQLiteStateStore
        from puter_mcp.routing.state import sqlite as module

        module._Writer.wake = lambda self: None  # the writer never gets to it: only the exit does
        running = []  # as an engine holds its store while the process runs

        async def main():
            store = SQLiteStateStore(sys.argv[1])
            running.append(store)
            slot = await store.acquire_slot(
                "a", slot_id="s1", now=1.0, window=10.5, max_requests=5, max_in_flight=2, lease_until=901.0
            )
            store.log_attempt(Attempt(time=1.0, account="a", model="m", kind=None, latency_ms=1.0, request_id="r1"))
            await store.settle(slot.id, now=2.0, counted=True)

        anyio.run(main)  # and exit, the store never closed
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "s.db")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "s.db") as conn:
        assert conn.execute("SELECT request_id FROM attempts").fetchall() == [("r1",)]
        assert conn.execute("SELECT released_at FROM slots WHERE id = 's1'").fetchall() == [(2.0,)]
