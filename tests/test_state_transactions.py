"""What one chat costs the shared SQLite store: at most two write transactions, and no reading of
cooldowns that no other connection has changed.

Every statement the store runs is traced (`SQLiteStateStore(trace=...)`); the calls go through a
real `Backend` against the emulator on a loopback port.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from puter_mcp.core import Backend, ChatCall
from puter_mcp.core.stores import check_store, open_store
from puter_mcp.core.wiring import engine_of
from puter_mcp.puter.errors import FailureKind
from puter_mcp.routing.cooldowns import CooldownBook, CooldownPolicy, Verdict, verdict_of
from puter_mcp.routing.state import (
    Cooldown,
    FallbackStateStore,
    MemoryStateStore,
    Scope,
    Slot,
    SlotRequest,
    SQLiteStateStore,
    StateStoreError,
    open_state_store,
)
from puter_mcp.settings import ConfigError, load_settings, resolve_paths
from tests.helpers import Emulator, save_accounts, settings_for

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
WRITES = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
READS_COOLDOWNS = re.compile(r"^\s*SELECT\b.*\bFROM cooldowns\b", re.IGNORECASE | re.DOTALL)


class Trace:
    """Every statement a store's connection ran, with what a test asks of them."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, statement: str) -> None:
        self.statements.append(statement)

    def clear(self) -> None:
        self.statements.clear()

    def transactions(self) -> list[list[str]]:
        """The write transactions, each as its statements; fails on a write outside one."""
        found: list[list[str]] = []
        current: list[str] | None = None
        for statement in self.statements:
            head = statement.strip().upper()
            if head.startswith("BEGIN"):
                assert current is None, "a transaction began inside another"
                current = []
            elif head.startswith(("COMMIT", "ROLLBACK")):
                assert current is not None, f"{head} outside a transaction"
                found.append(current)
                current = None
            elif WRITES.match(statement):
                assert current is not None, f"a write outside a transaction: {statement}"
                current.append(statement)
            elif current is not None:
                current.append(statement)
        assert current is None, "a transaction was left open"
        return found

    def cooldown_reads(self) -> int:
        return sum(1 for statement in self.statements if READS_COOLDOWNS.match(statement))


async def test_one_successful_chat_takes_at_most_two_write_transactions(
    emulator: Emulator, home: Path
) -> None:
    settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid)
    trace = Trace()
    sqlite = SQLiteStateStore(paths.state_db, origin=settings.api_origin, trace=trace)
    store = FallbackStateStore(sqlite, on_warning=pytest.fail)
    async with Backend(settings, paths, store=store) as backend:
        for number in (1, 2):
            trace.clear()
            outcome = await backend.chat(ChatCall.build(message=f"hello {number}", model="gpt-5-nano"))
            assert outcome.text
            sqlite.flush()  # the settle is written by the store's writer thread, maybe not yet
            transactions = trace.transactions()
            assert 1 <= len(transactions) <= 2, transactions
            # The second one gives the slot back and writes the attempt record with it.
            assert any("INSERT INTO attempts" in s for s in transactions[-1]), transactions[-1]
            assert any("UPDATE slots" in s for s in transactions[-1]), transactions[-1]
        # Nobody else wrote: the cooldowns read once are never read again.
        assert trace.cooldown_reads() == 0
        attempts = await engine_of(backend).store.recent_attempts()
        assert [(a.kind, a.account) for a in attempts] == [(None, emulator.paid.uuid)] * 2
        assert all(a.latency_ms > 0 and a.output_tokens for a in attempts)


