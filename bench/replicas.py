"""Gateway replicas on one Redis: requests per second, and what the Redis store costs (issue 12 §5).

Side by side in one run, each in its own process: a ``redis-server`` this script starts itself
(loopback, a free port, a temporary directory, ``--save '' --appendonly no``; never the
system's service), the emulator (instant answers, ``--fast``: httptools and uvloop, so that the
upstream takes as little of the two CPUs as it can), three ``puter-mcp gateway --port 0``
processes with ``state = "redis://..."`` reading one read-only accounts file
(``PUTER_MCP_ACCOUNTS_FILE``), as the replicas of a fleet do, and one more gateway with the
default SQLite store.

Two figures:

1. **Requests per second of one, two and three replicas** at 50 concurrent connections, spread
   evenly over the replicas in use (streamed Chat Completions), in bursts that take turns round
   by round. The bursts are sent by ``wrk`` (Debian's package; one process per replica) when it
   is installed, else by this script's own client (``--load python``), which burns ~1 ms of CPU
   per request, a third of what the fleet needs, and so measures the client as much as the
   replicas. With each burst, the CPU each process burns per request: the gateways,
   redis-server, the emulator and the load (wrk, or this client). They all share this
   machine's CPUs, so the sum says how many requests per second the CPUs allow at most, and
   whether the figure is bound by them rather than by the gateway's design.
   Target: three replicas at least 1.5x one replica's requests per second.
2. **The Redis store's added latency over the SQLite store**: one replica with Redis and the
   gateway with SQLite, the same request (streamed and whole) paired round by round, in a
   balanced order, at least 30 ms per round. Target: at most 0.5 ms (median).

Pacing never binds: the replicas share a pool of paid emulator accounts (200 requests per 10 s
each, 20 in flight) large enough to take every request the run sends them within one window,
and the SQLite gateway its own pool (the emulator enforces the same limits; that gateway does
not see the replicas' windows). The counts are printed, and so is every status other than 200
in the emulator's log.

Run: ``.venv/bin/python bench/replicas.py [--quick] [--load wrk|python]``. Needs
``redis-server`` on the PATH (``.ci/run`` installs Debian's package), and ``wrk`` for the default
load (``apt-get install wrk``). Prints tables; exits 0. No assertions on timing: read
the numbers (and the machine line) together.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import redis

from _common import (
    PUTER_MCP,
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

# bench/gateway.py's ways of starting a server (reading its URL from its output), of making one
# checked request and of a burst at a given concurrency: the two benchmarks measure alike.
# One set of run sizes for the gateway benchmarks: a burst is per replica count here.
from gateway import FULL, QUICK, Caller, Sizes, _server, burst

MODEL = "gpt-5-nano"
PROMPT = "Say hello to the benchmark."
CONCURRENCY = 50
REPLICAS = 3
RPS_TARGET_RATIO = 1.5
REDIS_OVER_SQLITE_TARGET_MS = 0.5
REQUESTS_PER_ACCOUNT = 150
"""Requests the run may send on one account: below a paid account's 200 per window, so that
even if every request of the run fell into one window, no limit would bind."""
WARMUP_BURST = CONCURRENCY * 4
WRK_MAX_RATE = 1500
"""More requests per second than 2 CPUs allow here: with `--load wrk`, the replicas' accounts
are planned for this rate over a whole window, since wrk's bursts last a time, not a count."""


# -- the processes ---------------------------------------------------------------------------


@contextmanager
def redis_server() -> Iterator[tuple[str, int, str]]:
    """A redis-server of the bench's own, as the tests start theirs (`tests.helpers.RedisServer`:
    loopback, a free port, a temporary directory, nothing saved); yields (URL, pid, version)."""
    # The repository's root is on the path once _common is imported (see _common.REPO).
    from tests.helpers import RedisServer

    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (Debian: apt-get install -y redis-server)")
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
    with tempfile.TemporaryDirectory(prefix="puter-mcp-bench-redis-") as directory:
        server = RedisServer(Path(directory)).start()
        try:
            assert server.process is not None
            yield server.url, server.process.pid, version.stdout.split(" sha=")[0].strip()
        finally:
            server.stop()


