"""The state store: one contract for both backends, SQLite specifics, degradation to memory,
and real OS processes sharing one database file."""

from __future__ import annotations

import json
import math
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from puter_mcp.puter.errors import FailureKind
from puter_mcp.routing.state import (
    DEFAULT_ORIGIN,
    SCHEMA_VERSION,
    Attempt,
    Cooldown,
    CooldownKey,
    FallbackStateStore,
    MemoryStateStore,
    Scope,
    Slot,
    SlotRefusal,
    SQLiteStateStore,
    StateStore,
    WindowUsage,
    check_state_file,
    open_state_store,
    release_process_slots,
)

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0


def account_cooldown(
    account: str = "a",
    kind: FailureKind = FailureKind.RATE_LIMITED,
    *,
    until: float,
    level: int = 0,
    reason: str = "",
    since: float = 0.0,
) -> Cooldown:
    return Cooldown(Scope.ACCOUNT, account, None, kind, until=until, level=level, reason=reason, since=since)


def model_down(model: str = "m", *, until: float = math.inf, probe_at: float | None = T0 + 30) -> Cooldown:
    return Cooldown(
        Scope.MODEL, None, model, FailureKind.MODEL_DOWN, until=until, probe_at=probe_at, since=T0
    )


async def acquire(
    store: StateStore, account: str, sid: str, now: float, **limits: float
) -> Slot | SlotRefusal:
    return await store.acquire_slot(
        account,
        slot_id=sid,
        now=now,
        window=float(limits.get("window", 10.5)),
        max_requests=int(limits.get("max_requests", 5)),
        max_in_flight=int(limits.get("max_in_flight", 2)),
        lease_until=now + float(limits.get("lease", 900.0)),
    )


# -- contract: cooldowns ------------------------------------------------------------------


async def test_every_store_satisfies_the_protocol(store: StateStore) -> None:
    assert isinstance(store, StateStore)


async def test_update_inserts_replaces_and_deletes(store: StateStore) -> None:
    first = account_cooldown(until=T0 + 10, level=1, reason="429", since=T0)
    assert await store.update_cooldown(first.key, lambda old: first if old is None else None) == first
    seen: list[Cooldown | None] = []

    def bump(old: Cooldown | None) -> Cooldown | None:
        seen.append(old)
        assert old is not None
        return Cooldown(
            *old.key, until=old.until + 20, level=old.level + 1, reason=old.reason, since=old.since
        )

    second = await store.update_cooldown(first.key, bump)
    assert seen == [first]
    assert second is not None
    assert second.until == T0 + 30
    assert second.level == 2
    assert await store.list_cooldowns() == [second]
    assert await store.update_cooldown(first.key, lambda old: None) is None
    assert await store.list_cooldowns() == []


async def test_update_refuses_a_change_of_key(store: StateStore) -> None:
    record = account_cooldown(until=T0 + 10)
    other = account_cooldown("b", until=T0 + 10)
    with pytest.raises(ValueError, match="keep its key"):
        await store.update_cooldown(record.key, lambda old: other)
    assert await store.list_cooldowns() == []


async def test_records_round_trip_exactly_infinity_and_nones_included(store: StateStore) -> None:
    records = [
        account_cooldown(kind=FailureKind.AUTH, until=math.inf, reason="401", since=T0),
        Cooldown(Scope.ACCOUNT, "a", None, FailureKind.OUT_OF_CREDITS, until=math.inf, probe_at=T0 + 300),
        model_down(),
        Cooldown(
            Scope.ACCOUNT_MODEL,
            "a",
            "m",
            FailureKind.TRANSPORT,
            until=T0 + 15.25,
            reason="reset by peer",
            since=T0,
            probe_claimed_until=T0 + 1,
        ),
    ]
    for record in records:
        await store.update_cooldown(record.key, lambda old, r=record: r)
    assert sorted(await store.list_cooldowns(), key=repr) == sorted(records, key=repr)


