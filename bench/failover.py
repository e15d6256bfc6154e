"""Does failing over cost the caller anything beyond the failed request itself? (issue 3, section 8)

Three measurements against the emulator (in its own process), each in one run:

1. Time to answer when the first candidate returns 429, against a plain successful call, with
   the variants interleaved round by round: (a) the first model answers ``429
   upstream_rate_limited`` (MODEL_DOWN: the next model of the chain answers) and (b) the
   first account answers ``429 too_many_requests`` (RATE_LIMITED: the same model on the next
   account answers). Measured on `Backend.chat` **in-process** (no MCP framing, so the ratio
   is the strictest one), with a pool of six paid accounts and a two-model chain. The router must
   not sleep: the extra time should be one upstream round trip for the refused request, and
   nothing else. Cooldowns are cleared between calls (untimed), so every call meets the same
   situation. Run twice: with answers as fast as the emulator gives them (a few ms, the
   worst case for a ratio) and with a small stream delay (answers of ~0.1 s, still far faster
   than any real model). Target: at most 1.10x, no sleep.

2. Every account out of credits (three accounts with a zero balance): how many upstream
   requests one call makes, and the next call (counted in the emulator's request log), and how
   long the error takes to come back. Target: at most 3, then 0 until a re-probe is due;
   under 50 ms. Fresh accounts for every scenario (each request, a 402 included, spends a
   place in the account's window). Extra rows: the first call repeated back to back, also with
   a temporary-tier account in the pool; and a 1 s re-probe interval, to show what happens when
   the re-probe is due (``/metering/usage`` checks, no chat request while the balance is zero)
   and when that interval is shorter than ``max_wait``.

3. 200 concurrent ``puter-chat`` calls over streamable HTTP (``puter-mcp serve --transport
   http`` as a subprocess, several MCP client sessions) on three emulator accounts with free
   and temporary tier caps (30+30+20 requests per 10 s, 3+3+2 in flight) and a small stream
   delay: success rate, the 429s in the emulator's log (none is scripted, so every one would
   be self-caused), p50 and p99 latency, and the floor the tier caps put under them.
   Target: 100% answered, 0 self-caused 429s.

Run: ``.venv/bin/python bench/failover.py [--quick]``. Prints tables; exits 0.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp import Client
from mcp_types import TextContent

from _common import (
    PUTER_MCP,
    EmulatorProcess,
    Home,
    machine_info,
    print_table,
    private_home,
    round_order,
    summarize,
)
from puter_mcp.core import Backend, BackendError, ChatCall, ChatOutcome
from puter_mcp.core.wiring import engine_of
from puter_mcp.settings import CooldownSettings, RoutingSettings, Settings, load_settings

FIRST_MODEL = "gpt-5-nano"
SECOND_MODEL = "gpt-5-mini"
CHAIN = "bench-chain"
PROMPT = "Say hello to the failover benchmark."
RATIO_TARGET = 1.10
OUT_OF_CREDITS_REQUESTS_TARGET = 3
ERROR_TIME_TARGET_MS = 50.0


@dataclass(frozen=True)
class Sizes:
    failover_rounds: int
    slow_failover_rounds: int
    credit_repeats: int
    burst_calls: int
    burst_clients: int


FULL = Sizes(
    failover_rounds=150, slow_failover_rounds=40, credit_repeats=30, burst_calls=200, burst_clients=8
)
QUICK = Sizes(failover_rounds=30, slow_failover_rounds=10, credit_repeats=8, burst_calls=100, burst_clients=8)


def _settings(home: Home, emulator: EmulatorProcess, **update: Any) -> Settings:
    settings, _ = load_settings(paths=home.paths, env=home.env(emulator.url))
    return settings.model_copy(update=update) if update else settings


async def _clear_cooldowns(backend: Backend) -> None:
    for cooldown in await engine_of(backend).store.list_cooldowns():
        await engine_of(backend).store.delete_cooldown(cooldown.key)


def _chat_requests(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if r["driver_method"] == "complete"]


# -- 1. failover timing ---------------------------------------------------------------------


@dataclass
class FailoverVariant:
    name: str
    fault: dict[str, Any] | None
    expected_outcomes: tuple[str, ...]
    """The attempts' outcomes a correct failover shows, in order."""
    wall_ms: list[float] = field(default_factory=list)
    refused_ms: list[float] = field(default_factory=list)
    """The time of the refused upstream request, as the attempt record gives it."""
    wrong: int = 0


