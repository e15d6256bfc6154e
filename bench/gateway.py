"""What does `puter-mcp gateway` cost on top of a bare forwarding proxy? (issue 11, section 10)

Side by side in one run, each server in its own process, against the emulator in its own
process (instant answers):

- **direct**: the very upstream request the gateway sends (the ``/drivers/call`` body read back
  from the emulator's log), streamed and read whole, straight to the emulator over one shared
  `httpx2.AsyncClient`;
- **bare forwarder** (``bench/bare_gateway.py``): a bare Starlette app under uvicorn whose
  ``/v1/chat/completions`` sends the same upstream request over one shared httpx2 client and
  answers in OpenAI's shape (streamed: each text line as an SSE chunk; whole: JSON). What any
  proxy pays for HTTP in and out;
- **the product**: ``puter-mcp gateway --port 0`` over saved emulator accounts.

Two figures:

1. **Added latency per request** of ``POST /v1/chat/completions``, streamed and not: one
   request of each variant per round, in a balanced order, paired per round; the gateway minus
   direct, the bare forwarder minus direct, and the gateway minus the bare forwarder.
   Target: the gateway at most 1.0 ms (median) over the bare forwarder.
2. **Requests per second at 50 concurrent clients**, streamed and not, for the gateway and the
   bare forwarder (and direct, the emulator's own ceiling), in bursts that take turns round by
   round. Target: the gateway at least 0.6x the bare forwarder's.

The CPU each process burns per request is reported with both (``/proc/<pid>/stat``): the
three processes share this machine's CPUs, so what bounds a figure is visible there.

The product paces each Puter account (paid: 200 requests per 10 s, 20 in flight). So that
pacing never binds, the product gets enough paid emulator accounts to take *every* request of
the run within one window (the count is printed); the bare forwarder and the direct calls get
as many, used in turn, since the emulator enforces the same limits. Any 429 in the emulator's
log is counted and printed.

``--profile`` adds a cProfile of the gateway process over a load burst (switched on by
``SIGUSR1`` after the warm-up, dumped by ``SIGUSR2``), its top functions and its time by
package.

Run: ``.venv/bin/python bench/gateway.py [--quick] [--profile]``. Prints tables; exits 0.
No assertions on timing: read the numbers (and the machine line) together.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2

from _common import (
    BENCH_DIR,
    PUTER_MCP,
    PYTHON,
    VARIANT_GAP,
    EmulatorProcess,
    Home,
    carry_over,
    machine_info,
    print_carry_over,
    print_table,
    private_home,
    process_cpu_ms,
    round_order,
    summarize,
)

MODEL = "gpt-5-nano"
PROMPT = "Say hello to the benchmark."
CONCURRENCY = 50
OVER_BARE_TARGET_MS = 1.0
RPS_TARGET_RATIO = 0.6
REQUESTS_PER_ACCOUNT = 150
"""Requests the run may send on one account: below a paid account's 200 per window, so that
even if every request of the run fell into one window, no limit would bind."""


@dataclass(frozen=True)
class Sizes:
    latency_rounds: int
    warmup_rounds: int
    period: float
    """Least seconds per latency round (requests spaced as a client's would be, not back to back)."""
    burst: int
    """Requests per load burst (one burst per variant per load round)."""
    load_rounds: int


FULL = Sizes(latency_rounds=300, warmup_rounds=20, period=0.03, burst=1500, load_rounds=3)
QUICK = Sizes(latency_rounds=80, warmup_rounds=10, period=0.03, burst=500, load_rounds=2)


# -- the servers ---------------------------------------------------------------------------


class _Drained:
    """Reads a child's pipe in a thread (a full pipe would block the child), keeping its tail."""

    def __init__(self, pipe: Any) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self._ready = threading.Event()
        self._pipe = pipe
        self.first_match = ""
        self._marker = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._pipe:
            self.lines.append(line.rstrip())
            if self._marker and not self.first_match and self._marker in line:
                self.first_match = line.strip()
                self._ready.set()
        self._ready.set()

    def wait_for(self, marker: str, timeout: float) -> str:
        self._marker = marker
        for line in list(self.lines):
            if marker in line:
                return line.strip()
        self._ready.wait(timeout)
        return self.first_match


@contextmanager
def _server(
    args: list[str], env: dict[str, str], *, marker: str, on_stderr: bool
) -> Iterator[tuple[str, int]]:
    """Start a server process; yields (the line carrying `marker`, its pid). Stopped by pid."""
    process = subprocess.Popen(
        args,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL if on_stderr else subprocess.PIPE,
        stderr=subprocess.PIPE if on_stderr else subprocess.DEVNULL,
        text=True,
    )
    try:
        drained = _Drained(process.stderr if on_stderr else process.stdout)
        line = drained.wait_for(marker, 60)
        if not line:
            tail = "\n".join(drained.lines)
            raise RuntimeError(f"{args[1]} did not start within 60 s:\n{tail}")
        yield line, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextmanager
def product_gateway(
    home: Home, emulator: EmulatorProcess, *, command: list[str] | None = None
) -> Iterator[tuple[str, int]]:
    """``puter-mcp gateway --port 0`` over the home's accounts; yields (base URL, pid).

    `command`: what runs puter-mcp (default: its console script)."""
    args = [*(command or [PUTER_MCP]), "gateway", "--port", "0"]
    with _server(args, home.env(emulator.url), marker="http://", on_stderr=True) as (line, pid):
        yield line.split()[-1].removesuffix("/v1"), pid


@contextmanager
def bare_forwarder(emulator: EmulatorProcess, tokens: list[str]) -> Iterator[tuple[str, int]]:
    args = [PYTHON, str(BENCH_DIR / "bare_gateway.py"), "--upstream", emulator.url]
    env = {"PUTER_AUTH_TOKENS": ",".join(tokens)}
    with _server(args, env, marker="BARE_GATEWAY_URL=", on_stderr=False) as (line, pid):
        yield line.partition("=")[2], pid


# -- one request of each kind ------------------------------------------------------------


class Caller:
    """How each variant makes one request, over one shared client per server."""

    def __init__(self, http: httpx2.AsyncClient) -> None:
        self.http = http

    async def openai(self, url: str, body: dict[str, Any]) -> None:
        """One Chat Completions request, read whole; raises unless it is a complete answer."""
        if not body.get("stream"):
            response = await self.http.post(url, json=body)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
            if not response.json()["choices"][0]["message"]["content"]:
                raise RuntimeError("an answer without text")
            return
        done = False
        text = 0
        async with self.http.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:300]!r}")
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: ") :]
                if data == "[DONE]":
                    done = True
                    continue
                chunk = json.loads(data)
                if "error" in chunk:
                    raise RuntimeError(f"error event: {chunk['error']}")
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    text += 1
        if not done or not text:
            raise RuntimeError(f"a stream without [DONE] or text ({text} text chunks)")

    async def direct(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> None:
        """The upstream request itself, streamed NDJSON read whole."""
        text = 0
        async with self.http.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"direct: HTTP {response.status_code}")
            async for line in response.aiter_lines():
                if line and json.loads(line).get("type") == "text":
                    text += 1
        if not text:
            raise RuntimeError("direct: an answer without text")