@contextmanager
def gateway_process(home: Home, emulator: EmulatorProcess, **env: str) -> Iterator[tuple[str, int]]:
    """``puter-mcp gateway --port 0`` in `home`, with `env` added; yields (base URL, pid)."""
    args = [PUTER_MCP, "gateway", "--port", "0"]
    with _server(args, home.env(emulator.url, **env), marker="http://", on_stderr=True) as (line, pid):
        yield line.split()[-1].removesuffix("/v1"), pid


# -- measuring ---------------------------------------------------------------------------------


def _cpu(pids: list[int]) -> float:
    return sum(process_cpu_ms(pid) for pid in pids)


def machine_cpu_ms() -> tuple[float, float]:
    """(busy, all) CPU time of the whole machine so far, every CPU summed, in ms (``/proc/stat``).

    The bench's processes are not alone on this VM: what the others took during a burst is the
    machine's busy time minus ours, and idle time left over means the CPUs did not bound it."""
    try:
        with open("/proc/stat", encoding="utf-8") as stat:
            ticks = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return math.nan, math.nan
    idle = ticks[3] + ticks[4]  # idle, iowait
    scale = 1000 / os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) * scale, sum(ticks) * scale


@dataclass
class Fleet:
    """The first `replicas` gateways, taking requests round-robin."""

    replicas: int
    urls: list[str]
    pids: list[int]
    rps: list[float] = field(default_factory=list)
    failures: int = 0
    # CPU per request of each process during each burst (ms).
    gateways_cpu: list[float] = field(default_factory=list)
    redis_cpu: list[float] = field(default_factory=list)
    emulator_cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    others_cpu: list[float] = field(default_factory=list)
    """The machine's busy CPU per request minus the four kinds above: processes not ours."""
    machine_busy: list[float] = field(default_factory=list)
    """The share of the machine's CPU time that was busy during the burst (0-1)."""

    def ours(self) -> float:
        """CPU per request of the bench's own processes (ms, mean over the bursts)."""
        return sum(
            _mean(values)
            for values in (self.gateways_cpu, self.redis_cpu, self.emulator_cpu, self.client_cpu)
        )

    def caller(self, caller: Caller, stream: bool) -> Callable[[], Awaitable[None]]:
        body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
        turn = itertools.cycle([url + "/v1/chat/completions" for url in self.urls])

        async def call() -> None:
            url = next(turn)
            try:
                await caller.openai(url, body)
            except Exception as exc:
                # Some transport errors say nothing in str(); name the kind and the replica.
                raise RuntimeError(f"{url}: {exc!r}") from exc

        return call