async def test_cooldowns_for_returns_exactly_the_records_that_apply(store: StateStore) -> None:
    applying = [
        account_cooldown("a", until=T0 + 10),
        account_cooldown("a", FailureKind.AUTH, until=math.inf),
        model_down("m"),
        Cooldown(Scope.ACCOUNT_MODEL, "a", "m", FailureKind.MODEL_FORBIDDEN, until=T0 + 60),
    ]
    others = [
        account_cooldown("b", until=T0 + 10),
        model_down("n"),
        Cooldown(Scope.ACCOUNT_MODEL, "a", "n", FailureKind.TRANSPORT, until=T0 + 15),
        Cooldown(Scope.ACCOUNT_MODEL, "b", "m", FailureKind.TRANSPORT, until=T0 + 15),
    ]
    for record in applying + others:
        await store.update_cooldown(record.key, lambda old, r=record: r)
    assert sorted(await store.cooldowns_for("a", "m"), key=repr) == sorted(applying, key=repr)


def test_cooldown_needs_the_parts_its_scope_names() -> None:
    with pytest.raises(ValueError, match="model"):
        Cooldown(Scope.MODEL, "a", None, FailureKind.MODEL_DOWN, until=T0)
    with pytest.raises(ValueError, match="account"):
        Cooldown(Scope.ACCOUNT_MODEL, None, "m", FailureKind.TRANSPORT, until=T0)


async def test_delete_reports_whether_there_was_a_record(store: StateStore) -> None:
    record = model_down()
    await store.update_cooldown(record.key, lambda old: record)
    assert await store.delete_cooldown(record.key) is True
    assert await store.delete_cooldown(record.key) is False


# -- contract: probes ---------------------------------------------------------------------


async def test_probe_claim_waits_for_its_time_and_has_one_winner(store: StateStore) -> None:
    record = model_down(probe_at=T0 + 30)
    await store.update_cooldown(record.key, lambda old: record)
    assert await store.claim_probe(record.key, now=T0 + 29.9, lease_until=T0 + 150) is False
    assert await store.claim_probe(record.key, now=T0 + 30, lease_until=T0 + 150) is True
    assert await store.claim_probe(record.key, now=T0 + 31, lease_until=T0 + 151) is False
    (stored,) = await store.list_cooldowns()
    assert stored.probe_claimed_until == T0 + 150
    # The lease runs out (the prober died): someone else may probe.
    assert await store.claim_probe(record.key, now=T0 + 150, lease_until=T0 + 270) is True


async def test_released_probe_can_be_claimed_again_at_once(store: StateStore) -> None:
    record = model_down(probe_at=T0)
    await store.update_cooldown(record.key, lambda old: record)
    assert await store.claim_probe(record.key, now=T0 + 1, lease_until=T0 + 121)
    await store.release_probe(record.key)
    assert await store.claim_probe(record.key, now=T0 + 2, lease_until=T0 + 122)


async def test_no_probe_on_a_missing_ended_or_unprobed_record(store: StateStore) -> None:
    ended = model_down("ended", until=T0 + 5, probe_at=T0)
    no_probe = account_cooldown(kind=FailureKind.AUTH, until=math.inf)
    for record in (ended, no_probe):
        await store.update_cooldown(record.key, lambda old, r=record: r)
    assert await store.claim_probe(ended.key, now=T0 + 5, lease_until=T0 + 100) is False
    assert await store.claim_probe(no_probe.key, now=T0 + 5, lease_until=T0 + 100) is False
    missing = CooldownKey(Scope.MODEL, None, "nothing", FailureKind.MODEL_DOWN)
    assert await store.claim_probe(missing, now=T0, lease_until=T0 + 100) is False


# -- contract: slots ----------------------------------------------------------------------


async def test_in_flight_cap_and_release(store: StateStore) -> None:
    first = await acquire(store, "a", "s1", T0)
    second = await acquire(store, "a", "s2", T0 + 0.1)
    assert isinstance(first, Slot)
    assert isinstance(second, Slot)
    refused = await acquire(store, "a", "s3", T0 + 0.2)
    assert refused == SlotRefusal(WindowUsage(2, 2), window_frees_at=None, in_flight_full=True)
    assert isinstance(await acquire(store, "b", "s4", T0 + 0.2), Slot)  # other accounts are separate
    await store.release_slot("s1", now=T0 + 1, counted=True)
    assert await store.window_usage("a", now=T0 + 1, window=10.5) == WindowUsage(requests=2, in_flight=1)
    assert isinstance(await acquire(store, "a", "s5", T0 + 1), Slot)


