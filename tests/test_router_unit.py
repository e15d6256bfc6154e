"""The Router on its own: plain async functions as `send`, an injected clock and sleep, memory state.

No sockets and no real waiting except where a test says so (pacing wakes, cancellation):
the clock only moves when a test or the fake `sleep` moves it, so every cooldown length and
retry time below is exact.
"""

from __future__ import annotations

import anyio
import pytest

from puter_mcp.puter.errors import FailureKind, PuterError
from puter_mcp.routing.cooldowns import CooldownPolicy, Scope
from puter_mcp.routing.pacing import PacingLimits
from puter_mcp.routing.router import AccountRef, RoutingFailed
from puter_mcp.routing.state import Attempt
from tests.helpers import ROOMY, T0, Call, Upstream, accounts, make_rig

pytestmark = pytest.mark.anyio


def fail(kind: FailureKind, message: str = "scripted", *, partial: str = "") -> PuterError:
    return PuterError(kind, message, partial_text=partial)


# --- strategies --------------------------------------------------------------------------------


async def test_round_robin_rotates_over_the_accounts() -> None:
    rig = make_rig(strategy="round-robin")
    upstream = Upstream()
    pool = accounts("a", "b", "c")
    answered = [(await rig.router.route(["m"], pool, upstream)).account.name for _ in range(4)]
    assert answered == ["a", "b", "c", "a"]
    assert rig.sleeper.calls == []


async def test_round_robin_moves_on_once_per_call_whatever_the_retries() -> None:
    rig = make_rig(strategy="round-robin")
    upstream = Upstream({("m", "a"): [fail(FailureKind.TRANSPORT)]})
    pool = accounts("a", "b", "c")
    first = await rig.router.route(["m"], pool, upstream)  # a fails, b answers
    second = await rig.router.route(["m"], pool, upstream)  # the next call starts at b
    assert (first.account.name, second.account.name) == ("b", "b")
    assert upstream.calls == [("m", "a"), ("m", "b"), ("m", "b")]


async def test_least_recently_used_picks_the_account_idle_longest() -> None:
    rig = make_rig(strategy="least-recently-used")
    pool = accounts("a", "b", "c")
    await rig.store.touch("id-a", T0 - 10)
    await rig.store.touch("id-b", T0 - 30)
    await rig.store.touch("id-c", T0 - 20)
    upstream = Upstream()
    answered: list[str] = []
    for _ in range(4):
        rig.clock.advance(1)
        answered.append((await rig.router.route(["m"], pool, upstream)).account.name)
    # b was idle longest, then c, then a; then b again (used longest ago of the three).
    assert answered == ["b", "c", "a", "b"]


async def test_fill_first_sticks_to_the_first_account_until_it_fails() -> None:
    rig = make_rig(strategy="fill-first")
    pool = accounts("a", "b", "c")
    upstream = Upstream()
    first = await rig.router.route(["m"], pool, upstream)
    second = await rig.router.route(["m"], pool, upstream)
    assert (first.account.name, second.account.name) == ("a", "a")
    upstream.script[("m", "a")] = [fail(FailureKind.RATE_LIMITED)]
    third = await rig.router.route(["m"], pool, upstream)
    assert third.account.name == "b"  # a is rate-limited now
    assert upstream.calls == [("m", "a"), ("m", "a"), ("m", "a"), ("m", "b")]
    rig.clock.advance(11)  # the first rate-limit step is 10 s
    assert (await rig.router.route(["m"], pool, upstream)).account.name == "a"


# --- what a failure moves on to ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "scope", "next_call"),
    [
        (FailureKind.RATE_LIMITED, Scope.ACCOUNT, ("m1", "b")),
        (FailureKind.OUT_OF_CREDITS, Scope.ACCOUNT, ("m1", "b")),
        (FailureKind.AUTH, Scope.ACCOUNT, ("m1", "b")),
        (FailureKind.MODEL_FORBIDDEN, Scope.ACCOUNT_MODEL, ("m1", "b")),
        (FailureKind.TRANSPORT, Scope.ACCOUNT_MODEL, ("m1", "b")),
        (FailureKind.MODEL_DOWN, Scope.MODEL, ("m2", "a")),
        (FailureKind.MODEL_UNKNOWN, None, ("m2", "a")),
    ],
)
async def test_a_failure_moves_to_the_candidate_its_scope_allows(
    kind: FailureKind, scope: Scope | None, next_call: Call
) -> None:
    rig = make_rig()
    upstream = Upstream({("m1", "a"): [fail(kind)]})
    routed = await rig.router.route(["m1", "m2"], accounts("a", "b"), upstream)
    assert upstream.calls == [("m1", "a"), next_call]
    assert (routed.model, routed.account.name) == next_call
    assert [(a.model, a.account, a.outcome) for a in routed.attempts] == [
        ("m1", "a", kind.value),
        (*next_call, "ok"),
    ]
    assert [c.scope for c in await rig.book.snapshot()] == ([scope] if scope else [])
    assert rig.sleeper.calls == []


