"""Puter's per-tier limits in the emulator: the rolling 10 s request window (per driver
method) and the cap on requests in flight, driven by a manual clock.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import httpx2
import pytest

from puter_mcp.emulator import TIER_LIMITS, EmulatorState, Fault, Tier
from puter_mcp.emulator.testing import ManualClock, chat_body, driver_body

pytestmark = pytest.mark.anyio

USERS = {Tier.PAID: "paid_user", Tier.FREE: "free_user", Tier.TEMP: "temp_user"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def state(clock: ManualClock) -> EmulatorState:
    emulator = EmulatorState(clock=clock, seed=3)
    emulator.seed_default_accounts()
    return emulator


def headers(state: EmulatorState, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {state.accounts[username].token}"}


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for the server, running in this event loop, to reach a state."""
    for _ in range(500):
        if condition():
            return
        await anyio.sleep(0.01)
    raise AssertionError("condition never became true")


def test_tier_limits_match_puter() -> None:
    assert {tier: (lim.requests_per_window, lim.in_flight) for tier, lim in TIER_LIMITS.items()} == {
        Tier.PAID: (200, 20),
        Tier.FREE: (30, 3),
        Tier.TEMP: (20, 2),
    }


@pytest.mark.parametrize("tier", list(Tier))
async def test_request_window_per_tier_and_per_method(
    client: httpx2.AsyncClient, state: EmulatorState, clock: ManualClock, tier: Tier
) -> None:
    username = USERS[tier]
    limit = TIER_LIMITS[tier].requests_per_window
    for _ in range(limit):
        response = await client.post(
            "/drivers/call", json=driver_body("list"), headers=headers(state, username)
        )
        assert response.status_code == 200
    refused = await client.post("/drivers/call", json=driver_body("list"), headers=headers(state, username))
    assert refused.status_code == 429
    assert refused.json()["code"] == "too_many_requests"
    assert refused.json()["message"] == "Too many requests."
    assert "retry-after" not in refused.headers
    assert state.window_count(username, "list") == limit  # the 429 spent no slot
    # Another driver method has its own window.
    other = await client.post("/drivers/call", json=chat_body("gpt-5-nano"), headers=headers(state, username))
    assert other.status_code == 200
    # The window rolls.
    clock.advance(9.9)
    blocked = await client.post("/drivers/call", json=driver_body("list"), headers=headers(state, username))
    assert blocked.status_code == 429
    clock.advance(0.2)
    again = await client.post("/drivers/call", json=driver_body("list"), headers=headers(state, username))
    assert again.status_code == 200


async def test_refused_requests_still_spend_a_slot(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    limit = TIER_LIMITS[Tier.TEMP].requests_per_window
    for _ in range(limit):
        response = await client.post(
            "/drivers/call", json=chat_body("no-such-model"), headers=headers(state, "temp_user")
        )
        assert response.status_code == 400
    response = await client.post(
        "/drivers/call", json=chat_body("gpt-5-nano"), headers=headers(state, "temp_user")
    )
    assert response.status_code == 429
    # Requests refused at the token check are not counted at all.
    for _ in range(3):
        assert (await client.post("/drivers/call", json=chat_body("gpt-5-nano"))).status_code == 401
    assert state.window_count("temp_user") == limit


@pytest.mark.parametrize("tier", list(Tier))
async def test_in_flight_cap_per_tier(client: httpx2.AsyncClient, state: EmulatorState, tier: Tier) -> None:
    username = USERS[tier]
    cap = TIER_LIMITS[tier].in_flight
    state.add_fault(Fault.STALL_BEFORE_HEADERS, account=username, times=None, seconds=30)

    async def held() -> None:
        await client.post("/drivers/call", json=chat_body("gpt-5-nano"), headers=headers(state, username))

    async with anyio.create_task_group() as group:
        for _ in range(cap):
            group.start_soon(held)
        await eventually(lambda: state.in_flight(username) == cap)
        refused = await client.post(
            "/drivers/call", json=chat_body("gpt-5-nano"), headers=headers(state, username)
        )
        assert refused.status_code == 429
        assert refused.json() == {
            "error": "Too many concurrent requests.",
            "message": "Too many concurrent requests.",
            "code": "too_many_requests",
        }
        assert state.window_count(username) == cap  # the refused one spent no slot
        group.cancel_scope.cancel()  # the clients give up; the emulator must notice

    await eventually(lambda: state.in_flight(username) == 0)
    state.clear_faults()
    response = await client.post(
        "/drivers/call", json=chat_body("gpt-5-nano"), headers=headers(state, username)
    )
    assert response.status_code == 200
    assert state.in_flight(username) == 0


async def test_a_stream_abandoned_mid_way_frees_its_slot(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    state.add_fault(Fault.STALL_MID_STREAM, seconds=30, after_lines=1)
    body = chat_body("gpt-5-nano", stream=True)
    async with client.stream(
        "POST", "/drivers/call", json=body, headers=headers(state, "free_user")
    ) as response:
        assert response.status_code == 200
        await anext(response.aiter_lines())
        assert state.in_flight("free_user") == 1
    await eventually(lambda: state.in_flight("free_user") == 0)


def test_a_scripted_429_spends_no_slot_in_the_window() -> None:
    """Puter does not count a request it refuses with 429; the emulator's scripted ones neither."""
    import httpx2

    from puter_mcp.emulator import EmulatorState, EmulatorThread, Fault
    from puter_mcp.emulator.testing import chat_body

    state = EmulatorState(seed=3)
    account = state.add_account("limited", tier="temp")
    state.add_fault(Fault.TOO_MANY_REQUESTS, account="limited", times=5)
    with EmulatorThread(state) as url:
        headers = {"Authorization": f"Bearer {account.token}"}
        statuses = [
            httpx2.post(
                f"{url}/drivers/call", json=chat_body("gpt-5-nano", "hi"), headers=headers
            ).status_code
            for _ in range(6)
        ]
    assert statuses == [429] * 5 + [200]
    assert state.window_count("limited") == 1