async def test_window_full_says_exactly_when_a_place_frees(store: StateStore) -> None:
    starts = [T0, T0 + 1.5, T0 + 2.25, T0 + 3, T0 + 4]
    for i, at in enumerate(starts):
        assert isinstance(await acquire(store, "a", f"s{i}", at, max_in_flight=10), Slot)
        await store.release_slot(f"s{i}", now=at, counted=True)
    refused = await acquire(store, "a", "late", T0 + 5, max_in_flight=10)
    assert isinstance(refused, SlotRefusal)
    assert refused.usage == WindowUsage(requests=5, in_flight=0)
    assert refused.window_frees_at == T0 + 10.5
    assert refused.in_flight_full is False
    assert isinstance(
        await acquire(store, "a", "still", math.nextafter(T0 + 10.5, 0), max_in_flight=10), SlotRefusal
    )
    assert isinstance(await acquire(store, "a", "fits", T0 + 10.5, max_in_flight=10), Slot)


async def test_window_over_a_lowered_limit_waits_for_enough_departures(store: StateStore) -> None:
    for i in range(5):
        assert isinstance(await acquire(store, "a", f"s{i}", T0 + i, max_in_flight=10), Slot)
    refused = await acquire(store, "a", "x", T0 + 5, max_requests=3, max_in_flight=10)
    assert isinstance(refused, SlotRefusal)
    # 5 in the window, room for 3: the 3 oldest must leave; the third started at T0 + 2.
    assert refused.window_frees_at == T0 + 2 + 10.5


async def test_uncounted_release_gives_the_window_place_back(store: StateStore) -> None:
    slot = await acquire(store, "a", "s1", T0, max_requests=1)
    assert isinstance(slot, Slot)
    await store.release_slot("s1", now=T0 + 0.5, counted=False)
    assert await store.window_usage("a", now=T0 + 0.5, window=10.5) == WindowUsage(0, 0)
    assert isinstance(await acquire(store, "a", "s2", T0 + 0.6, max_requests=1), Slot)


async def test_release_twice_and_release_unknown_are_harmless(store: StateStore) -> None:
    await acquire(store, "a", "s1", T0)
    await store.release_slot("s1", now=T0 + 1, counted=True)
    await store.release_slot("s1", now=T0 + 2, counted=True)
    await store.release_slot("nope", now=T0 + 2, counted=False)
    assert await store.window_usage("a", now=T0 + 2, window=10.5) == WindowUsage(1, 0)


async def test_expired_lease_stops_counting_in_flight(store: StateStore) -> None:
    await acquire(store, "a", "s1", T0, lease=60)
    await acquire(store, "a", "s2", T0, lease=60)
    assert isinstance(await acquire(store, "a", "s3", T0 + 59, lease=60), SlotRefusal)
    assert isinstance(await acquire(store, "a", "s4", T0 + 60, lease=60), Slot)


async def test_granted_slots_mark_the_account_used(store: StateStore) -> None:
    await acquire(store, "a", "s1", T0)
    await acquire(store, "b", "s2", T0 + 1)
    await acquire(store, "a", "s3", T0 + 2)
    await acquire(store, "a", "refused", T0 + 3)  # a is full: no grant, no mark
    assert await store.last_used() == {"a": T0 + 2, "b": T0 + 1}


# -- contract: last use, attempts, pruning ------------------------------------------------


async def test_touch_keeps_the_latest_time(store: StateStore) -> None:
    await store.touch("a", T0 + 5)
    await store.touch("a", T0 + 1)
    await store.touch("b", T0)
    assert await store.last_used() == {"a": T0 + 5, "b": T0}