def _turns(tokens: list[str]) -> Callable[[], dict[str, str]]:
    headers = [
        {"Authorization": f"Bearer {token}", "Accept": "application/x-ndjson, application/json"}
        for token in tokens
    ]
    position = [0]

    def next_headers() -> dict[str, str]:
        position[0] = (position[0] + 1) % len(headers)
        return headers[position[0]]

    return next_headers


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Variant:
    call: Callable[[], Awaitable[None]]
    server_pid: int | None
    wall_ms: list[float] = field(default_factory=list)
    server_cpu_ms: list[float] = field(default_factory=list)
    emulator_cpu_ms: list[float] = field(default_factory=list)
    client_cpu_ms: list[float] = field(default_factory=list)
    places: list[int] = field(default_factory=list)
    """Where in each measured round it ran (0: first), for `carry_over`."""
    failures: int = 0
    # Load bursts: requests per second, and CPU per request of each process, per burst.
    rps: list[float] = field(default_factory=list)
    load_server_cpu: list[float] = field(default_factory=list)
    load_emulator_cpu: list[float] = field(default_factory=list)
    load_client_cpu: list[float] = field(default_factory=list)
    load_failures: int = 0


def _cpu(pid: int | None) -> float:
    return process_cpu_ms(pid) if pid else math.nan


