"""Usage statistics from the attempt log: the percentile rule, the fold into a report, the
store's `attempts_since`, and `Backend.usage_stats` / `add_attempt_hook` against the emulator."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from puter_mcp.core import ChatCall, UpstreamAttempt, UsageReport
from puter_mcp.core.stats_view import covered_processes, percentile, summarize, usage_report
from puter_mcp.emulator import Fault
from puter_mcp.puter.errors import FailureKind
from puter_mcp.routing.state import Attempt, StateStore
from tests.helpers import Emulator, backend_for

T0 = 1_700_000_000.0
MODEL = "gpt-5-nano"
CANONICAL = "gpt-5-nano-2025-08-07"


# -- percentiles ----------------------------------------------------------------------------


def test_the_nearest_rank_percentile_is_always_one_of_the_values() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]  # the textbook example of the nearest-rank method
    assert percentile(values, 0.05) == 15.0
    assert percentile(values, 0.30) == 20.0
    assert percentile(values, 0.40) == 20.0
    assert percentile(values, 0.50) == 35.0
    assert percentile(values, 1.0) == 50.0


def test_percentiles_do_not_care_about_order_and_p95_of_twenty_is_the_nineteenth() -> None:
    values = [float(v) for v in range(20, 0, -1)]  # 20 .. 1, reversed
    assert percentile(values, 0.5) == 10.0
    assert percentile(values, 0.95) == 19.0  # 0.95 * 20 is 19 (not 19.000000000000004 -> 20)
    assert percentile([7.0], 0.95) == 7.0


def test_no_values_have_no_percentile_and_a_fraction_outside_0_1_is_refused() -> None:
    assert percentile([], 0.5) is None
    for fraction in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            percentile([1.0], fraction)


# -- the fold -------------------------------------------------------------------------------


def attempt(
    at: float,
    model: str = "m",
    account: str = "alice",
    kind: FailureKind | None = None,
    latency: float = 100.0,
    **extra: object,
) -> UpstreamAttempt:
    return UpstreamAttempt(time=at, account=account, model=model, kind=kind, latency_ms=latency, **extra)  # type: ignore[arg-type]


def test_figures_count_failures_by_kind_and_time_only_the_successes() -> None:
    figures = summarize(
        [
            attempt(T0, latency=100.0, ttft_ms=10.0, input_tokens=5, output_tokens=7, cost_usd=0.25),
            attempt(T0, kind=FailureKind.RATE_LIMITED, latency=1.0),
            attempt(T0, kind=FailureKind.RATE_LIMITED, latency=2.0),
            attempt(T0, kind=FailureKind.MODEL_DOWN, latency=3.0),
            attempt(T0, latency=300.0, ttft_ms=30.0, input_tokens=1, output_tokens=None, cost_usd=None),
        ]
    )
    assert figures.requests == 5 and figures.successes == 2
    assert figures.failures == {"model_down": 1, "rate_limited": 2}
    # The refusals' 1-3 ms are not in the latency: only answers are.
    assert (figures.latency_p50_ms, figures.latency_p95_ms) == (100.0, 300.0)
    assert (figures.ttft_p50_ms, figures.ttft_p95_ms) == (10.0, 30.0)
    assert (figures.input_tokens, figures.output_tokens, figures.cost_usd) == (6, 7, 0.25)


def test_a_report_groups_by_model_and_account_within_its_window() -> None:
    attempts = [
        attempt(T0 - 1, model="old"),  # before the window
        attempt(T0, model="a", account="alice", request_id="r1", kind=FailureKind.RATE_LIMITED),
        attempt(T0 + 1, model="a", account="bob", request_id="r1"),
        attempt(T0 + 2, model="b", account="alice", request_id="r2"),
        attempt(T0 + 11, model="late"),  # after it
    ]
    report = usage_report(attempts, since=T0, until=T0 + 10, covers="here")
    assert report.calls == 2
    assert report.total.requests == 3
    assert {name: f.requests for name, f in report.models.items()} == {"a": 2, "b": 1}
    assert {name: f.successes for name, f in report.accounts.items()} == {"alice": 1, "bob": 1}
    assert report.accounts["alice"].failures == {"rate_limited": 1}
    assert report.covers == "here"
    # What /stats and `stats --json` print is this model as JSON, and it reads back the same.
    assert UsageReport.model_validate_json(report.model_dump_json()) == report


def test_the_report_says_which_processes_it_covers() -> None:
    assert covered_processes("sqlite:/home/me/state.db") == (
        "every process using this state database (/home/me/state.db)"
    )
    assert covered_processes("memory").startswith("this process only")


# -- the store's query (every store, through the shared `store` fixture) ---------------------


@pytest.mark.anyio
async def test_attempts_since_gives_the_window_oldest_first_including_those_not_yet_written(
    store: StateStore,
) -> None:
    store.log_attempt(Attempt(T0 + 2, "a", "m", None, 2.0, request_id="late"))
    await store.record_attempt(Attempt(T0 - 5, "a", "m", None, 1.0, request_id="old"))
    store.log_attempt(Attempt(T0, "b", "n", FailureKind.RATE_LIMITED, 3.0, request_id="edge"))
    # Logged but not yet written (no settle since): the query must still see them.
    found = await store.attempts_since(T0)
    assert [a.request_id for a in found] == ["edge", "late"]
    assert found[0] == Attempt(T0, "b", "n", FailureKind.RATE_LIMITED, 3.0, request_id="edge")
    assert await store.attempts_since(T0 + 3) == []


# -- against the emulator -------------------------------------------------------------------


@pytest.mark.anyio
async def test_usage_stats_match_the_emulators_request_log_after_a_failover(
    emulator: Emulator, home: Path
) -> None:
    heard: list[UpstreamAttempt] = []
    async with backend_for(emulator, home, emulator.paid, emulator.free) as (backend, clock):
        backend.add_attempt_hook(heard.append)  # before the machinery exists: kept for it
        started = clock()
        emulator.state.clear_requests()
        emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, model=MODEL, account=emulator.paid.username)
        for _ in range(3):
            await backend.chat(ChatCall.build(message="hello", model=MODEL))
        report = await backend.usage_stats(started)
    sent = emulator.chat_requests()
    assert len(sent) == 4  # one refused with 429, then three answers
    per_account = Counter(r.username for r in sent)
    assert {name: f.requests for name, f in report.accounts.items()} == dict(per_account)
    assert report.models[CANONICAL].requests == 4
    assert report.total.successes == 3 and report.calls == 3
    assert report.total.failures == {FailureKind.RATE_LIMITED.value: 1}
    assert report.accounts[emulator.paid.username].failures == {"rate_limited": 1}
    assert report.total.output_tokens > 0 and report.total.ttft_p50_ms is not None
    assert report.covers.startswith("every process using this state database")
    # The hook heard the same four requests, accounts by name, as they ended.
    assert [(a.account, a.kind) for a in heard] == [
        (emulator.paid.username, FailureKind.RATE_LIMITED),
        *[(r.username, None) for r in sent[1:]],
    ]


@pytest.mark.anyio
async def test_a_hook_added_after_the_first_call_hears_the_next_ones(emulator: Emulator, home: Path) -> None:
    heard: list[UpstreamAttempt] = []
    async with backend_for(emulator, home, emulator.paid) as (backend, _):
        await backend.chat(ChatCall.build(message="hello", model=MODEL))
        backend.add_attempt_hook(heard.append)
        await backend.chat(ChatCall.build(message="hello", model=MODEL))
    assert [(a.account, a.model, a.ok) for a in heard] == [(emulator.paid.username, CANONICAL, True)]


@pytest.mark.anyio
async def test_active_cooldowns_name_the_account_a_429_cooled_without_asking_puter(
    emulator: Emulator, home: Path
) -> None:
    async with backend_for(emulator, home, emulator.paid, emulator.free) as (backend, _):
        assert await backend.active_cooldowns() == []
        emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, model=MODEL, account=emulator.paid.username)
        await backend.chat(ChatCall.build(message="hello", model=MODEL))
        emulator.state.clear_requests()
        cooling = await backend.active_cooldowns()
        assert emulator.state.requests == []  # read from the shared state only
    assert [(c.scope, c.account, c.kind) for c in cooling] == [
        ("account", emulator.paid.username, FailureKind.RATE_LIMITED.value)
    ]
    assert cooling[0].until is not None