async def test_attempts_come_back_newest_first(store: StateStore) -> None:
    attempts = [
        Attempt(T0, "a", "m", None, 812.5, 120.0, 10, 20, 0.0012, "r1"),
        Attempt(T0 + 1, "b", "m", FailureKind.RATE_LIMITED, 33.0, request_id="r1"),
        Attempt(T0 + 2, "a", "n", FailureKind.TRANSPORT, 5000.0, request_id="r2"),
    ]
    for attempt in attempts:
        await store.record_attempt(attempt)
    assert await store.recent_attempts() == attempts[::-1]
    assert await store.recent_attempts(2) == attempts[:0:-1]
    assert await store.recent_attempts(0) == []


async def test_prune_forgets_old_things_only(store: StateStore) -> None:
    await store.record_attempt(Attempt(T0, "a", "m", None, 1.0))
    await store.record_attempt(Attempt(T0 + 100, "a", "m", None, 2.0))
    old = account_cooldown("old", until=T0 + 10)
    recent = account_cooldown("recent", until=T0 + 95)
    endless = account_cooldown("endless", FailureKind.AUTH, until=math.inf)
    for record in (old, recent, endless):
        await store.update_cooldown(record.key, lambda o, r=record: r)
    await acquire(store, "a", "done", T0)
    await store.release_slot("done", now=T0 + 1, counted=True)
    await acquire(store, "a", "running", T0)  # still in flight: kept
    await store.prune(now=T0 + 110, attempts_max_age=50, cooldowns_max_age=60)
    assert [a.latency_ms for a in await store.recent_attempts()] == [2.0]
    assert {c.account for c in await store.list_cooldowns()} == {"recent", "endless"}
    assert await store.window_usage("a", now=T0 + 110, window=200) == WindowUsage(requests=1, in_flight=1)


# -- SQLite specifics ---------------------------------------------------------------------


def test_sqlite_file_is_private_versioned_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state" / "s.db"
    SQLiteStateStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_two_connections_share_one_file(tmp_path: Path) -> None:
    one, two = SQLiteStateStore(tmp_path / "s.db"), SQLiteStateStore(tmp_path / "s.db")
    try:
        record = model_down()
        await one.update_cooldown(record.key, lambda old: record)
        assert await two.cooldowns_for("anyone", "m") == [record]
        assert await two.claim_probe(record.key, now=T0 + 30, lease_until=T0 + 150)
        assert not await one.claim_probe(record.key, now=T0 + 31, lease_until=T0 + 151)
    finally:
        await one.aclose()
        await two.aclose()


# -- degrading to memory ------------------------------------------------------------------


async def test_garbage_file_is_moved_aside_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    garbage = b"this is not a database, it is a shopping list\n" * 200
    path.write_bytes(garbage)
    warnings: list[str] = []
    store = open_state_store(path, on_warning=warnings.append)
    assert isinstance(store, FallbackStateStore) and not store.degraded
    [moved] = tmp_path.glob("s.db.corrupt-*")
    assert moved.read_bytes() == garbage  # nothing lost: the user may look at it
    assert len(warnings) == 1 and str(path) in warnings[0] and str(moved) in warnings[0]
    await store.touch("a", T0)  # and the new file is shared
    other = SQLiteStateStore(path)
    assert await other.last_used() == {"a": T0}
    await other.aclose()
    await store.aclose()