def _fail(name: str, variant: Variant, exc: Exception, count: int) -> None:
    if count <= 3:
        print(f"  {name} failed: {exc}", file=sys.stderr)


async def latency_rounds(variants: dict[str, Variant], sizes: Sizes, emulator_pid: int | None) -> None:
    """Each variant once per round, in a balanced order (`round_order`); NaN marks a failed request."""
    names = list(variants)
    for round_number in range(-sizes.warmup_rounds, sizes.latency_rounds):
        round_started = time.perf_counter()
        for place, name in enumerate(round_order(names, round_number)):
            variant = variants[name]
            await anyio.sleep(VARIANT_GAP)
            server_before, emulator_before = _cpu(variant.server_pid), _cpu(emulator_pid)
            client_before = time.process_time()
            started = time.perf_counter()
            try:
                await variant.call()
            except Exception as exc:
                variant.failures += 1
                _fail(name, variant, exc, variant.failures)
                elapsed = math.nan
            else:
                elapsed = (time.perf_counter() - started) * 1000
            if round_number >= 0:
                variant.wall_ms.append(elapsed)
                variant.places.append(place)
                variant.client_cpu_ms.append((time.process_time() - client_before) * 1000)
                variant.server_cpu_ms.append(_cpu(variant.server_pid) - server_before)
                variant.emulator_cpu_ms.append(_cpu(emulator_pid) - emulator_before)
        rest = sizes.period - (time.perf_counter() - round_started)
        if rest > 0:
            await anyio.sleep(rest)


async def burst(call: Callable[[], Awaitable[None]], requests: int, concurrency: int) -> tuple[float, int]:
    """`requests` calls by `concurrency` workers; returns (seconds from first to last, failures)."""
    remaining = requests
    failures: list[Exception] = []

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            try:
                await call()
            except Exception as exc:
                failures.append(exc)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(worker)
    elapsed = time.perf_counter() - started
    if failures:
        print(f"  {len(failures)} failed in a burst, the first: {failures[0]}", file=sys.stderr)
    return elapsed, len(failures)


async def load_rounds(variants: dict[str, Variant], sizes: Sizes, emulator_pid: int | None) -> None:
    """Bursts of `sizes.burst` requests at `CONCURRENCY`, one per variant per round, in turn."""
    names = list(variants)
    for variant in variants.values():  # one unmeasured burst each: connections, caches
        await burst(variant.call, CONCURRENCY * 4, CONCURRENCY)
    for round_number in range(sizes.load_rounds):
        for name in round_order(names, round_number):
            variant = variants[name]
            await anyio.sleep(VARIANT_GAP)
            server_before, emulator_before = _cpu(variant.server_pid), _cpu(emulator_pid)
            client_before = time.process_time()
            seconds, failures = await burst(variant.call, sizes.burst, CONCURRENCY)
            variant.load_failures += failures
            variant.rps.append(sizes.burst / seconds)
            variant.load_client_cpu.append((time.process_time() - client_before) * 1000 / sizes.burst)
            variant.load_server_cpu.append((_cpu(variant.server_pid) - server_before) / sizes.burst)
            variant.load_emulator_cpu.append((_cpu(emulator_pid) - emulator_before) / sizes.burst)