async def load_rounds(
    fleets: list[Fleet], caller: Caller, sizes: Sizes, redis_pid: int, emulator_pid: int, load: str
) -> None:
    """One burst per fleet per round, in a balanced order (`round_order`), after one unmeasured burst each.

    `load` says who sends them: this process (``python``: every answer read and checked), or
    ``wrk`` (one wrk process per replica, the connections shared out among them, for
    `wrk_seconds(sizes)` each), whose CPU per request is a small part of this client's, so that
    more of the two CPUs is left to the replicas.
    """
    calls = {fleet.replicas: fleet.caller(caller, stream=True) for fleet in fleets}
    for fleet in fleets:  # with wrk too: each replica's answers are checked here first
        await burst(calls[fleet.replicas], WARMUP_BURST, CONCURRENCY)
    for round_number in range(sizes.load_rounds):
        for fleet in round_order(fleets, round_number):
            await anyio.sleep(VARIANT_GAP)
            gateways, redis, emulator = _cpu(fleet.pids), _cpu([redis_pid]), _cpu([emulator_pid])
            client = time.process_time()
            children = _children_cpu_ms()
            busy, every = machine_cpu_ms()
            if load == "wrk":
                requests, seconds, failures = await anyio.to_thread.run_sync(
                    wrk_burst, fleet.urls, wrk_seconds(sizes)
                )
            else:
                requests = sizes.burst
                seconds, failures = await burst(calls[fleet.replicas], sizes.burst, CONCURRENCY)
            busy_after, every_after = machine_cpu_ms()
            fleet.failures += failures
            fleet.rps.append(requests / seconds)
            fleet.gateways_cpu.append((_cpu(fleet.pids) - gateways) / requests)
            fleet.redis_cpu.append((_cpu([redis_pid]) - redis) / requests)
            fleet.emulator_cpu.append((_cpu([emulator_pid]) - emulator) / requests)
            client_ms = (time.process_time() - client) * 1000 + _children_cpu_ms() - children
            fleet.client_cpu.append(client_ms / requests)
            ours = (
                fleet.gateways_cpu[-1] + fleet.redis_cpu[-1] + fleet.emulator_cpu[-1] + fleet.client_cpu[-1]
            )
            fleet.others_cpu.append((busy_after - busy) / requests - ours)
            fleet.machine_busy.append((busy_after - busy) / (every_after - every))


def wrk_seconds(sizes: Sizes) -> int:
    """How long one wrk burst lasts (whole seconds, as wrk takes them): about what
    `sizes.burst` requests take here."""
    return max(2, round(sizes.burst / 400))


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"
"""


def wrk_burst(urls: list[str], seconds: int) -> tuple[int, float, int]:
    """`CONCURRENCY` connections shared out over `urls`, one wrk process (one thread) per URL,
    streamed Chat Completions for `seconds`: (requests answered, seconds, failures).

    wrk reads each answer whole but does not look inside it: the warm-up bursts of the Python
    client check the answers, and the emulator's log is checked at the end."""
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True})
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % body)
    try:
        shares = [
            CONCURRENCY // len(urls) + (1 if i < CONCURRENCY % len(urls) else 0) for i in range(len(urls))
        ]
        started = time.perf_counter()
        runs = [
            subprocess.Popen(
                [
                    "wrk",
                    "-t1",
                    f"-c{share}",
                    f"-d{seconds}s",
                    "-s",
                    script.name,
                    url + "/v1/chat/completions",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for url, share in zip(urls, shares, strict=True)
        ]
        outputs = [run.communicate(timeout=seconds + 60)[0] for run in runs]
        elapsed = time.perf_counter() - started
    finally:
        os.unlink(script.name)
    requests = failures = 0
    rate = 0.0
    for output in outputs:
        found = re.search(r"(\d+) requests in", output)
        per_second = re.search(r"Requests/sec:\s*([\d.]+)", output)
        if found is None or per_second is None:
            raise RuntimeError(f"wrk said something unexpected:\n{output}")
        requests += int(found.group(1))
        rate += float(per_second.group(1))
        for bad in re.findall(r"Non-2xx or 3xx responses: (\d+)", output):
            failures += int(bad)
        for errors in re.findall(
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
        ):
            failures += sum(int(n) for n in errors)
    # wrk's own rate is over its own measured time; the sum over the replicas is the fleet's.
    return requests, requests / rate if rate else elapsed, failures


def _wrk_version() -> str:
    said = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=10)
    return (said.stdout or said.stderr).split("\n")[0].split(" Copyright")[0].strip()


def _children_cpu_ms() -> float:
    """CPU time of this process's waited-for children (wrk), in ms."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


@dataclass
class Variant:
    call: Callable[[], Awaitable[None]]
    gateway_pid: int
    wall_ms: list[float] = field(default_factory=list)
    places: list[int] = field(default_factory=list)
    """Where in each measured round it ran (0: first), for `carry_over`."""
    failures: int = 0


async def latency_rounds(variants: dict[str, Variant], sizes: Sizes) -> None:
    """Each variant once per round, in a balanced order (`round_order`); NaN marks a failed request."""
    names = list(variants)
    for round_number in range(-sizes.warmup_rounds, sizes.latency_rounds):
        round_started = time.perf_counter()
        for place, name in enumerate(round_order(names, round_number)):
            variant = variants[name]
            await anyio.sleep(VARIANT_GAP)
            started = time.perf_counter()
            try:
                await variant.call()
            except Exception as exc:
                variant.failures += 1
                if variant.failures <= 3:
                    print(f"  {name} failed: {exc}")
                elapsed = math.nan
            else:
                elapsed = (time.perf_counter() - started) * 1000
            if round_number >= 0:
                variant.wall_ms.append(elapsed)
                variant.places.append(place)
        rest = sizes.period - (time.perf_counter() - round_started)
        if rest > 0:
            await anyio.sleep(rest)


def redis_commands(url: str) -> dict[str, tuple[int, int]]:
    """Redis's own count of each command so far: name -> (calls, µs spent), from ``INFO``."""
    client = redis.Redis.from_url(url)
    try:
        stats: dict[str, Any] = client.info("commandstats")  # type: ignore[assignment]
    finally:
        client.close()
    return {
        name.removeprefix("cmdstat_"): (int(values["calls"]), int(values["usec"]))
        for name, values in stats.items()
    }


# -- reporting ---------------------------------------------------------------------------------


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.fmean(finite) if finite else math.nan


def _paired(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True) if not (math.isnan(x) or math.isnan(y))]