async def test_damaged_pages_are_found_at_open_and_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = SQLiteStateStore(path)
    for number in range(200):
        await first.record_attempt(Attempt(T0 + number, "a", "m" * 200, None, 1.0))
    await first.aclose()
    size = path.stat().st_size
    with path.open("r+b") as raw:
        raw.seek(size // 2)  # the header is intact: SQLite opens it; only the check finds this
        raw.write(b"\xff" * 4096)
    warnings: list[str] = []
    store = open_state_store(path, on_warning=warnings.append)
    assert isinstance(store, FallbackStateStore) and not store.degraded
    assert len(list(tmp_path.glob("s.db.corrupt-*"))) == 1
    assert await store.recent_attempts() == []
    assert len(warnings) == 1 and "moved" in warnings[0]
    await store.aclose()


def test_database_from_a_newer_version_degrades_to_memory(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    warnings: list[str] = []
    assert isinstance(open_state_store(path, on_warning=warnings.append), MemoryStateStore)
    assert "newer puter-mcp" in warnings[0]


def test_unreachable_location_degrades_to_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    warnings: list[str] = []
    store = open_state_store(blocker / "s.db", on_warning=warnings.append)
    assert isinstance(store, MemoryStateStore)
    assert str(blocker / "s.db") in warnings[0]


def test_locked_new_database_degrades_to_memory(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        warnings: list[str] = []
        store = open_state_store(path, on_warning=warnings.append, busy_timeout=0.05)
        assert isinstance(store, MemoryStateStore)
        assert "locked" in warnings[0]
        assert str(path) in warnings[0]
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_lock_held_at_run_time_degrades_without_raising_and_keeps_what_it_knew(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    warnings: list[str] = []
    store = open_state_store(path, on_warning=warnings.append, busy_timeout=0.05)
    assert isinstance(store, FallbackStateStore)
    assert not store.degraded
    known = model_down()
    await store.update_cooldown(known.key, lambda old: known)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process is writing and does not let go
    try:
        added = account_cooldown(until=T0 + 10)
        assert await store.update_cooldown(added.key, lambda old: added) == added
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.degraded
    assert store.describe().startswith("memory")
    assert len(warnings) == 1
    assert str(path) in warnings[0]
    assert "locked" in warnings[0]
    assert sorted(await store.list_cooldowns(), key=repr) == sorted([known, added], key=repr)
    await store.aclose()


async def test_database_broken_at_run_time_degrades_without_raising(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    warnings: list[str] = []
    store = open_state_store(path, on_warning=warnings.append)
    await store.touch("a", T0)
    vandal = sqlite3.connect(path)
    vandal.execute("DROP TABLE slots")
    vandal.commit()
    vandal.close()
    slot = await store.acquire_slot(
        "a", slot_id="s", now=T0, window=10.5, max_requests=1, max_in_flight=1, lease_until=T0 + 900
    )
    assert isinstance(slot, Slot)
    assert len(warnings) == 1
    assert "no such table" in warnings[0]
    assert await store.last_used() == {"a": T0}
    await store.aclose()


async def test_damage_met_while_open_moves_the_file_aside_and_carries_on(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    warnings: list[str] = []
    store = open_state_store(path, on_warning=warnings.append)
    assert isinstance(store, FallbackStateStore)
    await store.touch("a", T0)
    primary = store._primary
    assert primary is not None
    # SQLite reports damage it meets mid-operation as SQLITE_CORRUPT; have the next write meet it.
    damage = sqlite3.DatabaseError("database disk image is malformed")
    damage.sqlite_errorcode = 11
    original_touch = primary.touch
    calls: list[str] = []

    async def damaged_once(account: str, now: float) -> None:
        calls.append(account)
        if len(calls) == 1:
            raise damage
        await original_touch(account, now)

    primary.touch = damaged_once  # type: ignore[method-assign]
    await store.touch("b", T0)
    assert not store.degraded  # still shared: a new file took the damaged one's place
    assert await store.last_used() == {"b": T0}
    assert calls == ["b", "b"]  # retried once, on the new file
    assert len(warnings) == 1 and str(path) in warnings[0] and "moved" in warnings[0]
    assert [p.name[-4:] for p in tmp_path.glob("s.db.corrupt-*")].count("-wal") == 1  # with its WAL
    assert len([p for p in tmp_path.glob("s.db.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]) == 1
    await store.aclose()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_a_file_deleted_or_replaced_while_open_is_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    import puter_mcp.routing.state.sqlite as state_module

    monkeypatch.setattr(state_module, "_STAT_INTERVAL", 0.0)  # check on every operation
    path = tmp_path / "s.db"
    warnings: list[str] = []
    running = SQLiteStateStore(path, on_warning=warnings.append)
    await running.touch("before", T0)
    for leftover in tmp_path.glob("s.db*"):
        leftover.unlink()
    if how == "replaced":
        SQLiteStateStore(path).close()
    started_later = SQLiteStateStore(path)  # a process started after the deletion
    record = model_down()
    await running.update_cooldown(record.key, lambda old: record)
    assert await started_later.list_cooldowns() == [record]  # they share again
    assert len(warnings) == 1 and how in warnings[0]
    await running.touch("again", T0)
    assert len(warnings) == 1  # said once
    await running.aclose()
    await started_later.aclose()


def test_check_state_file_says_ok_moved_aside_or_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    assert check_state_file(path).status == "ok"
    path.write_bytes(b"garbage" * 1000)
    moved = check_state_file(path)
    assert moved.status == "moved-aside" and "corrupt-" in moved.detail
    assert check_state_file(path).status == "ok"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    newer = check_state_file(path)
    assert newer.status == "unreadable" and "newer puter-mcp" in newer.detail


def test_unusable_location_names_the_file_in_the_way(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("x")
    warnings: list[str] = []
    open_state_store(blocker / "deeper" / "s.db", on_warning=warnings.append)
    assert f"{blocker} is a file" in warnings[0]
    assert "Move or delete" in warnings[0]


# -- keyed by origin ----------------------------------------------------------------------


async def test_each_origin_sees_only_its_own_records(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    real, emulated = SQLiteStateStore(path), SQLiteStateStore(path, origin="http://127.0.0.1:9")
    also_real = SQLiteStateStore(path, origin=DEFAULT_ORIGIN)
    try:
        record = model_down()
        await emulated.update_cooldown(record.key, lambda old: record)
        await emulated.touch("a", T0)
        await emulated.record_attempt(Attempt(T0, "a", "m", None, 1.0))
        assert isinstance(await acquire(emulated, "a", "s1", T0, max_in_flight=1), Slot)
        assert await real.list_cooldowns() == [] and await real.cooldowns_for("a", "m") == []
        assert await real.last_used() == {} and await real.recent_attempts() == []
        assert await real.window_usage("a", now=T0, window=10.5) == WindowUsage(0, 0)
        assert isinstance(await acquire(real, "a", "s2", T0, max_in_flight=1), Slot)  # its own budget
        assert not await real.claim_probe(record.key, now=T0 + 30, lease_until=T0 + 150)
        await real.update_cooldown(record.key, lambda old: record)
        assert await also_real.list_cooldowns() == [record]  # the same origin shares
        assert await emulated.delete_cooldown(record.key)
        assert await also_real.list_cooldowns() == [record]
    finally:
        for store in (real, emulated, also_real):
            await store.aclose()


async def test_a_schema_1_file_is_migrated_keeping_the_attempts(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_1)
        conn.execute(
            "INSERT INTO cooldowns VALUES ('model', '', 'm', 'model_down', 1e999, NULL, 0, '', 0, NULL)"
        )
        conn.execute(
            "INSERT INTO attempts (at, account, model, kind, latency_ms, request_id) VALUES (1, 'a', 'm', NULL, 5, 'r')"
        )
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    store = SQLiteStateStore(path, origin="")
    assert await store.list_cooldowns() == []  # unknown Puter: forgotten rather than misapplied
    assert [a.latency_ms for a in await store.recent_attempts()] == [5.0]
    await store.aclose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    conn.close()


SCHEMA_1 = """
CREATE TABLE cooldowns (scope TEXT NOT NULL, account TEXT NOT NULL, model TEXT NOT NULL, kind TEXT NOT NULL,
    until REAL NOT NULL, probe_at REAL, level INTEGER NOT NULL, reason TEXT NOT NULL, since REAL NOT NULL,
    probe_claimed_until REAL, PRIMARY KEY (scope, account, model, kind)) WITHOUT ROWID;
CREATE TABLE slots (id TEXT PRIMARY KEY, account TEXT NOT NULL, started REAL NOT NULL,
    lease_until REAL NOT NULL, released_at REAL);
CREATE TABLE last_used (account TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE attempts (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, account TEXT NOT NULL,
    model TEXT NOT NULL, kind TEXT, latency_ms REAL NOT NULL, ttft_ms REAL, input_tokens INTEGER,
    output_tokens INTEGER, cost_usd REAL, request_id TEXT NOT NULL);
"""


# -- slot owners --------------------------------------------------------------------------


async def test_slots_of_a_process_that_ended_are_free_at_once(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    run_python(
        """
        import os, sys, time
        import anyio
        from puter_mcp.routing.state import SQLiteStateStore
        store = SQLiteStateStore(sys.argv[1])
        now = time.time()
        async def take() -> None:
            for sid in ("x1", "x2"):
                await store.acquire_slot("a", slot_id=sid, now=now, window=10.5, max_requests=20,
                                         max_in_flight=2, lease_until=now + 900)
        anyio.run(take)
        os._exit(0)  # no release, no close: as if killed
        """,
        str(db),
    )
    store = SQLiteStateStore(db)
    now = time.time()
    assert await store.window_usage("a", now=now, window=10.5) == WindowUsage(requests=2, in_flight=0)
    assert isinstance(await acquire(store, "a", "mine", now, max_requests=20, max_in_flight=1), Slot)
    # The dead process's requests still count in the window: Puter counted them.
    assert await store.window_usage("a", now=now, window=10.5) == WindowUsage(requests=3, in_flight=1)
    await store.aclose()


def take_slot_on_another_host(db: Path, *, pid: int, pid_started: str | None = None) -> None:
    """Write the slot `far` of account `a`, held from T0 for 900 s by process `pid` of a host
    this one cannot look into (so only its lease can free it)."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO slots (id, origin, account, started, lease_until, host, pid, pid_started)"
            " VALUES ('far', ?, 'a', ?, ?, 'another-host', ?, ?)",
            (DEFAULT_ORIGIN, T0, T0 + 900, pid, pid_started),
        )
    conn.close()


async def test_slots_of_another_host_wait_for_their_lease(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SQLiteStateStore(db)
    take_slot_on_another_host(db, pid=999999, pid_started="1")
    refused = await acquire(store, "a", "mine", T0 + 1, max_in_flight=1)
    assert isinstance(refused, SlotRefusal) and refused.in_flight_full
    assert isinstance(await acquire(store, "a", "mine", T0 + 901, max_in_flight=1, window=0.5), Slot)
    await store.aclose()


async def test_a_process_gives_back_its_own_slots_only(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SQLiteStateStore(db)
    other = SQLiteStateStore(db, origin="http://127.0.0.1:9")
    assert isinstance(await acquire(store, "a", "s1", T0), Slot)
    assert isinstance(await acquire(other, "a", "s2", T0), Slot)
    take_slot_on_another_host(db, pid=1)
    assert release_process_slots() >= 2  # both origins (and any other store this process has open)
    assert (await store.window_usage("a", now=T0, window=10.5)).in_flight == 1
    assert (await other.window_usage("a", now=T0, window=10.5)).in_flight == 0
    await store.aclose()
    await other.aclose()


# -- several OS processes -----------------------------------------------------------------


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.slow
def test_cooldown_set_by_one_process_is_honoured_by_another(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    run_python(
        """
        import functools, sys
        import anyio
        from puter_mcp.puter.errors import FailureKind
        from puter_mcp.routing.cooldowns import CooldownBook
        from puter_mcp.routing.state import open_state_store
        store = open_state_store(sys.argv[1], on_warning=lambda m: sys.exit(m))
        book = CooldownBook(store, clock=lambda: float(sys.argv[2]))
        anyio.run(functools.partial(
            book.record_failure, FailureKind.RATE_LIMITED, account="acct", model="m", reason="429 from A"
        ))
        anyio.run(store.aclose)
        """,
        db,
        str(T0),
    )
    check = """
        import functools, json, sys
        import anyio
        from puter_mcp.routing.cooldowns import CooldownBook
        from puter_mcp.routing.state import open_state_store
        store = open_state_store(sys.argv[1], on_warning=lambda m: sys.exit(m))
        book = CooldownBook(store, clock=lambda: float(sys.argv[2]))
        v = anyio.run(functools.partial(book.check, account="acct", model=sys.argv[3]))
        print(json.dumps({"status": v.status.value, "until": v.until, "kind": v.kind, "reason": v.reason}))
    """
    during = json.loads(run_python(check, db, str(T0 + 5), "another-model").stdout)
    assert during == {"status": "blocked", "until": T0 + 10, "kind": "rate_limited", "reason": "429 from A"}
    after = json.loads(run_python(check, db, str(T0 + 10), "m").stdout)
    assert after["status"] == "eligible"


RACE_PRELUDE = """
    import functools, pathlib, sys, time
    import anyio
    folder, name = pathlib.Path(sys.argv[1]), sys.argv[2]
    def wait_for_the_start():
        (folder / f"ready-{name}").touch()
        for _ in range(2000):  # bounded: 20 s at most
            if (folder / "go").exists():
                return
            time.sleep(0.01)
    def stay_until_everyone_acted(count):
        # A racer that ended early would free its places (its process is gone) before a slower
        # one acts: the race would then measure scheduling, not the store.
        (folder / f"acted-{name}").touch()
        for _ in range(2000):  # bounded: 20 s at most
            if len(list(folder.glob("acted-*"))) >= count:
                return
            time.sleep(0.01)
"""


def race(folder: Path, script: str, count: int, *args: str) -> list[str]:
    """Run `count` processes that prepare, then act at the same moment; return their outputs."""
    names = [f"p{i}" for i in range(count)]
    code = textwrap.dedent(RACE_PRELUDE) + textwrap.dedent(script)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(folder), name, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    try:
        for _ in range(3000):  # bounded: until every racer is ready (or one died)
            if all((folder / f"ready-{n}").exists() for n in names) or any(r.poll() for r in racers):
                break
            time.sleep(0.01)
        (folder / "go").touch()
        outcomes = [r.communicate(timeout=60) for r in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
    assert [r.returncode for r in racers] == [0] * count, [err for _, err in outcomes]
    return [out.strip() for out, _ in outcomes]


@pytest.mark.slow
async def test_exactly_one_process_wins_a_probe(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SQLiteStateStore(db)
    record = model_down(probe_at=T0 + 30)
    await store.update_cooldown(record.key, lambda old: record)
    await store.aclose()
    script = """
        from puter_mcp.routing.cooldowns import CooldownBook
        from puter_mcp.routing.state import open_state_store
        store = open_state_store(sys.argv[3], on_warning=lambda m: sys.exit(m), busy_timeout=5.0)
        book = CooldownBook(store, clock=lambda: float(sys.argv[4]))
        async def main():
            verdict = await book.check(account=name, model="m")
            wait_for_the_start()  # blocks the loop on purpose: nothing else runs here
            print("won" if verdict.cooldown is not None and await book.claim_probe(verdict.cooldown) else "lost")
        anyio.run(main)
    """
    outcomes = race(tmp_path, script, 5, str(db), str(T0 + 40))
    assert sorted(outcomes) == ["lost"] * 4 + ["won"]


@pytest.mark.slow
async def test_processes_share_an_accounts_pacing_budget(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    SQLiteStateStore(db).close()
    script = """
        from puter_mcp.routing.pacing import Pacer, PacingLimits, Slot
        from puter_mcp.routing.state import open_state_store
        store = open_state_store(sys.argv[3], on_warning=lambda m: sys.exit(m), busy_timeout=5.0)
        pacer = Pacer(store, clock=lambda: float(sys.argv[4]))
        limits = PacingLimits(requests_per_window=30, max_in_flight=3)
        async def main():
            wait_for_the_start()  # blocks the loop on purpose: nothing else runs here
            print(sum([isinstance(await pacer.try_acquire("acct", limits), Slot) for _ in range(3)]))
            stay_until_everyone_acted(4)
        anyio.run(main)
    """
    granted = race(tmp_path, script, 4, str(db), str(T0))
    assert sum(int(n) for n in granted) == 3  # together, never more than the account's cap
    store = SQLiteStateStore(db)
    # The racers have ended without releasing: their requests count, their places are free.
    assert await store.window_usage("acct", now=T0, window=10.5) == WindowUsage(requests=3, in_flight=0)
    await store.aclose()
