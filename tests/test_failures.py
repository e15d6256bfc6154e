"""One refusal does not take an account out for good (docs/failures.md).

A 401 is confirmed with ``/whoami``, a 402 with ``/metering/usage``; an unconfirmed e-mail and a
session signed out elsewhere are named; every place that shows accounts says the same thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from puter_mcp.core import Backend, BackendError
from puter_mcp.core.results import CooldownInfo
from puter_mcp.core.wiring import engine_of
from puter_mcp.emulator import Fault
from puter_mcp.puter.client import PuterClient
from puter_mcp.puter.errors import FailureKind, PuterError, classify
from puter_mcp.routing.cooldowns import Scope
from puter_mcp.routing.pacing import Tier, limits_for
from puter_mcp.routing.router import RoutingFailed
from puter_mcp.settings import RoutingSettings, TimeoutSettings
from puter_mcp.wording import describe_error
from tests.helpers import (
    MODEL,
    T0,
    Emulator,
    Setup,
    Upstream,
    accounts,
    ask,
    backend_for,
    by_name,
    make_rig,
)

pytestmark = pytest.mark.anyio


async def account_cooldowns(backend: Backend) -> list[tuple[Scope, FailureKind]]:
    return [(c.scope, c.kind) for c in await engine_of(backend).book.snapshot() if c.account is not None]


# --- 401 -------------------------------------------------------------------------------------


async def test_a_passing_401_on_the_environment_account_does_not_sign_it_out(
    emulator: Emulator, home: Path
) -> None:
    async with backend_for(emulator, home, env_token=emulator.paid.token) as (backend, _clock):
        emulator.state.add_fault(Fault.TOKEN_AUTH_FAILED, times=1)  # a proxy's hiccup
        outcome = await backend.chat(ask())
        # /whoami accepted the token: the same account answered (with the next model), and
        # only the pair that saw the 401 rests for a moment.
        assert outcome.account == "env"
        assert await account_cooldowns(backend) == [(Scope.ACCOUNT_MODEL, FailureKind.TRANSPORT)]
        overview = await backend.accounts_overview()
        assert [a.state for a in overview.accounts] == ["active"]
        again = await backend.chat(ask(model="gpt-5-mini"))
        assert again.account == "env"


async def test_a_revoked_session_stays_out_until_it_works_again(emulator: Emulator, home: Path) -> None:
    async with backend_for(emulator, home, emulator.paid) as (backend, clock):
        emulator.state.revoke_session(emulator.paid.username)
        with pytest.raises(BackendError) as caught:
            await backend.chat(ask())
        assert caught.value.kind is FailureKind.AUTH
        assert "this session was signed out elsewhere; sign in again" in str(caught.value)
        overview = await backend.accounts_overview()
        (status,) = overview.accounts
        assert status.state == "sign-in-again"
        assert "signed out elsewhere" in status.detail

        emulator.state.revoke_session(emulator.paid.username, revoked=False)  # works again
        clock.advance(engine_of(backend).book.policy.credit_recheck)  # the next check of its token is due
        outcome = await backend.chat(ask())
        assert outcome.account == emulator.paid.username
        assert "account-check" in [a.outcome for a in outcome.attempts]


async def test_status_lifts_a_sign_in_refusal_as_soon_as_whoami_accepts_the_token(
    emulator: Emulator, home: Path
) -> None:
    async with backend_for(emulator, home, emulator.paid) as (backend, _clock):
        emulator.state.revoke_session(emulator.paid.username)
        with pytest.raises(BackendError):
            await backend.chat(ask())
        emulator.state.revoke_session(emulator.paid.username, revoked=False)
        overview = await backend.accounts_overview()
        assert [a.state for a in overview.accounts] == ["active"]
        assert (await backend.chat(ask())).account == emulator.paid.username


# --- 402 -------------------------------------------------------------------------------------


async def test_a_402_on_an_account_with_credit_sets_aside_only_that_model(
    emulator: Emulator, home: Path
) -> None:
    async with backend_for(emulator, home, emulator.paid) as (backend, _clock):
        emulator.state.add_fault(Fault.INSUFFICIENT_FUNDS, model=MODEL, times=1)
        outcome = await backend.chat(ask())
        assert outcome.account == emulator.paid.username  # another model, same account
        assert await account_cooldowns(backend) == [(Scope.ACCOUNT_MODEL, FailureKind.OUT_OF_CREDITS)]
        assert (await backend.chat(ask(model="gpt-5-mini"))).account == emulator.paid.username


async def test_an_empty_account_cools_down_and_comes_back_when_usage_shows_credit(
    emulator: Emulator, home: Path
) -> None:
    async with backend_for(emulator, home, emulator.paid, emulator.free) as (backend, _clock):
        emulator.state.set_credits(emulator.paid.username, 0)
        outcome = await backend.chat(ask())
        assert outcome.account == emulator.free.username
        assert await account_cooldowns(backend) == [(Scope.ACCOUNT, FailureKind.OUT_OF_CREDITS)]

        emulator.state.set_credits(emulator.paid.username, 5)
        overview = await backend.accounts_overview()  # reads /metering/usage: credit again
        assert [a.state for a in overview.accounts] == ["active", "active"]
        assert (await backend.chat(ask())).account == emulator.paid.username


async def test_concurrent_credit_checks_of_one_account_share_one_request(
    emulator: Emulator, home: Path
) -> None:
    async with backend_for(emulator, home, emulator.paid) as (backend, _clock):
        (account,) = engine_of(backend).routable_accounts()
        emulator.state.clear_requests()
        answers: list[bool] = []

        async def check() -> None:
            answers.append(await engine_of(backend).accounts.has_credit(account))

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(check)
    assert answers == [True] * 5
    assert [r.path for r in emulator.state.requests] == ["/metering/usage"]


async def test_a_call_that_finds_a_probe_in_progress_waits_for_its_result() -> None:
    rig = make_rig()
    await rig.book.record_failure(FailureKind.MODEL_DOWN, account="id-a", model="m")
    rig.clock.advance(40)  # the probe is due
    release = anyio.Event()
    upstream = Upstream()

    async def slow_probe(model: str, account: Any) -> str:
        await release.wait()
        return await upstream(model, account)

    results: list[str] = []

    async def first() -> None:
        results.append((await rig.router.route(["m"], accounts("a"), slow_probe)).value)

    async def second() -> None:
        results.append((await rig.router.route(["m"], accounts("a"), upstream)).value)

    async with anyio.create_task_group() as group:
        group.start_soon(first)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(second)  # finds the probe claimed: must not fail with the lease
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert len(results) == 2
    assert rig.sleeper.calls == []  # no cooldown wait: the probe's answer freed the model


async def test_a_probe_wait_gives_up_when_the_prober_never_reports() -> None:
    rig = make_rig(max_wait=0.2)
    await rig.book.record_failure(FailureKind.MODEL_DOWN, account="id-a", model="m")
    rig.clock.advance(40)
    cooldown = (await rig.book.check(account="id-a", model="m")).cooldown
    assert cooldown is not None and await rig.book.claim_probe(cooldown)  # a process that then died
    upstream = Upstream()
    with pytest.raises(RoutingFailed) as caught:
        await rig.router.route(["m"], accounts("a"), upstream)
    assert caught.value.retry_at == pytest.approx(T0 + 40 + rig.book.policy.probe_lease)
    assert upstream.calls == []


# --- 403 email_confirmation_required --------------------------------------------------------


async def test_an_unconfirmed_email_is_its_own_kind_and_says_where_to_confirm(
    emulator: Emulator, home: Path
) -> None:
    emulator.paid.email_confirmed = False
    async with backend_for(emulator, home, emulator.paid) as (backend, _clock):
        with pytest.raises(BackendError) as caught:
            await backend.chat(ask())
        assert caught.value.kind is FailureKind.EMAIL_UNCONFIRMED
        message = str(caught.value)
        host = emulator.url.split("://", 1)[1]
        assert f"confirm it at {host}" in message
        assert "login" not in message.split("Tried:")[0]  # signing in again would not help
        overview = await backend.accounts_overview()
        (status,) = overview.accounts
        assert status.state == "confirm-email"
        assert f"confirm it at {host}" in status.detail


# --- tiers, deadlines, hints -----------------------------------------------------------------


async def test_the_environment_account_is_paced_at_its_real_tier(emulator: Emulator, home: Path) -> None:
    async with backend_for(emulator, home, env_token=emulator.paid.token) as (backend, _clock):
        assert engine_of(backend).routable_accounts()[0].limits == limits_for(Tier.UNKNOWN)
        await backend.chat(ask())
        assert engine_of(backend).routable_accounts()[0].limits == limits_for(Tier.PAID)


async def test_a_stream_cut_by_the_deadline_keeps_its_partial_text(emulator: Emulator, home: Path) -> None:
    slow = TimeoutSettings(connect=5.0, first_byte=5.0, idle=30.0, total=60.0)
    routing = RoutingSettings(strategy="fill-first", deadline=1.0)
    async with backend_for(emulator, home, emulator.paid, routing=routing, timeouts=slow) as (backend, _):
        emulator.state.add_fault(Fault.STALL_MID_STREAM, model=MODEL, times=1, seconds=30.0, after_lines=2)
        with pytest.raises(BackendError) as caught:
            await backend.chat(ask())
    assert caught.value.partial_text
    assert "Partial answer received before the failure:\n" + caught.value.partial_text in str(caught.value)


async def test_without_an_account_the_error_offers_the_sandbox(emulator: Emulator, home: Path) -> None:
    async with backend_for(emulator, home) as (backend, _clock):
        with pytest.raises(BackendError) as caught:
            await backend.chat(ask())
    assert "`--sandbox`" in describe_error(caught.value)
    assert "puter-mcp login" in describe_error(caught.value)


def test_a_cooldown_without_an_end_does_not_say_until_twice() -> None:
    info = CooldownInfo(scope="model", model="m", kind="model_down", until=None)
    assert info.describe() == "m: model_down until further notice"
    assert (
        CooldownInfo(scope="model", model="m", kind="model_down", until=0)
        .describe()
        .startswith("m: model_down until 00:00:00")
    )


# --- what Puter answers ----------------------------------------------------------------------


def test_a_revoked_session_is_named() -> None:
    body = {
        "error": "x",
        "code": "reauth_required",
        "message": "Please sign in.",
        "reason": "session_revoked",
    }
    kind, _code, message = classify(401, body)
    assert kind is FailureKind.AUTH
    assert message == "this session was signed out elsewhere; sign in again"
    assert classify(401, {**body, "reason": "token_format"})[2] == "Please sign in."


def test_email_confirmation_required_is_not_a_sign_in_problem() -> None:
    kind, code, _message = classify(403, {"code": "email_confirmation_required", "message": "Confirm."})
    assert (kind, code) == (FailureKind.EMAIL_UNCONFIRMED, "email_confirmation_required")


async def test_an_origin_that_redirects_to_its_home_page_is_named_as_not_a_puter_api() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(302, headers={"Location": "/"})

    client = PuterClient(
        "https://example.org", http=httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    )
    async with client:
        for call in (client.models(), client.whoami("a-token-of-some-length")):
            with pytest.raises(PuterError) as caught:
                await call
            assert caught.value.message == (
                "https://example.org does not look like a Puter API (it redirects to /); check `api_origin`."
            )
            assert "302" not in caught.value.message


@pytest.mark.anyio
async def test_doctor_reports_an_unconfirmed_email_with_the_same_words_as_status(
    setup: Setup,
) -> None:
    setup.emulator.free.email_confirmed = False
    report = await setup.check()
    check = by_name(report)["account free_user"]
    assert check.status == "fail"
    host = setup.emulator.url.split("://", 1)[1]
    assert check.detail.startswith("confirm-email: ")
    assert check.fix is not None and f"confirm it at {host}" in check.fix.lower()
    assert "1 of 2" in by_name(report)["usable accounts"].detail
    # `status` says the same thing about it.
    async with Backend.create(setup.settings, setup.paths, env={}) as backend:
        states = {a.name: (a.state, a.detail) for a in (await backend.accounts_overview()).accounts}
    state, detail = states["free_user"]
    assert state == "confirm-email"
    assert check.fix.rstrip(".").lower() in detail.lower()


@pytest.mark.anyio
async def test_doctor_and_status_agree_on_a_revoked_session(
    setup: Setup,
) -> None:
    setup.emulator.state.revoke_session(setup.emulator.free.username)
    report = await setup.check()
    check = by_name(report)["account free_user"]
    assert check.status == "fail"
    assert check.detail.startswith("sign-in-again: ")
    assert "signed out elsewhere" in check.detail
    async with Backend.create(setup.settings, setup.paths, env={}) as backend:
        states = {a.name: a.state for a in (await backend.accounts_overview()).accounts}
    assert states == {"paid_user": "active", "free_user": "sign-in-again"}