def report_load(fleets: list[Fleet], burst_size: int | str) -> None:
    cpus = os.cpu_count() or 1
    rows: list[list[Any]] = []
    for fleet in fleets:
        rows.append(
            [
                f"{fleet.replicas} replica{'s' if fleet.replicas > 1 else ''}",
                len(fleet.rps),
                fleet.failures,
                statistics.median(fleet.rps) if fleet.rps else math.nan,
                min(fleet.rps, default=math.nan),
                max(fleet.rps, default=math.nan),
                _mean(fleet.gateways_cpu),
                _mean(fleet.gateways_cpu) / fleet.replicas,
                _mean(fleet.redis_cpu),
                _mean(fleet.emulator_cpu),
                _mean(fleet.client_cpu),
                fleet.ours(),
                _mean(fleet.others_cpu),
                f"{_mean(fleet.machine_busy):.0%}",
            ]
        )
    print_table(
        [
            f"{CONCURRENCY} clients, bursts of {burst_size}, streamed",
            "bursts",
            "failed",
            "req/s median",
            "min",
            "max",
            "CPU ms/req: gateways",
            "per gateway",
            "redis",
            "emulator",
            "bench",
            "ours",
            "not ours",
            "machine busy",
        ],
        rows,
        title="Requests per second, round-robin over the replicas (CPU per request of each process, "
        "mean over the bursts)",
    )
    one, three = fleets[0], fleets[-1]
    ratio = statistics.median(three.rps) / statistics.median(one.rps)
    verdict = "met" if ratio >= RPS_TARGET_RATIO else "MISSED"
    print(
        f"{three.replicas} replicas / 1 replica: {ratio:.2f}x requests per second; "
        f"target >= {RPS_TARGET_RATIO}x: {verdict}"
    )
    # What this machine allows at best, from the CPU figures alone: one gateway process runs on
    # one CPU at a time, and every process of the bench shares the machine's CPUs.
    one_gateway = 1000 / _mean(one.gateways_cpu)
    one_best = min(cpus * 1000 / one.ours(), one_gateway)
    three_best = min(cpus * 1000 / three.ours(), 1000 / _mean(three.gateways_cpu) * three.replicas)
    print(
        f"  at best on this machine, with its {cpus} CPUs to the bench alone: one replica "
        f"{one_best:.0f} req/s (its gateway process, on one CPU at a time, allows {one_gateway:.0f}; "
        f"every process together {cpus * 1000 / one.ours():.0f}), {three.replicas} replicas "
        f"{three_best:.0f} req/s (every process together): {three_best / one_best:.2f}x"
    )
    for fleet in fleets:
        ours = fleet.ours()
        ceiling = cpus * 1000 / ours
        rps = statistics.median(fleet.rps)
        busiest = max(
            ("the gateways", _mean(fleet.gateways_cpu)),
            ("the emulator", _mean(fleet.emulator_cpu)),
            ("the bench client", _mean(fleet.client_cpu)),
            ("redis-server", _mean(fleet.redis_cpu)),
            key=lambda item: item[1],
        )
        print(
            f"  {fleet.replicas} replica(s): the bench's processes burn {ours:.2f} ms of CPU per request "
            f"(the largest share: {busiest[0]}, {busiest[1]:.2f} ms), so {cpus} CPUs to themselves "
            f"would allow at most {ceiling:.0f} req/s; measured {rps:.0f} ({rps / ceiling:.0%} of "
            f"that), the machine {_mean(fleet.machine_busy):.0%} busy, other processes "
            f"{_mean(fleet.others_cpu):.2f} ms per request"
        )