# -- reporting ------------------------------------------------------------------------------


def _paired(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True) if not (math.isnan(x) or math.isnan(y))]


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.fmean(finite) if finite else math.nan


DIRECT = "direct to the emulator"
GW_STREAM, GW_WHOLE = "puter-mcp gateway, streamed", "puter-mcp gateway, whole"
BARE_STREAM, BARE_WHOLE = "bare forwarder, streamed", "bare forwarder, whole"


def report_latency(variants: dict[str, Variant]) -> dict[str, float]:
    rows: list[list[Any]] = []
    for name, variant in variants.items():
        s = summarize([v for v in variant.wall_ms if not math.isnan(v)])
        rows.append([name, s.n, variant.failures, s.median, s.p95])
    print_table(
        ["variant (one request, wall ms)", "n", "failed", "median", "p95"], rows, title="Time per request"
    )

    wall = {name: variant.wall_ms for name, variant in variants.items()}
    pairs = [
        ("gateway streamed - direct", _paired(wall[GW_STREAM], wall[DIRECT])),
        ("gateway whole - direct", _paired(wall[GW_WHOLE], wall[DIRECT])),
        ("bare forwarder streamed - direct", _paired(wall[BARE_STREAM], wall[DIRECT])),
        ("bare forwarder whole - direct", _paired(wall[BARE_WHOLE], wall[DIRECT])),
        ("gateway streamed - bare forwarder streamed", _paired(wall[GW_STREAM], wall[BARE_STREAM])),
        ("gateway whole - bare forwarder whole", _paired(wall[GW_WHOLE], wall[BARE_WHOLE])),
    ]
    rows = []
    medians: dict[str, float] = {}
    for name, values in pairs:
        s = summarize(values)
        medians[name] = s.median
        rows.append([name, s.n, s.median, s.p95])
    print_table(["added latency (paired per round, ms)", "n", "median", "p95"], rows, title="Added latency")
    print_carry_over(
        [
            (
                "gateway streamed - bare forwarder streamed",
                carry_over(variants[GW_STREAM], variants[BARE_STREAM]),
            ),
            ("gateway whole - bare forwarder whole", carry_over(variants[GW_WHOLE], variants[BARE_WHOLE])),
        ]
    )

    rows = []
    for name, variant in variants.items():
        rows.append(
            [name, _mean(variant.client_cpu_ms), _mean(variant.server_cpu_ms), _mean(variant.emulator_cpu_ms)]
        )
    print_table(
        ["CPU per request, one at a time (mean ms)", "bench (client)", "server", "emulator"],
        rows,
        title="CPU per request, sequential",
    )
    for label in ("gateway streamed - bare forwarder streamed", "gateway whole - bare forwarder whole"):
        verdict = "met" if medians[label] <= OVER_BARE_TARGET_MS else "MISSED"
        print(f"{label}: {medians[label]:.2f} ms (median); target <= {OVER_BARE_TARGET_MS} ms: {verdict}")
    return medians


def report_load(variants: dict[str, Variant], burst_size: int) -> None:
    rows: list[list[Any]] = []
    for name, variant in variants.items():
        rows.append(
            [
                name,
                len(variant.rps),
                variant.load_failures,
                statistics.median(variant.rps) if variant.rps else math.nan,
                min(variant.rps, default=math.nan),
                max(variant.rps, default=math.nan),
                _mean(variant.load_client_cpu),
                _mean(variant.load_server_cpu),
                _mean(variant.load_emulator_cpu),
            ]
        )
    print_table(
        [
            f"{CONCURRENCY} concurrent clients, bursts of {burst_size}",
            "bursts",
            "failed",
            "req/s median",
            "min",
            "max",
            "CPU ms/req: bench",
            "server",
            "emulator",
        ],
        rows,
        title="Requests per second (CPU per request of each process, mean over the bursts)",
    )
    for product, bare in ((GW_STREAM, BARE_STREAM), (GW_WHOLE, BARE_WHOLE)):
        if product not in variants or bare not in variants:
            continue
        ratio = statistics.median(variants[product].rps) / statistics.median(variants[bare].rps)
        verdict = "met" if ratio >= RPS_TARGET_RATIO else "MISSED"
        print(
            f"{product} / {bare}: {ratio:.2f}x requests per second; target >= {RPS_TARGET_RATIO}x: {verdict}"
        )


