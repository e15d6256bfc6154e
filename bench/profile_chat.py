"""Where does one `Backend.chat` spend its time? A profiler's view of the in-process path.

`overhead.py` says *how much* the product adds per call; this script says *where*. It runs
`Backend.chat` against the emulator (in its own process, as every benchmark here does, so that
the emulator does not compete with the profiled loop for the GIL) and either:

- prints cProfile's top functions by own time and by cumulative time (``--profile``), summed
  over the calls after a warm-up; or
- times the same calls without a profiler (default), beside the direct `httpx2` call that
  sends the same body, so a change can be checked at once without the minute of
  ``overhead.py``.

``--floor`` times, instead of `Backend.chat`, the least a call must do with the same engine
parts: take a slot in the state store, read `PuterClient.chat_stream` to its end, hand the
settle and its attempt record over. Nothing is resolved, routed, judged or assembled, so
`Backend.chat` minus the floor is what the call pipeline costs.

Calls are spaced (``--period``, 60 ms by default) like `overhead.py`'s, for two reasons: the
product paces every account below Puter's limit (200 requests per 10 s for a paid account), and
between spaced calls caches are cold as they are for a real user, which a hot loop would hide.

Run: ``.venv/bin/python bench/profile_chat.py [--profile] [--floor] [--memory-state] [--calls N]
[--period S] [--top N]``.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import json
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from functools import partial
from typing import Any

import anyio
import httpx2

from _common import VARIANT_GAP, EmulatorProcess, machine_info, print_table, private_home, summarize
from puter_mcp.core import Backend, ChatCall
from puter_mcp.core.wiring import engine_of
from puter_mcp.puter.tiers import Tier
from puter_mcp.puter.wire import ChatMessage, ChatRequest, TextDelta
from puter_mcp.routing.pacing import limits_for
from puter_mcp.routing.state import MemoryStateStore
from puter_mcp.routing.state.records import Attempt
from puter_mcp.settings import load_settings

MODEL = "gpt-5-nano"
PROMPT = "Say hello to the benchmark."


async def run(
    calls: int, period: float, profile: bool, top: int, dump: str | None, memory_state: bool, floor: bool
) -> None:
    print(f"machine: {machine_info()}")
    with EmulatorProcess() as emulator, private_home() as home:
        product = emulator.add_account("profile_product", "paid")
        direct_account = emulator.add_account("profile_direct", "paid")
        home.save_account("profile_product", product["token"], "paid")
        settings, paths = load_settings(paths=home.paths, env=home.env(emulator.url))
        store = MemoryStateStore() if memory_state else None
        async with (
            Backend(settings, paths, store=store) as backend,
            httpx2.AsyncClient(timeout=60) as http,
        ):
            call = ChatCall.build(message=PROMPT, model=MODEL)
            emulator.clear_requests()
            await backend.chat(call)
            sent_model = next(r["model"] for r in emulator.requests() if r["driver_method"] == "complete")
            body = ChatRequest(messages=[ChatMessage(role="user", content=PROMPT)], model=sent_model)
            driver_call = body.to_driver_call(stream=True)
            headers = {
                "Authorization": f"Bearer {direct_account['token']}",
                "Accept": "application/x-ndjson, application/json",
            }

            product_call = (
                _floor_call(backend, product["token"], body) if floor else partial(backend.chat, call)
            )

            async def direct() -> None:
                async with http.stream(
                    "POST", emulator.url + "/drivers/call", json=driver_call, headers=headers
                ) as response:
                    async for line in response.aiter_lines():
                        if line:
                            json.loads(line)

            for _ in range(20):  # warm-up: connections, catalogue, the state database
                await product_call()
                await direct()
                await anyio.sleep(period)

            profilers = {"product": cProfile.Profile(), "direct": cProfile.Profile()} if profile else {}
            product_ms: list[float] = []
            direct_ms: list[float] = []
            cpu_ms: dict[str, list[float]] = {"product": [], "direct": []}
            for index in range(calls):
                # Alternate which goes first, so that neither always meets a fresher cache.
                order = ("product", "direct") if index % 2 == 0 else ("direct", "product")
                for name in order:
                    await anyio.sleep(VARIANT_GAP)
                    cpu_before = time.process_time()
                    started = time.perf_counter()
                    profiler = profilers.get(name)
                    if profiler is not None:
                        profiler.enable()
                    if name == "product":
                        await product_call()
                    else:
                        await direct()
                    if profiler is not None:
                        profiler.disable()
                    (product_ms if name == "product" else direct_ms).append(
                        (time.perf_counter() - started) * 1000
                    )
                    cpu_ms[name].append((time.process_time() - cpu_before) * 1000)
                await anyio.sleep(period)

    rows = []
    product_name = "floor (slot, stream, settle)" if floor else "Backend.chat"
    for name, values, cpu in (
        (product_name, product_ms, cpu_ms["product"]),
        ("direct httpx2", direct_ms, cpu_ms["direct"]),
    ):
        s = summarize(values)
        rows.append([name, s.n, s.median, s.p95, statistics.fmean(cpu)])
    added = [p - d for p, d in zip(product_ms, direct_ms, strict=True)]
    s = summarize(added)
    added_cpu = statistics.fmean(cpu_ms["product"]) - statistics.fmean(cpu_ms["direct"])
    rows.append([f"{product_name} - direct (paired)", s.n, s.median, s.p95, added_cpu])
    print_table(
        [
            "wall ms per call" + (" (under cProfile)" if profile else ""),
            "n",
            "median",
            "p95",
            "CPU ms (mean)",
        ],
        rows,
    )
    if profilers:
        if dump:
            profilers["product"].dump_stats(dump)
        by_package = {name: _by_package(profiler, calls) for name, profiler in profilers.items()}
        packages = sorted(
            set(by_package["product"]) | set(by_package["direct"]),
            key=lambda package: -abs(by_package["product"][package] - by_package["direct"][package]),
        )
        print_table(
            ["own time by package (ms per call, under cProfile)", "Backend.chat", "direct", "difference"],
            [
                [
                    package,
                    by_package["product"][package],
                    by_package["direct"][package],
                    by_package["product"][package] - by_package["direct"][package],
                ]
                for package in packages
            ],
        )
        stats = pstats.Stats(profilers["product"])
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
    else:
        print(f"median added: {statistics.median(added):.3f} ms")


def _floor_call(backend: Backend, token: str, body: ChatRequest) -> Callable[[], Awaitable[None]]:
    """The least one call does, with the backend's own store and client (see the docstring)."""
    engine = engine_of(backend)
    limits = limits_for(Tier.PAID)

    async def call() -> None:
        admitted = await engine.store.acquire(
            "floor", body.model, judge=engine.book.judge(), slot=engine.pacer.slot_request("floor", limits)
        )
        if admitted.slot is None:
            raise SystemExit(f"the floor's slot was refused: {admitted}")
        started = time.time()
        async with aclosing(engine.client.chat_stream(body, token=token)) as events:
            text = "".join([event.text async for event in events if isinstance(event, TextDelta)])
        if not text:
            raise SystemExit("the floor's call got no text")
        elapsed_ms = (time.time() - started) * 1000
        engine.store.log_attempt(
            Attempt(time=started, account="floor", model=body.model, kind=None, latency_ms=elapsed_ms)
        )
        await engine.store.settle(admitted.slot.id, now=time.time(), counted=True)

    return call