async def test_bad_request_stops_after_one_attempt() -> None:
    rig = make_rig()
    upstream = Upstream({("m1", "a"): [fail(FailureKind.BAD_REQUEST, "flagged by moderation")]})
    with pytest.raises(RoutingFailed) as caught:
        await rig.router.route(["m1", "m2"], accounts("a", "b"), upstream)
    assert upstream.calls == [("m1", "a")]
    assert caught.value.kind is FailureKind.BAD_REQUEST
    assert "flagged by moderation" in caught.value.message
    assert await rig.book.snapshot() == []


async def test_an_unknown_model_is_not_tried_again_by_this_router() -> None:
    rig = make_rig()
    upstream = Upstream({("m1", "a"): [fail(FailureKind.MODEL_UNKNOWN, "Model not found: m1")]})
    pool = accounts("a", "b")
    await rig.router.route(["m1", "m2"], pool, upstream)
    routed = await rig.router.route(["m1", "m2"], pool, upstream)
    assert routed.model == "m2"
    assert upstream.calls == [("m1", "a"), ("m2", "a"), ("m2", "a")]
    with pytest.raises(RoutingFailed) as caught:
        await rig.router.route(["m1"], pool, upstream)
    assert "does not know m1" in caught.value.message
    assert len(upstream.calls) == 3


# --- budget, deadline and waiting --------------------------------------------------------------


async def test_the_attempt_budget_bounds_upstream_requests() -> None:
    rig = make_rig(max_attempts=3)
    pool = accounts("a", "b", "c", "d")
    script = {("m", name): [fail(FailureKind.TRANSPORT, f"broken {name}")] for name in "abcd"}
    upstream = Upstream(script)
    with pytest.raises(RoutingFailed) as caught:
        await rig.router.route(["m"], pool, upstream)
    assert upstream.calls == [("m", "a"), ("m", "b"), ("m", "c")]
    assert "gave up after 3 attempts" in caught.value.message
    assert caught.value.kind is FailureKind.TRANSPORT
    assert [a.outcome for a in caught.value.attempts] == ["transport"] * 3


async def test_the_deadline_ends_a_request_that_takes_too_long() -> None:
    rig = make_rig(deadline=30.0)
    calls: list[str] = []

    async def slow_then_stuck(model: str, account: AccountRef) -> str:
        calls.append(account.name)
        if account.name == "a":
            rig.clock.advance(31)  # the first attempt used up the whole deadline ...
            raise fail(FailureKind.TRANSPORT)
        await anyio.sleep_forever()  # ... so the second one is cut off at once
        raise AssertionError("unreachable")

    with anyio.fail_after(5), pytest.raises(RoutingFailed) as caught:
        await rig.router.route(["m"], accounts("a", "b"), slow_then_stuck)
    assert calls == ["a", "b"]
    assert "deadline of 30 s passed" in caught.value.message
    assert (await rig.pacer.usage("id-b")).in_flight == 0


async def test_no_sleep_while_another_candidate_is_eligible() -> None:
    rig = make_rig()
    pool = accounts("a", "b")
    # a is rate-limited (10 s) and m1 is down everywhere (40 s): both would free up within
    # max_wait, but (m2, b) is usable now, so nobody waits.
    await rig.book.record_failure(FailureKind.RATE_LIMITED, account="id-a", model="m1")
    await rig.book.record_failure(FailureKind.MODEL_DOWN, account="id-a", model="m1")
    upstream = Upstream()
    routed = await rig.router.route(["m1", "m2"], pool, upstream)
    assert upstream.calls == [("m2", "b")]
    assert routed.waited_s == 0
    assert [a.outcome for a in routed.attempts] == ["ok"]
    assert rig.sleeper.calls == []