def report_emulator_log(emulator: EmulatorProcess, accounts: dict[str, list[str]]) -> None:
    """What reached the emulator: per pool, the requests and any status other than 200."""
    owner = {name: pool for pool, names in accounts.items() for name in names}
    counts: dict[str, collections.Counter[Any]] = {pool: collections.Counter() for pool in accounts}
    for record in emulator.requests():
        pool = owner.get(record["username"] or "")
        if pool is not None and record["driver_method"] == "complete":
            counts[pool][record["status"]] += 1
    rows = [
        [pool, sum(counter.values()), counter[200], sum(n for status, n in counter.items() if status != 200)]
        for pool, counter in counts.items()
    ]
    print_table(["emulator log (chat requests)", "sent", "200", "other (429...)"], rows, title="Upstream")


# -- profiling (--profile) --------------------------------------------------------------------

# Runs `puter-mcp` under cProfile, switched on by SIGUSR1 and dumped by SIGUSR2, so that only
# the measured requests are profiled (not the imports and start-up), in the event loop's thread.
_PROFILED = textwrap.dedent(
    """
    import cProfile, signal, sys, time
    out, *rest = sys.argv[1:]
    # The event loop thread's CPU time, not wall time: on a busy machine a call preempted by
    # another process would otherwise be charged the time it waited.
    profiler = cProfile.Profile(time.thread_time)
    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    def stop(*_):
        profiler.disable()
        profiler.dump_stats(out)
    signal.signal(signal.SIGUSR2, stop)
    from puter_mcp.cli import main
    sys.exit(main(rest))
    """
)

_BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("waiting in epoll (idle, not CPU)", ("epoll",)),
    ("sqlite3 (shared state)", ("sqlite3",)),
    ("pydantic", ("pydantic",)),
    ("puter_mcp.gateway", ("puter_mcp/gateway",)),
    ("puter_mcp.core", ("puter_mcp/core",)),
    ("puter_mcp.routing", ("puter_mcp/routing",)),
    ("puter_mcp.puter", ("puter_mcp/puter",)),
    ("puter_mcp (other)", ("puter_mcp",)),
    ("starlette", ("starlette",)),
    ("uvicorn/h11", ("uvicorn", "/h11/")),
    ("httpx2/httpcore2", ("httpx2", "httpcore2")),
    ("anyio", ("anyio",)),
    ("asyncio", ("asyncio",)),
    ("socket send/recv", ("_socket.socket", "socket")),
    ("json", ("json",)),
    ("logging", ("logging",)),
]


def _bucket(filename: str, function: str) -> str:
    where = f"{filename} {function}"
    for name, markers in _BUCKETS:
        if any(marker in where for marker in markers):
            return name
    return "other"