def report_latency(variants: dict[str, Variant], cpu_per_request: dict[str, float]) -> None:
    rows: list[list[Any]] = []
    for name, variant in variants.items():
        s = summarize([v for v in variant.wall_ms if not math.isnan(v)])
        rows.append([name, s.n, variant.failures, s.median, s.p95])
    print_table(
        ["variant (one request, wall ms)", "n", "failed", "median", "p95"],
        rows,
        title="Time per request, one at a time",
    )
    rows = []
    medians: dict[str, float] = {}
    for kind in ("streamed", "whole"):
        values = _paired(variants[f"Redis store, {kind}"].wall_ms, variants[f"SQLite store, {kind}"].wall_ms)
        s = summarize(values)
        medians[kind] = s.median
        rows.append([f"Redis - SQLite, {kind}", s.n, s.median, s.p95])
    print_table(
        ["added latency (paired per round, ms)", "n", "median", "p95"],
        rows,
        title="The Redis store over the SQLite store",
    )
    print_carry_over(
        [
            (
                f"Redis - SQLite, {kind}",
                carry_over(variants[f"Redis store, {kind}"], variants[f"SQLite store, {kind}"]),
            )
            for kind in ("streamed", "whole")
        ]
    )
    # Per process over the whole phase, both kinds together: /proc counts in 10 ms ticks, too
    # coarse for one request, exact enough over hundreds.
    print_table(
        ["CPU per request over these rounds (ms)", "ms"],
        [[name, value] for name, value in cpu_per_request.items()],
    )
    for kind, median in medians.items():
        verdict = "met" if median <= REDIS_OVER_SQLITE_TARGET_MS else "MISSED"
        print(
            f"Redis store - SQLite store, {kind}: {median:.2f} ms (median); "
            f"target <= {REDIS_OVER_SQLITE_TARGET_MS} ms: {verdict}"
        )


def report_redis_commands(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], requests: int
) -> None:
    """The commands one request through the Redis store costs Redis (and the time Redis spent)."""
    rows: list[list[Any]] = []
    for name, (calls, usec) in sorted(after.items(), key=lambda item: -item[1][0]):
        calls_before, usec_before = before.get(name, (0, 0))
        if name == "info" or calls == calls_before:
            continue  # the bench's own INFO
        rows.append([name, (calls - calls_before) / requests, (usec - usec_before) / requests])
    # EVALSHA's time already holds its commands': no sum of the times.
    rows.append(["all", sum(row[1] for row in rows), math.nan])
    # Redis counts the commands its Lua scripts run too: EVALSHA is the scripts' own line (their
    # time includes their commands'), the rest mostly runs inside them.
    print_table(
        ["Redis commands per request (INFO commandstats, inside scripts too)", "calls", "µs in Redis"],
        rows,
        title=f"What one request through the Redis store sends Redis ({requests} requests, one at a time)",
    )