async def failover_timing(
    emulator: EmulatorProcess, rounds: int, stream_delay: float
) -> list[FailoverVariant]:
    emulator.set_stream_delay(stream_delay)
    with private_home() as home:
        # Six accounts, so that none gets near the paid tier's 200 requests per 10 s (the
        # emulator, unlike Puter, also counts the requests it refuses with a scripted 429).
        for index in range(6):
            account = emulator.add_account(f"failover_{index}_{int(stream_delay * 1000)}ms", "paid")
            home.save_account(account["username"], account["token"], "paid")
        # A two-model chain without the free tail, so that every call meets the same candidates.
        chains = {CHAIN: {"models": [FIRST_MODEL, SECOND_MODEL], "free_fallback": False}}
        settings = _settings(home, emulator, chains=chains)
        variants = [
            FailoverVariant("plain success", None, ("ok",)),
            FailoverVariant(
                "first model 429 upstream_rate_limited",
                {"fault": "upstream_rate_limited", "model": FIRST_MODEL},
                ("model_down", "ok"),
            ),
            FailoverVariant(
                "first account 429 too_many_requests",
                {"fault": "too_many_requests"},
                ("rate_limited", "ok"),
            ),
        ]
        async with Backend.create(settings, home.paths, env={}) as backend:
            await engine_of(backend).catalogue()
            call = ChatCall.build(message=PROMPT, model=CHAIN)
            for _ in range(3):  # warm the connections and the code paths
                await backend.chat(call)
            for round_number in range(rounds):
                for variant in round_order(variants, round_number):
                    await _clear_cooldowns(backend)
                    emulator.clear_faults()
                    if variant.fault:
                        emulator.add_fault(**variant.fault, times=1)
                    started = time.perf_counter()
                    outcome = await backend.chat(call)
                    variant.wall_ms.append((time.perf_counter() - started) * 1000)
                    _check_outcome(variant, outcome)
                await anyio.sleep(0.05)
            await _clear_cooldowns(backend)
            emulator.clear_faults()
    return variants


def _check_outcome(variant: FailoverVariant, outcome: ChatOutcome) -> None:
    outcomes = tuple(attempt.outcome for attempt in outcome.attempts)
    if outcomes != variant.expected_outcomes:
        variant.wrong += 1
        if variant.wrong <= 2:
            print(
                f"  {variant.name}: attempts {outcomes}, expected {variant.expected_outcomes}",
                file=sys.stderr,
            )
    elif len(outcome.attempts) > 1:
        variant.refused_ms.append(outcome.attempts[0].ms)


def report_failover(results: dict[str, list[FailoverVariant]]) -> None:
    rows: list[list[Any]] = []
    for setting, variants in results.items():
        plain = variants[0].wall_ms
        for variant in variants:
            s = summarize(variant.wall_ms)
            ratios = [v / p for v, p in zip(variant.wall_ms, plain, strict=True)]
            extra = [v - p for v, p in zip(variant.wall_ms, plain, strict=True)]
            refused = statistics.median(variant.refused_ms) if variant.refused_ms else math.nan
            ratio = s.median / statistics.median(plain)
            verdict = "-" if variant is variants[0] else ("met" if ratio <= RATIO_TARGET else "MISSED")
            rows.append(
                [
                    setting,
                    variant.name,
                    s.n,
                    variant.wrong,
                    s.median,
                    s.p95,
                    ratio,
                    summarize(ratios).p95,
                    statistics.median(extra),
                    refused,
                    verdict,
                ]
            )
    print_table(
        [
            "answers",
            "first attempt",
            "n",
            "wrong path",
            "median ms",
            "p95 ms",
            "ratio (medians)",
            "ratio p95 (paired)",
            "extra ms (paired median)",
            "refused request ms",
            f"<= {RATIO_TARGET}x",
        ],
        rows,
        title="1. Failover on a 429 vs a plain success (Backend.chat in-process)",
    )


# -- 2. every account out of credits ------------------------------------------------------------


@dataclass
class CreditCalls:
    """One kind of call against accounts that are all out of credits, repeated."""

    chat: list[int] = field(default_factory=list)
    other: list[int] = field(default_factory=list)
    ms: list[float] = field(default_factory=list)

    def add(self, chat: int, other: int, ms: float) -> None:
        self.chat.append(chat)
        self.other.append(other)
        self.ms.append(ms)


@dataclass
class CreditRun:
    calls: dict[str, CreditCalls] = field(default_factory=dict)
    messages: set[str] = field(default_factory=set)
    reprobe: list[tuple[str, int, int, float, str]] = field(default_factory=list)
    """(step, chat requests, other requests, ms, result) for the re-probe demonstrations."""

    def row(self, name: str) -> CreditCalls:
        return self.calls.setdefault(name, CreditCalls())