async def profile_gateway(
    emulator: EmulatorProcess, home: Home, requests: int, stream: bool, keep: Path | None
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "gateway.prof"
        command = [PYTHON, "-c", _PROFILED, str(out)]
        async with httpx2.AsyncClient(timeout=60, limits=httpx2.Limits(max_connections=200)) as http:
            caller = Caller(http)
            with product_gateway(home, emulator, command=command) as (url, pid):
                body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}

                async def call() -> None:
                    await caller.openai(url + "/v1/chat/completions", body)

                await burst(call, CONCURRENCY * 4, CONCURRENCY)
                os.kill(pid, signal.SIGUSR1)
                await burst(call, requests, CONCURRENCY)
                os.kill(pid, signal.SIGUSR2)
                with anyio.fail_after(20):
                    while not out.exists():  # noqa: ASYNC110 (another process)
                        await anyio.sleep(0.05)
                await anyio.sleep(0.5)  # let the dump finish writing
        kind = "streamed" if stream else "whole"
        counter, own = _read_profile(out, requests, keep / f"gateway-{kind}.prof" if keep else None)
    busy = sum(v for k, v in counter.items() if not k.startswith("waiting"))
    rows: list[list[Any]] = [[bucket, us] for bucket, us in counter.most_common()]
    rows.append(["total CPU (all but waiting)", busy])
    print_table(
        ["gateway CPU by package (µs per request, under cProfile)", "µs"],
        rows,
        title=f"cProfile of the gateway process over {requests} {kind} requests at {CONCURRENCY} concurrent",
    )
    own.sort(reverse=True)
    print_table(
        ["top functions by own time", "µs/req", "calls/req"],
        [[where, us, calls] for us, calls, where in own[:30]],
    )


def _read_profile(
    path: Path, requests: int, keep: Path | None
) -> tuple[collections.Counter[str], list[tuple[float, float, str]]]:
    """Own time per request by package, and (own µs, calls, where) per function."""
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_bytes(path.read_bytes())
    raw: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    counter: collections.Counter[str] = collections.Counter()
    own: list[tuple[float, float, str]] = []
    for (filename, line, function), (_cc, calls, own_seconds, _cumulative, _callers) in raw.items():
        counter[_bucket(filename, function)] += own_seconds * 1e6 / requests
        own.append((own_seconds * 1e6 / requests, calls / requests, f"{_short(filename)}:{line} {function}"))
    return counter, own


def _short(filename: str) -> str:
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# -- main ---------------------------------------------------------------------------------


def _planned_requests(sizes: Sizes, kinds: int, profile: bool) -> int:
    """Every request one server gets in a run, warm-ups included (`kinds`: streamed and whole)."""
    latency = kinds * (sizes.latency_rounds + sizes.warmup_rounds) + 5
    load = kinds * (sizes.load_rounds * sizes.burst + CONCURRENCY * 4)
    profiled = kinds * (sizes.burst + CONCURRENCY * 4) if profile else 0
    return latency + load + profiled