def report_emulator_log(emulator: EmulatorProcess, pools: dict[str, list[str]]) -> None:
    """What reached the emulator: per pool, the chat requests and any status other than 200."""
    owner = {name: pool for pool, names in pools.items() for name in names}
    counts: dict[str, collections.Counter[Any]] = {pool: collections.Counter() for pool in pools}
    for record in emulator.requests():
        pool = owner.get(record["username"] or "")
        if pool is not None and record["driver_method"] == "complete":
            counts[pool][record["status"]] += 1
    rows = [
        [pool, sum(counter.values()), counter[200], sum(n for status, n in counter.items() if status != 200)]
        for pool, counter in counts.items()
    ]
    print_table(["emulator log (chat requests)", "sent", "200", "other (429...)"], rows, title="Upstream")


# -- main ------------------------------------------------------------------------------------


def _planned(sizes: Sizes, load: str) -> tuple[int, int]:
    """Every request the replicas' pool and the SQLite gateway's pool get in a run (with wrk:
    within one window at most)."""
    latency = 2 * (sizes.latency_rounds + sizes.warmup_rounds) + 5
    if load == "wrk":
        return latency + REPLICAS * WARMUP_BURST + WRK_MAX_RATE * 10, latency
    return latency + REPLICAS * (sizes.load_rounds * sizes.burst + WARMUP_BURST), latency