FIRST_CALL = "first call (paid x3)"
NEXT_CALL = "next call, at once"
BACK_TO_BACK = "first call, repeated back to back (paid x3)"
MIXED_TIERS = "first call, back to back, tiers paid/free/temp"


async def _failing_call(backend: Backend, call: ChatCall) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        await backend.chat(call)
    except BackendError as exc:
        return (time.perf_counter() - started) * 1000, str(exc)
    return (time.perf_counter() - started) * 1000, "ANSWERED (unexpected)"


def _count(emulator: EmulatorProcess) -> tuple[int, int]:
    log = emulator.requests()
    chat = sum(1 for r in log if r["driver_method"] == "complete")
    return chat, len(log) - chat


async def _step(
    emulator: EmulatorProcess, backend: Backend, call: ChatCall, step: str
) -> tuple[str, int, int, float, str]:
    emulator.clear_requests()
    ms, message = await _failing_call(backend, call)
    chat, other = _count(emulator)
    return (step, chat, other, ms, message.splitlines()[0].split(": ", 1)[-1][:60])


@contextmanager
def _broke_accounts(emulator: EmulatorProcess, label: str, tiers: tuple[str, ...]) -> Iterator[Home]:
    """Fresh accounts with a zero balance, saved in a fresh home.

    Fresh every time: every request, a 402 included, spends a place in the account's window
    (Puter's and our pacer's), and reused accounts would end up measuring the pacing.
    """
    with private_home() as home:
        for index, tier in enumerate(tiers):
            account = emulator.add_account(f"broke_{label}_{index}", tier, credits_usd=0.0)
            home.save_account(account["username"], account["token"], tier)
        yield home


async def out_of_credits(emulator: EmulatorProcess, repeats: int) -> CreditRun:
    emulator.set_stream_delay(0.0)
    run = CreditRun()
    call = ChatCall.build(message=PROMPT, model=FIRST_MODEL)  # the free models come last, as usual

    with _broke_accounts(emulator, "paid", ("paid", "paid", "paid")) as home:
        async with Backend.create(_settings(home, emulator), home.paths, env={}) as backend:
            await engine_of(backend).catalogue()
            for _ in range(repeats):
                # A pause first, so that no earlier request still holds an in-flight place.
                await anyio.sleep(0.06)
                await _clear_cooldowns(backend)
                emulator.clear_requests()
                ms, message = await _failing_call(backend, call)
                run.row(FIRST_CALL).add(*_count(emulator), ms)
                run.messages.add(message.splitlines()[0][:160])
                emulator.clear_requests()
                ms, _ = await _failing_call(backend, call)
                run.row(NEXT_CALL).add(*_count(emulator), ms)
            await anyio.sleep(0.06)
            for _ in range(repeats):
                await _clear_cooldowns(backend)
                emulator.clear_requests()
                ms, _ = await _failing_call(backend, call)
                run.row(BACK_TO_BACK).add(*_count(emulator), ms)

    # A pool with a temporary account (2 in flight), the first call repeated at once: 10 times,
    # so that no account gets near its tier's requests per 10 s.
    with _broke_accounts(emulator, "mixed", ("paid", "free", "temp")) as home:
        async with Backend.create(_settings(home, emulator), home.paths, env={}) as backend:
            await engine_of(backend).catalogue()
            for _ in range(10):
                await _clear_cooldowns(backend)
                emulator.clear_requests()
                ms, _ = await _failing_call(backend, call)
                run.row(MIXED_TIERS).add(*_count(emulator), ms)

    # A re-probe due after 1 s instead of 300 s, and no waiting for it (max_wait 0): every call
    # fails at once, and the one that finds the re-probe due makes it.
    with _broke_accounts(emulator, "reprobe", ("paid", "paid", "paid")) as home:
        quick_recheck = _settings(home, emulator).model_copy(
            update={
                "cooldowns": CooldownSettings(credit_recheck=1.0),
                "routing": RoutingSettings(max_wait=0.0),
            }
        )
        async with Backend.create(quick_recheck, home.paths, env={}) as backend:
            await engine_of(backend).catalogue()
            for step, pause in (
                ("first call", 0.0),
                ("second call, at once", 0.0),
                ("after 1.1 s (re-probe due)", 1.1),
                ("right after the re-probe", 0.0),
            ):
                await anyio.sleep(pause)
                run.reprobe.append(await _step(emulator, backend, call, step))

    # When the re-probe interval is shorter than max_wait (15 s by default), the router waits
    # for the probe instead of failing: shown with a 5 s deadline so that it ends.
    with _broke_accounts(emulator, "waiting", ("paid", "paid", "paid")) as home:
        waiting = _settings(home, emulator).model_copy(
            update={
                "cooldowns": CooldownSettings(credit_recheck=1.0),
                "routing": RoutingSettings(max_wait=15.0, deadline=5.0),
            }
        )
        async with Backend.create(waiting, home.paths, env={}) as backend:
            await engine_of(backend).catalogue()
            run.reprobe.append(
                await _step(emulator, backend, call, "first call, max_wait 15 s, deadline 5 s")
            )
            run.reprobe.append(await _step(emulator, backend, call, "next call, same settings"))
    return run