async def test_waits_when_the_only_candidate_frees_up_within_max_wait() -> None:
    rig = make_rig(max_wait=15.0)
    pool = accounts("a")
    await rig.book.record_failure(FailureKind.RATE_LIMITED, account="id-a", model="m")  # 10 s
    upstream = Upstream()
    routed = await rig.router.route(["m"], pool, upstream)
    assert rig.sleeper.calls == [pytest.approx(10.0)]
    assert routed.waited_s == pytest.approx(10.0)
    assert [a.outcome for a in routed.attempts] == ["wait", "ok"]
    assert upstream.calls == [("m", "a")]


@pytest.mark.parametrize(("max_wait", "deadline"), [(5.0, 180.0), (15.0, 8.0)])
async def test_fails_at_once_with_retry_at_when_the_wait_does_not_fit(
    max_wait: float, deadline: float
) -> None:
    rig = make_rig(max_wait=max_wait, deadline=deadline)
    await rig.book.record_failure(FailureKind.RATE_LIMITED, account="id-a", model="m")  # until T0 + 10
    upstream = Upstream()
    with pytest.raises(RoutingFailed) as caught:
        await rig.router.route(["m"], accounts("a"), upstream)
    assert caught.value.retry_at == pytest.approx(T0 + 10.0)
    assert "cooling down" in caught.value.message
    assert rig.sleeper.calls == []
    assert upstream.calls == []


async def test_an_account_that_must_sign_in_again_fails_until_its_token_is_checked_again() -> None:
    rig = make_rig()
    await rig.book.record_failure(FailureKind.AUTH, account="id-a", model="m")
    upstream = Upstream()
    with pytest.raises(RoutingFailed) as caught:
        await rig.router.route(["m"], accounts("a"), upstream)
    # Not for good: its token is checked again (``/whoami``) when the re-check is due.
    assert caught.value.retry_at == pytest.approx(T0 + CooldownPolicy().credit_recheck)
    assert "sign in again" in caught.value.message
    assert upstream.calls == [] and rig.sleeper.calls == []


# --- output already delivered ------------------------------------------------------------------


async def test_no_replay_after_output_stops_after_a_partial_answer() -> None:
    rig = make_rig()
    upstream = Upstream({("m", "a"): [fail(FailureKind.TRANSPORT, "cut", partial="Hello, wor")]})
    with pytest.raises(RoutingFailed) as caught:
        await rig.router.route(["m"], accounts("a", "b"), upstream, replay_after_output=False)
    assert upstream.calls == [("m", "a")]
    assert caught.value.partial_text == "Hello, wor"
    assert "broke off after it had started" in caught.value.message


async def test_replay_after_output_tries_the_next_candidate_and_keeps_the_partial_text() -> None:
    rig = make_rig()
    upstream = Upstream({("m", "a"): [fail(FailureKind.TRANSPORT, "cut", partial="Hello, wor")]})
    routed = await rig.router.route(["m"], accounts("a", "b"), upstream)
    assert routed.value == "m@b"
    assert [a.outcome for a in routed.attempts] == ["transport", "ok"]

    rig2 = make_rig(max_wait=0.0)
    script = {("m", name): [fail(FailureKind.TRANSPORT, "cut", partial=f"part {name}")] for name in "ab"}
    with pytest.raises(RoutingFailed) as caught:
        await rig2.router.route(["m"], accounts("a", "b"), Upstream(script))
    assert caught.value.partial_text == "part b"


# --- probes ------------------------------------------------------------------------------------


async def test_a_down_model_is_probed_by_exactly_one_request() -> None:
    rig = make_rig()
    pool = accounts("a", "b")
    await rig.book.record_failure(FailureKind.MODEL_DOWN, account="id-a", model="m1")  # probe at T0 + 40
    upstream = Upstream()
    assert (await rig.router.route(["m1", "m2"], pool, upstream)).model == "m2"
    rig.clock.advance(41)

    probing = anyio.Event()
    release = anyio.Event()
    models: list[str] = []

    async def send(model: str, account: AccountRef) -> str:
        models.append(model)
        if model == "m1":
            probing.set()
            await release.wait()
        return model

    results: list[str] = []

    async def one() -> None:
        results.append((await rig.router.route(["m1", "m2"], pool, send)).model)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(one)
            await probing.wait()
            # While the probe is out, other requests keep skipping the model.
            await one()
            await one()
            release.set()
    assert models.count("m1") == 1
    assert sorted(results) == ["m1", "m2", "m2"]
    # The probe succeeded: the model is back for everyone.
    assert (await rig.router.route(["m1", "m2"], pool, upstream)).model == "m1"
    assert await rig.book.snapshot() == []