async def run(sizes: Sizes, load: str) -> None:
    print(f"machine: {machine_info()}")
    if load == "wrk":
        print(f"load: {_wrk_version()}, one process per replica, {wrk_seconds(sizes):g} s a burst")
    with ExitStack() as stack:
        redis_url, redis_pid, redis_version = stack.enter_context(redis_server())
        # The lightest upstream there is here: what the replicas' scaling is measured against
        # should take as little of the two CPUs as it can.
        emulator = stack.enter_context(EmulatorProcess(fast=True))
        print(f"redis: {redis_version}, {redis_url} (its own, started by this script, nothing saved)")
        print(f"emulator: {emulator.url} (its own process, instant answers, httptools and uvloop)")
        planned_redis, planned_sqlite = _planned(sizes, load)
        sizes_of = {
            "replicas (Redis)": max(3, math.ceil(planned_redis / REQUESTS_PER_ACCOUNT)),
            "SQLite gateway": max(3, math.ceil(planned_sqlite / REQUESTS_PER_ACCOUNT)),
        }
        planned_of = {"replicas (Redis)": planned_redis, "SQLite gateway": planned_sqlite}
        pools: dict[str, list[dict[str, Any]]] = {
            pool: [emulator.add_account(f"bench_{pool.split()[0]}_{i}", "paid") for i in range(count)]
            for pool, count in sizes_of.items()
        }
        for pool, count in sizes_of.items():
            print(
                f"accounts: {count} paid emulator accounts for the {pool} ({count * 200} requests per "
                f"10 s, {count * 20} in flight): more than every request it gets in the run "
                f"({planned_of[pool]}), so pacing never binds"
            )
        # The replicas read one accounts file, as a fleet's do (a mounted secret); each has a
        # home of its own for its log.
        shared = stack.enter_context(private_home())
        for account in pools["replicas (Redis)"]:
            shared.save_account(account["username"], account["token"], "paid")
        urls: list[str] = []
        pids: list[int] = []
        for _ in range(REPLICAS):
            home = stack.enter_context(private_home())
            url, pid = stack.enter_context(
                gateway_process(
                    home,
                    emulator,
                    PUTER_MCP_STATE=redis_url,
                    PUTER_MCP_ACCOUNTS_FILE=str(shared.paths.accounts_file),
                )
            )
            urls.append(url)
            pids.append(pid)
        sqlite_home = stack.enter_context(private_home())
        for account in pools["SQLite gateway"]:
            sqlite_home.save_account(account["username"], account["token"], "paid")
        sqlite_url, sqlite_pid = stack.enter_context(gateway_process(sqlite_home, emulator))
        print(f"replicas (state = {redis_url}): {', '.join(urls)}; SQLite gateway: {sqlite_url}")

        started = time.perf_counter()
        # Pooled connections are dropped after 2 s idle: the gateway (uvicorn) closes an idle
        # one after 5 s, httpx2's default expiry, and a request sent on a connection as the
        # server closes it fails with ReadError (an idle replica's connections wait out the
        # bursts of the smaller fleets).
        limits = httpx2.Limits(max_connections=200, max_keepalive_connections=200, keepalive_expiry=2.0)
        # The placeholder key the OpenAI SDK insists on sending, as a real client would (with
        # keys off, the gateway takes it as no key).
        async with httpx2.AsyncClient(
            timeout=60, limits=limits, headers={"Authorization": "Bearer sk-bench"}
        ) as http:
            caller = Caller(http)
            emulator.clear_requests()
            messages = [{"role": "user", "content": PROMPT}]

            def one(url: str, stream: bool) -> Callable[[], Awaitable[None]]:
                body = {"model": MODEL, "messages": messages, "stream": stream}

                async def call() -> None:
                    await caller.openai(url + "/v1/chat/completions", body)

                return call

            variants = {
                "Redis store, streamed": Variant(one(urls[0], True), pids[0]),
                "SQLite store, streamed": Variant(one(sqlite_url, True), sqlite_pid),
                "Redis store, whole": Variant(one(urls[0], False), pids[0]),
                "SQLite store, whole": Variant(one(sqlite_url, False), sqlite_pid),
            }
            watched = {
                "gateway with the Redis store": [pids[0]],
                "gateway with the SQLite store": [sqlite_pid],
                "redis-server": [redis_pid],
            }
            commands_before = redis_commands(redis_url)
            cpu_before = {name: _cpu(pid) for name, pid in watched.items()}
            await latency_rounds(variants, sizes)
            redis_requests = 2 * (sizes.latency_rounds + sizes.warmup_rounds)
            cpu_per_request = {
                name: (_cpu(pid) - cpu_before[name]) / redis_requests for name, pid in watched.items()
            }
            commands_after = redis_commands(redis_url)
            report_latency(variants, cpu_per_request)
            report_redis_commands(commands_before, commands_after, redis_requests)
            fleets = [Fleet(n, urls[:n], pids[:n]) for n in range(1, REPLICAS + 1)]
            await load_rounds(fleets, caller, sizes, redis_pid, emulator.pid or 0, load)
            report_load(fleets, sizes.burst if load == "python" else f"wrk {wrk_seconds(sizes):g} s")
        report_emulator_log(
            emulator, {pool: [a["username"] for a in accounts] for pool, accounts in pools.items()}
        )
        print(f"\n(measured in {time.perf_counter() - started:.0f} s; machine after: {machine_info()})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="puter-mcp gateway replicas on one Redis")
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    parser.add_argument("--rounds", type=int, help="latency rounds (one request per variant each)")
    parser.add_argument("--burst", type=int, help="requests per load burst")
    parser.add_argument(
        "--load",
        choices=["wrk", "python"],
        help="who sends the load bursts: wrk (Debian's package; the default when it is installed), "
        "or this script's own client",
    )
    args = parser.parse_args(argv)
    load = args.load or ("wrk" if shutil.which("wrk") else "python")
    sizes = QUICK if args.quick else FULL
    if args.rounds or args.burst:
        sizes = Sizes(
            latency_rounds=args.rounds or sizes.latency_rounds,
            warmup_rounds=sizes.warmup_rounds,
            period=sizes.period,
            burst=args.burst or sizes.burst,
            load_rounds=sizes.load_rounds,
        )
    anyio.run(run, sizes, load)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