def _range(values: list[int]) -> str:
    """``3`` when every repetition agreed, else ``2-3``."""
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def report_out_of_credits(run: CreditRun) -> None:
    rows: list[list[Any]] = []
    for name, calls in run.calls.items():
        s = summarize(calls.ms)
        rows.append([name, s.n, _range(calls.chat), _range(calls.other), s.median, s.p95, s.maximum])
    print_table(
        [
            "every account out of credits",
            "n",
            "chat requests",
            "other requests",
            "error after ms",
            "p95 ms",
            "max ms",
        ],
        rows,
        title="2. Every account out of credits (Backend.chat in-process, re-probe every 300 s)",
    )
    first, following = run.calls[FIRST_CALL], run.calls[NEXT_CALL]
    worst = max(first.chat) + max(first.other)
    after = max(following.chat) + max(following.other)
    slowest = max(summarize(first.ms).p95, summarize(following.ms).p95)
    print(
        f"upstream requests: at most {worst} for the first call (target <= {OUT_OF_CREDITS_REQUESTS_TARGET}: "
        f"{'met' if worst <= OUT_OF_CREDITS_REQUESTS_TARGET else 'MISSED'}), at most {after} for the next "
        f"(target 0: {'met' if after == 0 else 'MISSED'}); error time p95 {slowest:.1f} ms "
        f"(target < {ERROR_TIME_TARGET_MS:.0f} ms: {'met' if slowest < ERROR_TIME_TARGET_MS else 'MISSED'})"
    )
    for message in sorted(run.messages):
        print(f"  error: {message}")
    print_table(
        ["re-probe every 1 s instead of 300 s", "chat requests", "other requests", "ms", "result"],
        [list(step) for step in run.reprobe],
    )


# -- 3. 200 concurrent calls over streamable HTTP -----------------------------------------------