async def test_an_empty_account_is_rechecked_once_when_due() -> None:
    rig = make_rig(max_wait=0.0)
    pool = accounts("a", "b")
    for name in "ab":
        await rig.book.record_failure(FailureKind.OUT_OF_CREDITS, account=f"id-{name}", model="m")
    checks: list[str] = []
    credit = {"a": False, "b": False}

    async def check_credit(account: AccountRef) -> bool:
        checks.append(account.name)
        return credit[account.name]

    upstream = Upstream()
    with pytest.raises(RoutingFailed) as early:
        await rig.router.route(["m"], pool, upstream, check_credit=check_credit)
    assert checks == [] and upstream.calls == []
    assert early.value.retry_at == pytest.approx(T0 + 300.0)

    rig.clock.advance(301)
    with pytest.raises(RoutingFailed) as still_empty:
        await rig.router.route(["m"], pool, upstream, check_credit=check_credit)
    assert checks == ["a", "b"] and upstream.calls == []
    assert still_empty.value.retry_at == pytest.approx(T0 + 301.0 + 300.0)
    with pytest.raises(RoutingFailed):
        await rig.router.route(["m"], pool, upstream, check_credit=check_credit)
    assert checks == ["a", "b"]  # not due again yet

    rig.clock.advance(301)
    credit["b"] = True
    routed = await rig.router.route(["m"], pool, upstream, check_credit=check_credit)
    assert routed.account.name == "b"
    assert checks == ["a", "b", "a", "b"]
    assert [a.outcome for a in routed.attempts] == ["credit-check", "credit-check", "ok"]


async def test_an_empty_account_is_not_waited_for_even_when_its_recheck_is_near() -> None:
    # The next credit check falls within max_wait, but it will most likely find nothing: the
    # call fails at once (with that moment as the time to retry) instead of burning its deadline.
    rig = make_rig(max_wait=60.0)
    rig.book.policy = CooldownPolicy(model_down=(40.0, 40.0), credit_recheck=30.0)
    await rig.book.record_failure(FailureKind.OUT_OF_CREDITS, account="id-a", model="m")
    upstream = Upstream()
    with pytest.raises(RoutingFailed) as caught:
        await rig.router.route(["m"], accounts("a"), upstream, check_credit=None)
    assert rig.sleeper.calls == [] and upstream.calls == []
    assert caught.value.retry_at == pytest.approx(T0 + 30.0)
    assert caught.value.kind is FailureKind.OUT_OF_CREDITS


async def test_a_credit_check_must_fit_in_the_calls_deadline() -> None:
    rig = make_rig(deadline=0.2)
    await rig.book.record_failure(FailureKind.OUT_OF_CREDITS, account="id-a", model="m")
    rig.clock.advance(301)  # the re-check is due

    async def slow_check(account: AccountRef) -> bool:
        await anyio.sleep(60)  # a real sleep, cut short by the call's deadline
        return True

    with anyio.fail_after(10):
        with pytest.raises(RoutingFailed):
            await rig.router.route(["m"], accounts("a"), Upstream(), check_credit=slow_check)
    # The check proved nothing, so the next call may check again at once.
    verdict = await rig.book.check(account="id-a", model="m")
    assert verdict.probe_due


# --- pacing and cancellation -------------------------------------------------------------------


async def test_a_queued_request_is_woken_by_a_slot_another_request_frees() -> None:
    # A long in-flight hint: only the freed slot's wake-up can let the second request go early.
    rig = make_rig(in_flight_hint=60.0)
    pool = accounts("a", limits=PacingLimits(requests_per_window=100, max_in_flight=1))
    first_running = anyio.Event()
    finish_first = anyio.Event()
    order: list[str] = []

    async def send(model: str, account: AccountRef) -> str:
        order.append("start")
        if len(order) == 1:
            first_running.set()
            await finish_first.wait()
        order.append("end")
        return model

    waited: list[float] = []

    async def second() -> None:
        routed = await rig.router.route(["m1", "m2"], pool, send)
        waited.append(routed.waited_s)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(rig.router.route, ["m1", "m2"], pool, send)
            await first_running.wait()
            group.start_soon(second)
            await anyio.wait_all_tasks_blocked()
            assert order == ["start"]  # the second request queues rather than failing
            assert (await rig.pacer.usage("id-a")).in_flight == 1
            finish_first.set()
    assert order == ["start", "end", "start", "end"]
    assert len(waited) == 1 and waited[0] > 0
    assert rig.sleeper.calls == []  # queueing is not a cooldown wait