async def run(sizes: Sizes, profile: bool, keep: Path | None) -> None:
    print(f"machine: {machine_info()}")
    with EmulatorProcess() as emulator, private_home() as home:
        print(f"emulator: {emulator.url} (its own process, instant answers)")
        planned = _planned_requests(sizes, 2, profile)
        per_pool = max(3, math.ceil(planned / REQUESTS_PER_ACCOUNT))
        pools: dict[str, list[dict[str, Any]]] = {
            pool: [emulator.add_account(f"bench_{pool}_{i}", "paid") for i in range(per_pool)]
            for pool in ("gateway", "bare", "direct")
        }
        for account in pools["gateway"]:
            home.save_account(account["username"], account["token"], "paid")
        print(
            f"accounts: {per_pool} paid emulator accounts for each of the gateway, the bare forwarder "
            f"and the direct calls ({per_pool * 200} requests per 10 s and {per_pool * 20} in flight each): "
            f"each pool could take every request of the run ({planned}) in one "
            f"window, so pacing never binds"
        )
        started = time.perf_counter()
        limits = httpx2.Limits(max_connections=200, max_keepalive_connections=200)
        # The placeholder key the OpenAI SDK insists on sending, as a real client would (with
        # keys off, the gateway takes it as no key).
        as_sdk = {"Authorization": "Bearer sk-bench"}
        with (
            product_gateway(home, emulator) as (gateway_url, gateway_pid),
            bare_forwarder(emulator, [a["token"] for a in pools["bare"]]) as (bare_url, bare_pid),
        ):
            async with (
                httpx2.AsyncClient(timeout=60, limits=limits, headers=as_sdk) as to_gateway,
                httpx2.AsyncClient(timeout=60, limits=limits, headers=as_sdk) as to_bare,
                httpx2.AsyncClient(timeout=60, limits=limits) as to_emulator,
            ):
                gateway, bare, direct_caller = Caller(to_gateway), Caller(to_bare), Caller(to_emulator)
                # The gateway resolves the alias and sends the catalogue's id: ask it once and
                # send exactly what it sent, from the other variants too.
                emulator.clear_requests()
                messages = [{"role": "user", "content": PROMPT}]
                await gateway.openai(
                    gateway_url + "/v1/chat/completions", {"model": MODEL, "messages": messages}
                )
                sent = next(r for r in emulator.requests() if r["driver_method"] == "complete")
                print(f"the gateway sends upstream: {json.dumps(sent['args'])}")
                upstream_body = {
                    "interface": "puter-chat-completion",
                    "driver": "ai-chat",
                    "method": "complete",
                    "args": sent["args"],
                }
                sent_model = sent["args"]["model"]
                direct_turn = _turns([a["token"] for a in pools["direct"]])
                gateway_chat, bare_chat = (
                    gateway_url + "/v1/chat/completions",
                    bare_url + "/v1/chat/completions",
                )
                product_bodies = {
                    s: {"model": MODEL, "messages": messages, "stream": s} for s in (True, False)
                }
                bare_bodies = {
                    s: {"model": sent_model, "messages": messages, "stream": s} for s in (True, False)
                }

                async def direct() -> None:
                    await direct_caller.direct(emulator.url + "/drivers/call", upstream_body, direct_turn())

                def openai(caller: Caller, url: str, body: dict[str, Any]) -> Callable[[], Awaitable[None]]:
                    async def call() -> None:
                        await caller.openai(url, body)

                    return call

                variants = {
                    DIRECT: Variant(direct, None),
                    GW_STREAM: Variant(openai(gateway, gateway_chat, product_bodies[True]), gateway_pid),
                    BARE_STREAM: Variant(openai(bare, bare_chat, bare_bodies[True]), bare_pid),
                    GW_WHOLE: Variant(openai(gateway, gateway_chat, product_bodies[False]), gateway_pid),
                    BARE_WHOLE: Variant(openai(bare, bare_chat, bare_bodies[False]), bare_pid),
                }
                emulator.clear_requests()
                await latency_rounds(variants, sizes, emulator.pid)
                report_latency(variants)
                await load_rounds(variants, sizes, emulator.pid)
                report_load(variants, sizes.burst)
                report_emulator_log(
                    emulator, {pool: [a["username"] for a in accounts] for pool, accounts in pools.items()}
                )
        print(f"\n(measured in {time.perf_counter() - started:.0f} s; machine after: {machine_info()})")
        if profile:
            for stream in (True, False):
                await profile_gateway(emulator, home, sizes.burst, stream, keep)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="puter-mcp gateway's added latency and throughput")
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    parser.add_argument("--profile", action="store_true", help="also profile the gateway process")
    parser.add_argument(
        "--keep-profiles", type=Path, help="with --profile: keep the raw cProfile output in this directory"
    )
    parser.add_argument("--rounds", type=int, help="latency rounds (one request per variant each)")
    parser.add_argument("--burst", type=int, help="requests per load burst")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds or args.burst:
        sizes = Sizes(
            latency_rounds=args.rounds or sizes.latency_rounds,
            warmup_rounds=sizes.warmup_rounds,
            period=sizes.period,
            burst=args.burst or sizes.burst,
            load_rounds=sizes.load_rounds,
        )
    anyio.run(run, sizes, args.profile, args.keep_profiles)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
