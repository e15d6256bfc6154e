"""The SQLite store finds the places held (running slots and settling ones) through the index
`slots_holding`, which a file made before the index gets when it is opened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from puter_mcp.routing.state import Slot, SlotRefusal, SQLiteStateStore
from puter_mcp.routing.state.sqlite import _SELECT_HOLDING

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
WINDOW = 10.5


def _indexes(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


async def test_a_file_without_the_index_gets_it_and_the_holding_query_uses_it(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStateStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX slots_holding")  # a file made by a puter-mcp without it
    assert "slots_holding" not in _indexes(path)
    store = SQLiteStateStore(path)
    try:
        assert "slots_holding" in _indexes(path)
        plan = store._read("EXPLAIN QUERY PLAN " + _SELECT_HOLDING, ("", "a", T0, "", "a", T0, T0))
        details = [str(row[-1]) for row in plan]
        assert sum("USING INDEX slots_holding" in d for d in details) == 2, details
    finally:
        store.close()


async def _take(store: SQLiteStateStore, slot_id: str, now: float) -> Slot | SlotRefusal:
    return await store.acquire_slot(
        "a",
        slot_id=slot_id,
        now=now,
        window=WINDOW,
        max_requests=1000,
        max_in_flight=2,
        lease_until=now + 900,
    )


async def test_running_and_settling_slots_hold_places_among_a_long_history(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "s.db")
    try:
        # Five hundred finished requests of the last minute: none of them holds a place.
        for number in range(500):
            at = T0 - 60 + number * 0.1
            assert isinstance(await _take(store, f"old{number}", at), Slot)
            await store.release_slot(f"old{number}", now=at + 0.05, counted=True)
        now = T0 + 1
        assert isinstance(await _take(store, "running", now), Slot)
        assert isinstance(await _take(store, "settling", now), Slot)
        await store.release_slot("settling", now=now + 0.5, counted=True)  # frees at now + 0.5
        refused = await _take(store, "third", now + 0.1)
        assert isinstance(refused, SlotRefusal)
        assert refused.in_flight_full and refused.settled_at == now + 0.5
        usage = await store.window_usage("a", now=now + 0.1, window=WINDOW)
        assert usage.in_flight == 1  # the settling one has answered: not running to a person
        assert isinstance(await _take(store, "fourth", now + 0.6), Slot)
        assert isinstance(await _take(store, "fifth", now + 0.7), SlotRefusal)  # running + fourth
    finally:
        store.close()
