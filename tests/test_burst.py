"""A burst of concurrent chats over three tier-capped emulator accounts.

The product paces each account below Puter's limits (requests per 10 s and in flight, by
tier), so a burst far above one account's in-flight cap is answered in full without a single
429 from the emulator, which enforces the same limits as Puter: when every account is at its
cap the request queues for a slot instead of failing or being refused upstream.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from puter_mcp.core import Backend, ChatCall, ChatOutcome
from puter_mcp.core.wiring import engine_of
from puter_mcp.emulator import TIER_LIMITS, Tier
from puter_mcp.routing.router import Strategy
from puter_mcp.settings import RoutingSettings
from tests.helpers import Emulator, save_accounts, settings_for

pytestmark = pytest.mark.anyio

CALLS = 60
MODEL = "gpt-5-nano"


def expected_text(model_id: str, prompt: str) -> str:
    return f'[{model_id}] You said: "{prompt}". This deterministic answer comes from the Puter emulator.'


@pytest.mark.parametrize("strategy", ["round-robin", "least-recently-used", "fill-first"])
async def test_a_burst_is_answered_in_full_without_a_single_429(
    emulator: Emulator, home: Path, strategy: Strategy
) -> None:
    state = emulator.state
    second_free = state.add_account("free_two", tier=Tier.FREE)
    accounts = [emulator.free, second_free, emulator.temp]  # caps 30/3, 30/3, 20/2
    caps = {account.username: TIER_LIMITS[account.tier].in_flight for account in accounts}
    state.stream_delay = 0.01  # every answer takes several lines' worth of time: calls overlap
    settings, paths = settings_for(emulator, home, routing=RoutingSettings(strategy=strategy))
    save_accounts(paths, *accounts)

    peak = dict.fromkeys(caps, 0)
    outcomes: dict[int, ChatOutcome] = {}

    async with Backend.create(settings, paths, env={}) as backend:
        model_id = (await engine_of(backend).catalogue()).find(MODEL)
        assert model_id is not None

        async def one(index: int) -> None:
            call = ChatCall.build(message=f"burst {index}", model=MODEL, fallback=False)
            outcomes[index] = await backend.chat(call)

        async def watch(done: anyio.Event) -> None:
            while not done.is_set():
                for name in caps:
                    peak[name] = max(peak[name], state.in_flight(name))
                await anyio.sleep(0.002)

        done = anyio.Event()
        with anyio.fail_after(30):
            async with anyio.create_task_group() as watcher:
                watcher.start_soon(watch, done)
                async with anyio.create_task_group() as burst:
                    for index in range(CALLS):
                        burst.start_soon(one, index)
                done.set()

    assert sorted(outcomes) == list(range(CALLS))
    for index, outcome in outcomes.items():
        assert outcome.text == expected_text(model_id.id, f"burst {index}")
        assert [a.outcome for a in outcome.attempts] == ["ok"]  # no retry was needed
    requests = emulator.chat_requests()
    assert [r.status for r in requests].count(429) == 0
    assert len(requests) == CALLS
    served = {name: sum(1 for r in requests if r.username == name) for name in caps}
    assert all(count > 0 for count in served.values()), served  # the load spread over all three
    assert sum(1 for o in outcomes.values() if o.waited_s > 0) > 0  # some calls queued for a slot
    assert all(peak[name] <= caps[name] for name in caps), peak
    assert sum(peak.values()) > 1  # the calls really overlapped upstream
