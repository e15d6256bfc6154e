"""Per-account pacing with an injected clock: no test sleeps."""

from __future__ import annotations

import math

import pytest

from puter_mcp.routing.pacing import (
    Pacer,
    PacingLimits,
    Slot,
    Tier,
    WindowUsage,
    limits_for,
)
from puter_mcp.routing.state import StateStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pacer(store: StateStore, clock: Clock) -> Pacer:
    return Pacer(store, clock=clock, lease_ttl=900.0, in_flight_hint=0.25, release_settle=0.0)


def slot_of(result: Slot | float) -> Slot:
    assert isinstance(result, Slot), f"expected a slot, got a wait of {result}"
    return result


def wait_of(result: Slot | float) -> float:
    assert isinstance(result, float), f"expected a wait, got {result}"
    return result


# -- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "per_window", "in_flight"),
    [(Tier.PAID, 200, 20), (Tier.FREE, 30, 3), (Tier.TEMP, 20, 2), (Tier.UNKNOWN, 20, 2)],
)
def test_limits_follow_puters_table_and_assume_the_lowest_when_unsure(
    tier: Tier, per_window: int, in_flight: int
) -> None:
    limits = limits_for(tier)
    assert (limits.requests_per_window, limits.max_in_flight) == (per_window, in_flight)
    assert limits.window_seconds == 10.0
    assert limits.counting_window > 10.0  # counted over a longer window than Puter's


def test_tier_names_match_the_account_records() -> None:
    assert {t.value for t in Tier} == {"paid", "free", "temp", "unknown"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"requests_per_window": 0, "max_in_flight": 1},
        {"requests_per_window": 1, "max_in_flight": 0},
        {"requests_per_window": 1, "max_in_flight": 1, "window_seconds": 0},
        {"requests_per_window": 1, "max_in_flight": 1, "safety_margin": -1},
    ],
)
def test_limits_that_allow_nothing_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="pacing"):
        PacingLimits(**kwargs)  # type: ignore[arg-type]


# -- acquiring and releasing --------------------------------------------------------------


async def test_in_flight_cap_then_release(pacer: Pacer, clock: Clock) -> None:
    limits = limits_for(Tier.TEMP)
    first = slot_of(await pacer.try_acquire("a", limits))
    slot_of(await pacer.try_acquire("a", limits))
    assert await pacer.try_acquire("a", limits) == 0.25  # only a hint: when a request ends is unknown
    slot_of(await pacer.try_acquire("b", limits))  # the next account is free
    clock.now += 1
    await pacer.release(first)
    assert await pacer.usage("a", limits) == WindowUsage(requests=2, in_flight=1)
    slot_of(await pacer.try_acquire("a", limits))


async def test_a_finished_request_keeps_its_place_while_puter_catches_up(
    store: StateStore, clock: Clock
) -> None:
    pacer = Pacer(store, clock=clock, release_settle=0.05)
    limits = limits_for(Tier.TEMP)
    first = slot_of(await pacer.try_acquire("a", limits))
    slot_of(await pacer.try_acquire("a", limits))
    await pacer.release(first)
    # Puter has not freed its place yet, so pacing still counts it ...
    assert await pacer.try_acquire("a", limits) == pytest.approx(0.05)  # exactly when it will be
    # ... but the request has finished: a status display does not call it in flight.
    assert (await pacer.usage("a", limits)).in_flight == 1
    clock.now += 0.06
    assert (await pacer.usage("a", limits)).in_flight == 1
    slot_of(await pacer.try_acquire("a", limits))


async def test_a_finished_request_is_not_shown_in_flight(store: StateStore, clock: Clock) -> None:
    pacer = Pacer(store, clock=clock)
    limits = limits_for(Tier.TEMP)
    slot = slot_of(await pacer.try_acquire("a", limits))
    assert await pacer.usage("a", limits) == WindowUsage(requests=1, in_flight=1)
    await pacer.release(slot)
    assert await pacer.usage("a", limits) == WindowUsage(requests=1, in_flight=0)  # at the same instant


async def test_a_refused_request_gives_its_place_back_at_once(store: StateStore, clock: Clock) -> None:
    pacer = Pacer(store, clock=clock, release_settle=0.05)
    limits = limits_for(Tier.TEMP)
    first = slot_of(await pacer.try_acquire("a", limits))
    slot_of(await pacer.try_acquire("a", limits))
    await pacer.release(first, counted=False)
    slot_of(await pacer.try_acquire("a", limits))


async def test_full_window_answers_exactly_when_the_oldest_leaves(pacer: Pacer, clock: Clock) -> None:
    limits = PacingLimits(requests_per_window=3, max_in_flight=10)
    for _ in range(3):
        await pacer.release(slot_of(await pacer.try_acquire("a", limits)))
        clock.now += 2.0
    wait = await pacer.try_acquire("a", limits)
    assert wait == pytest.approx(limits.counting_window - 6.0)
    assert isinstance(wait, float)
    clock.now = math.nextafter(T0 + limits.counting_window, 0)
    assert isinstance(await pacer.try_acquire("a", limits), float)
    clock.now = T0 + limits.counting_window
    slot_of(await pacer.try_acquire("a", limits))


async def test_full_window_and_full_in_flight_give_the_longer_wait(pacer: Pacer, clock: Clock) -> None:
    limits = PacingLimits(requests_per_window=2, max_in_flight=2)
    slot_of(await pacer.try_acquire("a", limits))
    slot_of(await pacer.try_acquire("a", limits))
    assert await pacer.try_acquire("a", limits) == pytest.approx(limits.counting_window)


async def test_a_request_refused_with_429_is_given_back(pacer: Pacer) -> None:
    limits = PacingLimits(requests_per_window=1, max_in_flight=1)
    await pacer.release(slot_of(await pacer.try_acquire("a", limits)), counted=False)
    assert await pacer.usage("a", limits) == WindowUsage(0, 0)
    slot_of(await pacer.try_acquire("a", limits))


async def test_lease_ends_a_slot_its_process_never_released(pacer: Pacer, clock: Clock) -> None:
    limits = limits_for(Tier.TEMP)
    slot_of(await pacer.try_acquire("a", limits))
    slot_of(await pacer.try_acquire("a", limits))
    clock.now += 899.0
    assert isinstance(await pacer.try_acquire("a", limits), float)
    clock.now += 1.0
    slot_of(await pacer.try_acquire("a", limits))


# -- spreading a burst --------------------------------------------------------------------


async def test_a_burst_spreads_over_accounts_and_queues_only_when_all_are_full(
    pacer: Pacer, store: StateStore
) -> None:
    """The selection the router does: least recently used account first, first free slot."""
    accounts = ["a", "b", "c"]
    limits = limits_for(Tier.TEMP)  # 2 in flight each
    taken: list[str] = []
    waits: list[float] = []
    for _ in range(7):
        last = await store.last_used()
        for account in sorted(accounts, key=lambda acc: (last.get(acc, 0.0), acc)):
            result = await pacer.try_acquire(account, limits)
            if isinstance(result, Slot):
                taken.append(result.account)
                break
        else:
            waits.append(min([wait_of(await pacer.try_acquire(acc, limits)) for acc in accounts]))
    assert len(set(taken[:3])) == 3  # the first three requests went to three accounts
    assert sorted(taken) == ["a", "a", "b", "b", "c", "c"]
    assert waits == [0.25]  # the seventh queues: every account is at its cap