_PACKAGES = (
    ("waiting in epoll (not CPU)", ("epoll",)),
    ("sqlite3", ("sqlite3",)),
    ("socket send/recv", ("_socket",)),
    ("pydantic", ("pydantic",)),
    ("puter_mcp.routing", ("puter_mcp/routing",)),
    ("puter_mcp.core", ("puter_mcp/core",)),
    ("puter_mcp.puter", ("puter_mcp/puter",)),
    ("puter_mcp (other)", ("puter_mcp",)),
    ("httpx2/httpcore2/h11", ("httpx2", "httpcore2", "h11")),
    ("anyio", ("anyio",)),
    ("asyncio", ("asyncio", "selectors")),
    ("contextlib", ("contextlib",)),
    ("json", ("json",)),
)


def _by_package(profiler: cProfile.Profile, calls: int) -> collections.Counter[str]:
    """Own time per call, summed by package (the first matching marker decides)."""
    totals: collections.Counter[str] = collections.Counter()
    raw: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, own_seconds, _cum, _callers) in raw.items():
        where = f"{filename} {function}"
        package = next((name for name, markers in _PACKAGES if any(m in where for m in markers)), "other")
        totals[package] += own_seconds * 1000 / calls
    return totals


def main() -> int:
    parser = argparse.ArgumentParser(description="Profile Backend.chat in-process against the emulator")
    parser.add_argument("--profile", action="store_true", help="run under cProfile and print the top")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--period", type=float, default=0.06, help="seconds between rounds")
    parser.add_argument("--top", type=int, default=40, help="rows of each profile table")
    parser.add_argument(
        "--memory-state",
        action="store_true",
        help="use the in-memory state store instead of SQLite (to tell the shared state's share)",
    )
    parser.add_argument("--dump", help="with --profile: also write the raw profile to this file")
    parser.add_argument(
        "--floor", action="store_true", help="time the least a call must do instead of Backend.chat"
    )
    args = parser.parse_args()
    anyio.run(run, args.calls, args.period, args.profile, args.top, args.dump, args.memory_state, args.floor)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