async def test_another_connections_commit_is_seen_and_an_unchanged_database_is_not_read_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    trace = Trace()
    mine = SQLiteStateStore(path, trace=trace)
    other = SQLiteStateStore(path)
    try:
        assert await mine.cooldowns_for("a", "m") == []
        assert trace.cooldown_reads() == 1
        # Its own writes keep what it read up to date: no reading again.
        rate_limit = Cooldown(Scope.ACCOUNT, "a", None, FailureKind.RATE_LIMITED, until=T0 + 10, since=T0)
        await mine.update_cooldown(rate_limit.key, lambda old: rate_limit)
        assert await mine.cooldowns_for("a", "m") == [rate_limit]
        assert await mine.list_cooldowns() == [rate_limit]
        assert trace.cooldown_reads() == 1
        # Another connection commits: the next step sees it (PRAGMA data_version moved).
        down = Cooldown(Scope.MODEL, None, "m", FailureKind.MODEL_DOWN, until=math.inf, probe_at=T0 + 30)
        await other.update_cooldown(down.key, lambda old: down)
        assert sorted(await mine.cooldowns_for("a", "m"), key=repr) == sorted([rate_limit, down], key=repr)
        assert trace.cooldown_reads() == 2
        # ... and in the taking of a slot too, where it decides: the model is down.
        await other.delete_cooldown(rate_limit.key)
        book = CooldownBook(mine, CooldownPolicy(), clock=lambda: T0 + 1)
        request = SlotRequest("s1", T0 + 1, 10.5, 5, 2, T0 + 900)
        admitted = await mine.acquire("a", "m", judge=book.judge(), slot=request)
        assert admitted.decision.kind is FailureKind.MODEL_DOWN and admitted.slot is None
        assert trace.cooldown_reads() == 3
        assert [c.kind for c in await mine.list_cooldowns()] == [FailureKind.MODEL_DOWN]
        assert trace.cooldown_reads() == 3
    finally:
        await mine.aclose()
        await other.aclose()


async def test_a_blocked_pair_costs_no_write_and_a_due_probe_is_claimed_with_its_slot(tmp_path: Path) -> None:
    trace = Trace()
    store = SQLiteStateStore(tmp_path / "s.db", trace=trace)
    try:
        down = Cooldown(Scope.MODEL, None, "m", FailureKind.MODEL_DOWN, until=math.inf, probe_at=T0 + 30)
        await store.update_cooldown(down.key, lambda old: down)
        trace.clear()

        def judge_at(now: float) -> Callable[[list[Cooldown]], Verdict]:
            return lambda cooldowns: verdict_of(cooldowns, now=now, probe_lease=120.0, claim_probes=True)

        blocked = await store.acquire(
            "a", "m", judge=judge_at(T0 + 1), slot=SlotRequest("s", T0 + 1, 10.5, 5, 2, T0 + 900)
        )
        assert isinstance(blocked.decision, Verdict) and blocked.slot is None and not blocked.claimed
        assert trace.transactions() == []  # decided from what was known: nothing written
        probe = await store.acquire(
            "a", "m", judge=judge_at(T0 + 30), slot=SlotRequest("p", T0 + 30, 10.5, 5, 2, T0 + 930)
        )
        assert isinstance(probe.slot, Slot) and probe.claimed
        assert len(trace.transactions()) == 1  # the slot and the claim in one transaction
        (stored,) = await store.list_cooldowns()
        assert stored.probe_claimed_until == T0 + 30 + 120.0
        loser = await store.acquire(
            "b", "m", judge=judge_at(T0 + 31), slot=SlotRequest("q", T0 + 31, 10.5, 5, 2, T0 + 931)
        )
        assert loser.slot is None and not loser.claimed
    finally:
        await store.aclose()


async def test_the_store_setting_chooses_memory_and_refuses_a_network_url(tmp_path: Path) -> None:
    paths = resolve_paths({"PUTER_MCP_HOME": str(tmp_path)})
    settings, paths = load_settings(paths=paths, env={"PUTER_MCP_STATE": "memory"})
    store = open_store(settings, paths)
    assert isinstance(store, MemoryStateStore)
    assert check_store(settings, paths).status == "ok"  # what doctor reports
    assert not paths.state_db.exists()  # nothing shared, nothing written
    with pytest.raises(ConfigError, match="reserved for a later version"):
        load_settings(paths=paths, env={"PUTER_MCP_STATE": "unix:///run/redis.sock"})
    with pytest.raises(StateStoreError, match="not available in this version"):
        open_state_store("unix:///run/redis.sock")
    sqlite_settings, _ = load_settings(paths=paths, env={})
    assert sqlite_settings.state == "sqlite"
    shared = open_store(sqlite_settings, paths)
    try:
        assert shared.describe() == f"sqlite:{paths.state_db}"
        assert check_store(sqlite_settings, paths).status == "ok"
    finally:
        await shared.aclose()