class ServerProcess:
    """``puter-mcp serve --transport http --port 0``; its stderr is drained in a thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self.stderr: list[str] = []

    def start(self) -> ServerProcess:
        import os

        self._process = subprocess.Popen(
            [PUTER_MCP, "serve", "--transport", "http", "--port", "0"],
            env={**os.environ, **self._env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self._process.stderr is not None
        found = threading.Event()

        def drain() -> None:
            assert self._process is not None and self._process.stderr is not None
            for line in self._process.stderr:
                self.stderr.append(line.rstrip())
                if "serving MCP at " in line and not found.is_set():
                    self.url = line.split("serving MCP at ", 1)[1].strip()
                    found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        if not found.wait(60) or not self.url:
            self.stop()
            raise RuntimeError("puter-mcp serve did not announce its URL: " + " | ".join(self.stderr[-5:]))
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)


@dataclass
class BurstResult:
    latencies_ms: list[float]
    answered: int
    failed: int
    errors: list[str]
    duration_s: float
    statuses: Counter[int]
    codes: Counter[str]
    by_account: Counter[str]
    floor_s: float
    clients: int


async def burst(emulator: EmulatorProcess, calls: int, clients: int, stream_delay: float) -> BurstResult:
    emulator.set_stream_delay(stream_delay)
    tiers = (("burst_free_1", "free"), ("burst_free_2", "free"), ("burst_temp", "temp"))
    with private_home() as home:
        for username, tier in tiers:
            account = emulator.add_account(username, tier)
            home.save_account(username, account["token"], tier)
        server = ServerProcess(home.env(emulator.url)).start()
        try:
            # Connect every session and fetch the catalogue once before the clock starts.
            async with _sessions(server.url, clients) as sessions:
                await sessions[0].call_tool("puter-models", {"query": FIRST_MODEL, "limit": 1})
                emulator.clear_requests()
                latencies: list[float] = []
                errors: list[str] = []
                started = time.perf_counter()

                async def one(index: int) -> None:
                    client = sessions[index % clients]
                    try:
                        result = await client.call_tool(
                            "puter-chat", {"message": f"{PROMPT} ({index})", "model": FIRST_MODEL}
                        )
                    except Exception as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                        return
                    if result.is_error:
                        text = "".join(b.text for b in result.content if isinstance(b, TextContent))
                        errors.append(text.splitlines()[0] if text else "error without text")
                        return
                    latencies.append((time.perf_counter() - started) * 1000)

                async with anyio.create_task_group() as group:
                    for index in range(calls):
                        group.start_soon(one, index)
                duration = time.perf_counter() - started
        finally:
            server.stop()
    log = _chat_requests(emulator)
    statuses = Counter(int(r["status"] or 0) for r in log)
    codes = Counter(str(r["fault"] or r["status"]) for r in log if r["status"] != 200)
    by_account = Counter(str(r["username"]) for r in log)
    return BurstResult(
        latencies_ms=latencies,
        answered=len(latencies),
        failed=len(errors),
        errors=errors[:3],
        duration_s=duration,
        statuses=statuses,
        codes=codes,
        by_account=by_account,
        floor_s=_burst_floor(calls),
        clients=clients,
    )


def _burst_floor(calls: int) -> float:
    """Seconds the tier caps alone impose: 80 requests per (10 s + the pacer's 0.5 s margin)."""
    per_window = 30 + 30 + 20
    return max(0, math.ceil(calls / per_window) - 1) * 10.5


class _sessions:
    """Several MCP client sessions on one URL, like several MCP clients sharing one server."""

    def __init__(self, url: str, count: int) -> None:
        self._clients = [Client(url) for _ in range(count)]

    async def __aenter__(self) -> list[Client]:
        for client in self._clients:
            await client.__aenter__()
        return self._clients

    async def __aexit__(self, *exc_info: Any) -> None:
        for client in reversed(self._clients):
            await client.__aexit__(None, None, None)


def report_burst(result: BurstResult, calls: int) -> None:
    s = summarize(result.latencies_ms)
    self_caused = sum(n for status, n in result.statuses.items() if status == 429)
    rows: list[list[Any]] = [
        [
            calls,
            result.clients,
            f"{100 * result.answered / calls:.1f}%",
            result.failed,
            sum(result.statuses.values()),
            self_caused,
            s.median / 1000,
            s.p99 / 1000,
            result.duration_s,
            result.floor_s,
        ]
    ]
    print_table(
        [
            "calls",
            "sessions",
            "answered",
            "failed",
            "upstream chat requests",
            "upstream 429s",
            "p50 s",
            "p99 s",
            "all done s",
            "tier-cap floor s",
        ],
        rows,
        title="3. Concurrent puter-chat calls over streamable HTTP (accounts: free, free, temp)",
    )
    print(
        f"per account: {dict(result.by_account)}; statuses: {dict(result.statuses)}; "
        f"target 100% answered and 0 self-caused 429s: "
        f"{'met' if result.answered == calls and self_caused == 0 else 'MISSED'}"
    )
    for error in result.errors:
        print(f"  error: {error}")


# -- main --------------------------------------------------------------------------------


async def _timed(label: str, step: Callable[[], Awaitable[Any]]) -> Any:
    started = time.perf_counter()
    result = await step()
    print(f"  ({label}: {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return result


async def run(sizes: Sizes) -> None:
    print(f"machine: {machine_info()}")
    with EmulatorProcess() as emulator:
        print(f"emulator: {emulator.url} (its own process)")
        fast = await _timed(
            "failover, fast answers", lambda: failover_timing(emulator, sizes.failover_rounds, 0.0)
        )
        slow = await _timed(
            "failover, slow answers", lambda: failover_timing(emulator, sizes.slow_failover_rounds, 0.02)
        )
        report_failover({"fast (no delay)": fast, "0.02 s/line": slow})
        credits = await _timed("out of credits", lambda: out_of_credits(emulator, sizes.credit_repeats))
        report_out_of_credits(credits)
        result = await _timed(
            "burst", lambda: burst(emulator, sizes.burst_calls, sizes.burst_clients, stream_delay=0.01)
        )
        report_burst(result, sizes.burst_calls)
    print(f"\n(machine after: {machine_info()})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="puter-mcp's failover costs")
    parser.add_argument("--quick", action="store_true", help="a smaller run (100 calls in the burst)")
    parser.add_argument("--calls", type=int, help="concurrent calls in the burst")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.calls:
        sizes = Sizes(
            sizes.failover_rounds,
            sizes.slow_failover_rounds,
            sizes.credit_repeats,
            args.calls,
            sizes.burst_clients,
        )
    anyio.run(run, sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