async def test_in_flight_returns_to_zero_after_cancellation() -> None:
    rig = make_rig()
    pool = accounts("a", "b")
    started = anyio.Event()

    async def hang(model: str, account: AccountRef) -> str:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(rig.router.route, ["m"], pool, hang)
            await started.wait()
            assert (await rig.pacer.usage("id-a")).in_flight == 1
            group.cancel_scope.cancel()
    assert (await rig.pacer.usage("id-a")).in_flight == 0
    assert (await rig.pacer.usage("id-b")).in_flight == 0


async def test_a_cancelled_probe_lets_the_next_request_probe_at_once() -> None:
    rig = make_rig()
    pool = accounts("a")
    await rig.book.record_failure(FailureKind.MODEL_DOWN, account="id-a", model="m1")
    rig.clock.advance(41)
    probing = anyio.Event()

    async def hang(model: str, account: AccountRef) -> str:
        probing.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(rig.router.route, ["m1", "m2"], pool, hang)
            await probing.wait()
            group.cancel_scope.cancel()
    # The cancelled request proved nothing about m1: the next one probes it, not in 120 s.
    upstream = Upstream()
    routed = await rig.router.route(["m1", "m2"], pool, upstream)
    assert routed.model == "m1"
    assert await rig.book.snapshot() == []


async def test_a_call_that_only_meets_cooldowns_reports_their_kind_and_what_it_skipped() -> None:
    rig = make_rig(max_wait=0.0)
    pool = accounts("a", "b")
    for name in "ab":
        await rig.book.record_failure(FailureKind.OUT_OF_CREDITS, account=f"id-{name}", model="m")
    with pytest.raises(RoutingFailed) as caught:
        await rig.router.route(["m"], pool, Upstream())
    assert caught.value.kind is FailureKind.OUT_OF_CREDITS
    assert caught.value.attempts == []

    fresh = accounts("c")
    await rig.router.route(["m1", "m3"], fresh, Upstream({("m1", "c"): [fail(FailureKind.MODEL_UNKNOWN)]}))
    await rig.book.record_failure(FailureKind.MODEL_DOWN, account="id-c", model="m2")
    routed = await rig.router.route(["m1", "m2", "m3"], fresh, Upstream())
    assert routed.model == "m3"
    assert routed.passed_over == {"m1": ["model_unknown"], "m2": ["model_down"]}


# --- attempt hooks -----------------------------------------------------------------------------


async def test_every_attempt_is_reported_to_the_hooks_and_a_broken_hook_costs_nothing() -> None:
    rig = make_rig()
    seen: list[Attempt] = []

    def broken(attempt: Attempt) -> None:
        raise RuntimeError("a statistics bug")

    rig.router.add_hook(broken)
    rig.router.add_hook(seen.append)
    upstream = Upstream({("m", "a"): [fail(FailureKind.RATE_LIMITED)]})
    routed = await rig.router.route(
        ["m"],
        accounts("a", "b"),
        upstream,
        request_id="r1",
        on_success=lambda _: {"ttft_ms": 12.5, "input_tokens": 3, "output_tokens": 7, "cost_usd": 0.001},
    )
    assert routed.account.name == "b"
    assert [(a.account, a.model, a.kind, a.request_id) for a in seen] == [
        ("id-a", "m", FailureKind.RATE_LIMITED, "r1"),
        ("id-b", "m", None, "r1"),
    ]
    success = seen[-1]
    assert (success.ttft_ms, success.input_tokens, success.output_tokens, success.cost_usd) == (
        12.5,
        3,
        7,
        0.001,
    )
    assert success.time == T0 and success.latency_ms >= 0
    # The router writes no record itself: the store's log is a hook, registered by the engine.
    assert await rig.store.recent_attempts() == []


async def test_the_stores_attempt_log_is_written_with_the_slots_release() -> None:
    rig = make_rig()
    rig.router.add_hook(rig.store.log_attempt)
    await rig.router.route(["m"], accounts("a"), Upstream(), request_id="r2")
    (attempt,) = await rig.store.recent_attempts()
    assert (attempt.account, attempt.kind, attempt.request_id) == ("id-a", None, "r2")
    assert (await rig.pacer.usage("id-a", ROOMY)).in_flight == 0
