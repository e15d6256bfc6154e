"""A subscriber-only model is not sent to accounts whose tier cannot use it (Puter answers 403)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from puter_mcp.core import BackendError
from puter_mcp.puter.errors import FailureKind
from puter_mcp.routing.pacing import Tier
from puter_mcp.settings import RoutingSettings
from tests.helpers import Emulator, Upstream, accounts, ask, backend_for, make_rig

pytestmark = pytest.mark.anyio

SUBSCRIBERS_ONLY = "claude-opus-5"  # `subscriberOnly` in the emulator's catalogue


async def test_free_and_temporary_accounts_are_skipped_without_a_request(
    emulator: Emulator, home: Path
) -> None:
    saved = (emulator.free, emulator.temp, emulator.paid)
    async with backend_for(emulator, home, *saved, routing=RoutingSettings(strategy="round-robin")) as (
        backend,
        _,
    ):
        emulator.state.clear_requests()
        for _ in range(3):  # round-robin starts each call on another account
            outcome = await backend.chat(ask(model=SUBSCRIBERS_ONLY))
            assert outcome.account == emulator.paid.username
    assert [(r.username, r.model) for r in emulator.chat_requests()] == [
        (emulator.paid.username, SUBSCRIBERS_ONLY)
    ] * 3


async def test_without_a_subscribed_account_the_error_says_why_and_nothing_is_sent(
    emulator: Emulator, home: Path
) -> None:
    async with backend_for(emulator, home, emulator.free, emulator.temp) as (backend, _):
        emulator.state.clear_requests()
        with pytest.raises(BackendError) as failed:
            await backend.chat(ask(model=SUBSCRIBERS_ONLY, fallback=False))
    assert failed.value.kind is FailureKind.MODEL_FORBIDDEN
    assert "paying subscribers" in str(failed.value)
    assert emulator.chat_requests() == []


async def test_only_a_known_free_or_temporary_tier_is_skipped() -> None:
    rig = make_rig()
    free, unknown, temp = (
        replace(account, tier=tier)
        for account, tier in zip(
            accounts("free", "unknown", "temp"), (Tier.FREE, Tier.UNKNOWN, Tier.TEMP), strict=True
        )
    )
    upstream = Upstream()
    routed = await rig.router.route(
        ["opus", "mini"], [free, unknown, temp], upstream, subscriber_only={"opus"}
    )
    assert upstream.calls == [("opus", "unknown")]
    assert routed.account.name == "unknown"
    # Without a candidate tier, the next model is used without any 403 first.
    upstream.calls.clear()
    routed = await rig.router.route(["opus", "mini"], [free, temp], upstream, subscriber_only={"opus"})
    assert upstream.calls == [("mini", "free")]
    assert routed.passed_over == {"opus": ["model_forbidden"]}
