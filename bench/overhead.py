"""What does puter-mcp cost on top of the MCP SDK itself? (issue 2, section 9)

Two figures, each measured side by side with its baseline in one run (the variants are
interleaved round by round, in a balanced order, so that a load spike on the machine hits all
of them alike and none of them always runs right after the same other one), reported as median
and 95th percentile:

1. Cold start: from spawning the server to the answer of ``tools/list`` over stdio, for
   `puter-mcp` (against an emulator on loopback, ``PUTER_AUTH_TOKEN`` set, no saved account)
   and for a bare `MCPServer` with one trivial tool (``bench/bare_server.py``). Every MCP client
   starts its servers this way, often several at once, so this is time a user waits.
   Target: puter-mcp within 1.15x of the bare server.

2. Added latency per call: one ``puter-chat`` call over stdio against the emulator, minus the
   same upstream request sent straight to the emulator (the very ``/drivers/call`` body the
   product sends, streamed and read whole, over one shared `httpx2.AsyncClient`), paired round
   by round. Two more variants explain the difference: the issue's baseline, a bare
   `MCPServer` whose tool forwards the request over one shared client (what any MCP server
   pays for stdio framing and tool dispatch), and `Backend.chat` called in-process (what the
   product's routing, state and parsing cost without MCP). Target: at most 1.5 ms median.
   Issue 10's targets, on the two differences that leave the machine's hops out: puter-chat
   minus the bare forwarding server at most 1.0 ms median, and `Backend.chat` in-process minus
   the direct call at most 0.8 ms median.
   The CPU each process burns per call is reported too: on a busy machine wall-clock latency
   mostly measures the scheduler, CPU time much less so. The last two lines give the product's
   extra CPU as a share of its baseline's own, the figure the VM's speed moves least.

Each variant calls as its own emulator account (paid tier), and a round lasts at least 60 ms:
the product paces every account below Puter's limit of 200 requests per 10 s, and a faster
loop would measure that deliberate queueing instead of overhead.

``--explain`` adds a diagnosis: which imports puter-mcp adds to the bare server's, how long
each start-up step takes, and where each server's CPU goes per call (cProfile inside the
running stdio servers, switched on by signal after the warm-up, summed by package).

Run: ``.venv/bin/python bench/overhead.py [--quick] [--explain]``. Prints tables; exits 0.
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
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import TextContent

from _common import (
    BENCH_DIR,
    PUTER_MCP,
    PYTHON,
    VARIANT_GAP,
    EmulatorProcess,
    Home,
    carry_over,
    child_processes,
    machine_info,
    print_carry_over,
    print_table,
    private_home,
    process_cpu_ms,
    python_path,
    round_order,
    summarize,
)
from puter_mcp.core import Backend, ChatCall
from puter_mcp.puter.wire import ChatMessage, ChatRequest
from puter_mcp.settings import load_settings

MODEL = "gpt-5-nano"
PROMPT = "Say hello to the benchmark."
COLD_TARGET_RATIO = 1.15
ADDED_TARGET_MS = 1.5
OVER_BARE_TARGET_MS = 1.0
IN_PROCESS_TARGET_MS = 0.8


@dataclass(frozen=True)
class Sizes:
    cold_runs: int
    call_rounds: int
    warmup_rounds: int
    period: float


FULL = Sizes(cold_runs=14, call_rounds=300, warmup_rounds=15, period=0.06)
QUICK = Sizes(cold_runs=5, call_rounds=60, warmup_rounds=8, period=0.06)


# -- cold start --------------------------------------------------------------------------


async def _time_to_tools(params: StdioServerParameters, expected_tools: int) -> float:
    """Milliseconds from spawning the server to the ``tools/list`` answer (shutdown not counted)."""
    started = time.perf_counter()
    async with Client(params) as client:
        tools = (await client.list_tools()).tools
        elapsed = (time.perf_counter() - started) * 1000
    if len(tools) != expected_tools:
        raise RuntimeError(f"expected {expected_tools} tools, got {[t.name for t in tools]}")
    return elapsed


async def cold_start(emulator: EmulatorProcess, home: Home, runs: int) -> dict[str, list[float]]:
    product = StdioServerParameters(
        command=PUTER_MCP, args=[], env=home.env(emulator.url, PUTER_AUTH_TOKEN=emulator.tokens["paid"])
    )
    bare = StdioServerParameters(command=PYTHON, args=[str(BENCH_DIR / "bare_server.py")], env=python_path())
    variants: list[tuple[str, StdioServerParameters, int]] = [
        ("puter-mcp", product, 3),
        ("bare MCPServer, one tool", bare, 1),
    ]
    # One unmeasured start of each first: the very first start pays for a cold disk cache.
    for _, params, tools in variants:
        await _time_to_tools(params, tools)
    times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    for run in range(runs):
        order = variants if run % 2 == 0 else variants[::-1]
        for name, params, tools in order:
            times[name].append(await _time_to_tools(params, tools))
    return times


def report_cold_start(times: dict[str, list[float]]) -> None:
    product, bare = times.values()
    rows: list[list[Any]] = []
    for name, values in times.items():
        s = summarize(values)
        rows.append([name, s.n, s.median, s.p95, s.minimum])
    print_table(
        ["server (spawn -> tools/list answered, ms)", "n", "median", "p95", "min"],
        rows,
        title="Cold start over stdio",
    )
    ratio = statistics.median(product) / statistics.median(bare)
    paired = summarize([p / b for p, b in zip(product, bare, strict=True)])
    verdict = "met" if ratio <= COLD_TARGET_RATIO else "MISSED"
    print(
        f"ratio of medians {ratio:.3f}x (pairwise ratios: median {paired.median:.3f}x, p95 {paired.p95:.3f}x); "
        f"target <= {COLD_TARGET_RATIO}x: {verdict}; puter-mcp's extra time (difference of medians): "
        f"{statistics.median(product) - statistics.median(bare):.0f} ms"
    )


# -- added latency per call ----------------------------------------------------------------


@dataclass
class Variant:
    """One way of making the request, with the processes whose CPU it spends besides ours."""

    call: Callable[[], Awaitable[None]]
    server_pid: int | None = None
    wall_ms: list[float] = field(default_factory=list)
    client_cpu_ms: list[float] = field(default_factory=list)
    server_cpu_ms: list[float] = field(default_factory=list)
    emulator_cpu_ms: list[float] = field(default_factory=list)
    places: list[int] = field(default_factory=list)
    """Where in each measured round it ran (0: first), to show what ran right before it."""
    failures: int = 0


def _text_of(result: Any) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


def _pid_of(fragment: str) -> int | None:
    return next((pid for pid, cmdline in child_processes().items() if fragment in cmdline), None)


async def per_call(emulator: EmulatorProcess, sizes: Sizes) -> dict[str, Variant]:
    accounts = {
        name: emulator.add_account(f"bench_{name}", "paid")
        for name in ("product", "direct", "forward", "inproc")
    }
    with private_home() as product_home, private_home() as inproc_home:
        product_home.save_account("bench_product", accounts["product"]["token"], "paid")
        inproc_home.save_account("bench_inproc", accounts["inproc"]["token"], "paid")
        product = StdioServerParameters(command=PUTER_MCP, args=[], env=product_home.env(emulator.url))
        forward = StdioServerParameters(
            command=PYTHON,
            args=[str(BENCH_DIR / "bare_server.py"), "--forward", emulator.url],
            env={**python_path(), "PUTER_AUTH_TOKEN": accounts["forward"]["token"]},
        )
        settings, paths = load_settings(paths=inproc_home.paths, env=inproc_home.env(emulator.url))
        async with (
            Client(product) as product_client,
            Client(forward) as forward_client,
            Backend.create(settings, paths, env={}) as backend,
            httpx2.AsyncClient(timeout=60) as http,
        ):
            # The product resolves the alias to the catalogue's id and sends that: ask it once
            # and send exactly what it sent, from the other variants too.
            emulator.clear_requests()
            first = await product_client.call_tool("puter-chat", {"message": PROMPT, "model": MODEL})
            if first.is_error:
                raise RuntimeError(f"puter-chat failed: {_text_of(first)}")
            sent_model = next(r["model"] for r in emulator.requests() if r["driver_method"] == "complete")
            request = ChatRequest(messages=[ChatMessage(role="user", content=PROMPT)], model=sent_model)
            driver_call = request.to_driver_call(stream=True)
            direct_headers = {
                "Authorization": f"Bearer {accounts['direct']['token']}",
                "Accept": "application/x-ndjson, application/json",
            }

            async def direct() -> None:
                async with http.stream(
                    "POST", emulator.url + "/drivers/call", json=driver_call, headers=direct_headers
                ) as response:
                    if response.status_code != 200:
                        raise RuntimeError(f"direct call: HTTP {response.status_code}")
                    async for line in response.aiter_lines():
                        if line:
                            json.loads(line)

            async def via_product() -> None:
                result = await product_client.call_tool("puter-chat", {"message": PROMPT, "model": MODEL})
                if result.is_error:
                    raise RuntimeError(_text_of(result))

            async def via_forwarder() -> None:
                result = await forward_client.call_tool("forward", {"message": PROMPT, "model": sent_model})
                if result.is_error:
                    raise RuntimeError(_text_of(result))

            async def in_process() -> None:
                await backend.chat(ChatCall.build(message=PROMPT, model=MODEL))

            variants = {
                "direct httpx2 (baseline)": Variant(direct),
                "puter-mcp puter-chat (stdio)": Variant(via_product, _pid_of(PUTER_MCP)),
                "bare forwarding MCPServer (stdio)": Variant(via_forwarder, _pid_of("bare_server.py")),
                "Backend.chat in-process": Variant(in_process),
            }
            await _interleave(variants, sizes, emulator.pid)
            return variants


async def _interleave(variants: Mapping[str, Variant], sizes: Sizes, emulator_pid: int | None) -> None:
    """Run every variant once per round, in a balanced order (`round_order`); NaN marks a failed call."""
    names = list(variants)
    for round_number in range(-sizes.warmup_rounds, sizes.call_rounds):
        round_started = time.perf_counter()
        for place, name in enumerate(round_order(names, round_number)):
            variant = variants[name]
            await anyio.sleep(VARIANT_GAP)
            server_before = process_cpu_ms(variant.server_pid) if variant.server_pid else math.nan
            emulator_before = process_cpu_ms(emulator_pid) if emulator_pid else math.nan
            cpu_before = time.process_time()
            started = time.perf_counter()
            try:
                await variant.call()
            except Exception as exc:
                variant.failures += 1
                if variant.failures <= 3:
                    print(f"  {name} failed: {exc}", file=sys.stderr)
                elapsed = math.nan
            else:
                elapsed = (time.perf_counter() - started) * 1000
            client_cpu = (time.process_time() - cpu_before) * 1000
            server_cpu = (
                process_cpu_ms(variant.server_pid) - server_before if variant.server_pid else math.nan
            )
            emulator_cpu = process_cpu_ms(emulator_pid) - emulator_before if emulator_pid else math.nan
            if round_number >= 0:
                variant.wall_ms.append(elapsed)
                variant.client_cpu_ms.append(client_cpu)
                variant.server_cpu_ms.append(server_cpu)
                variant.emulator_cpu_ms.append(emulator_cpu)
                variant.places.append(place)
        rest = sizes.period - (time.perf_counter() - round_started)
        if rest > 0:
            await anyio.sleep(rest)


def _paired(a: list[float], b: list[float]) -> list[float]:
    return [x - y for x, y in zip(a, b, strict=True) if not (math.isnan(x) or math.isnan(y))]


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.fmean(finite) if finite else math.nan


def report_per_call(variants: dict[str, Variant]) -> None:
    rows: list[list[Any]] = []
    for name, variant in variants.items():
        s = summarize([v for v in variant.wall_ms if not math.isnan(v)])
        rows.append([name, s.n, variant.failures, s.median, s.p95])
    print_table(["variant (one call, wall ms)", "n", "failed", "median", "p95"], rows, title="Time per call")

    direct, product, forward, inproc = variants.values()
    pairs = [
        ("puter-mcp over stdio - direct", _paired(product.wall_ms, direct.wall_ms)),
        ("bare forwarding MCPServer - direct", _paired(forward.wall_ms, direct.wall_ms)),
        ("Backend.chat in-process - direct", _paired(inproc.wall_ms, direct.wall_ms)),
        ("puter-mcp - bare forwarding MCPServer", _paired(product.wall_ms, forward.wall_ms)),
    ]
    rows = []
    for name, values in pairs:
        s = summarize(values)
        rows.append([name, s.n, s.median, s.p95])
    print_table(["added latency (paired per round, ms)", "n", "median", "p95"], rows, title="Added latency")

    print_carry_over(
        [
            ("puter-mcp - bare forwarding MCPServer", carry_over(product, forward)),
            ("Backend.chat in-process - direct", carry_over(inproc, direct)),
        ]
    )

    rows = []
    for name, variant in variants.items():
        client, server, emulator = (
            _mean(variant.client_cpu_ms),
            _mean(variant.server_cpu_ms),
            _mean(variant.emulator_cpu_ms),
        )
        rows.append([name, client, server, emulator, client + (0.0 if math.isnan(server) else server)])
    print_table(
        ["CPU per call (mean ms)", "bench process", "server process", "emulator", "ours + server"],
        rows,
        title="CPU per call (the bench process runs the MCP clients, the direct calls and Backend.chat)",
    )
    added = statistics.median(pairs[0][1]) if pairs[0][1] else math.nan
    verdict = "met" if added <= ADDED_TARGET_MS else "MISSED"
    print(f"puter-mcp adds {added:.2f} ms per call (median); target <= {ADDED_TARGET_MS} ms: {verdict}")
    for label, values, target in (
        ("puter-mcp - bare forwarding MCPServer", pairs[3][1], OVER_BARE_TARGET_MS),
        ("Backend.chat in-process - direct", pairs[2][1], IN_PROCESS_TARGET_MS),
    ):
        median = statistics.median(values) if values else math.nan
        verdict = "met" if median <= target else "MISSED"
        print(f"{label}: {median:.2f} ms (median); issue 10's target <= {target} ms: {verdict}")
    # The VM's speed moves every millisecond above from one run to the next (the direct call's
    # own CPU by a quarter); the product's extra CPU as a share of its baseline's moves far less.
    direct, stdio, forwarder, in_process = (row[4] for row in rows)  # the order of `variants`
    for label, product, baseline in (
        ("Backend.chat in-process over the direct call", in_process, direct),
        ("puter-mcp over the bare forwarder (server + client)", stdio, forwarder),
    ):
        extra = product - baseline
        print(f"CPU of {label}: +{extra:.2f} ms per call, {extra / baseline:.0%} of the baseline's own")


# -- diagnosis (--explain) -----------------------------------------------------------------

_PRODUCT_IMPORTS = "import puter_mcp.cli, puter_mcp.runtime, puter_mcp.server, puter_mcp.core.backend"
_BARE_IMPORTS = "import mcp.server.mcpserver"

_STARTUP_STEPS = textwrap.dedent(
    """
    import time, json, tempfile
    t0 = time.perf_counter()
    import puter_mcp.cli, puter_mcp.runtime, puter_mcp.server
    t1 = time.perf_counter()
    from puter_mcp.settings import load_settings, resolve_paths
    env = {"PUTER_MCP_HOME": tempfile.mkdtemp(), "PUTER_API_ORIGIN": "http://127.0.0.1:9",
           "PUTER_AUTH_TOKEN": "bench"}
    settings, paths = load_settings(paths=resolve_paths(env), env=env)
    t2 = time.perf_counter()
    from puter_mcp.core import Backend
    backend = Backend.create(settings, paths, env=env)
    t3 = time.perf_counter()
    server = puter_mcp.server.build_server(backend)
    t4 = time.perf_counter()
    import anyio
    anyio.run(server.list_tools)
    t5 = time.perf_counter()
    print(json.dumps({"imports (puter_mcp + mcp)": t1 - t0, "load_settings": t2 - t1,
                      "Backend.create": t3 - t2, "build_server (3 tools)": t4 - t3,
                      "first list_tools": t5 - t4}))
    """
)

# Runs a stdio server under cProfile, switched on by SIGUSR1 and dumped by SIGUSR2, so that
# only the measured calls are profiled (not the imports and start-up).
_PROFILED_SERVER = textwrap.dedent(
    """
    import cProfile, runpy, signal, sys
    out, target, *rest = sys.argv[1:]
    profiler = cProfile.Profile()
    signal.signal(signal.SIGUSR1, lambda *_: profiler.enable())
    def stop(*_):
        profiler.disable()
        profiler.dump_stats(out)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = [target, *rest]
    if target == "puter-mcp":
        from puter_mcp.cli import main
        sys.exit(main(rest))
    runpy.run_path(target, run_name="__main__")
    """
)

_BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("waiting in epoll (idle, not CPU)", ("epoll",)),
    ("sqlite3 (shared state)", ("sqlite3",)),
    ("pydantic", ("pydantic",)),
    ("jsonschema", ("jsonschema", "referencing", "rpds")),
    ("puter_mcp (own code)", ("puter_mcp",)),
    ("mcp SDK", ("/mcp/", "mcp_types")),
    ("httpx2/httpcore2/h11", ("httpx2", "httpcore2", "h11")),
    ("anyio", ("anyio",)),
    ("asyncio", ("asyncio",)),
    ("socket send/recv", ("_socket.socket",)),
    ("locks and threads", ("_thread.lock", "threading", "queue", "concurrent")),
    ("json", ("json",)),
    ("logging", ("logging",)),
]


def _bucket(filename: str, function: str) -> str:
    where = f"{filename} {function}"
    for name, markers in _BUCKETS:
        if any(marker in where for marker in markers):
            return name
    return "other"


def _import_times(code: str) -> dict[str, float]:
    """Self time of each module imported by `code`, in ms (``python -X importtime``)."""
    stderr = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    ).stderr
    modules: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        modules[name] = int(self_us) / 1000
    return modules


def explain_cold_start(runs: int) -> None:
    extra: dict[str, list[float]] = {}
    bare_totals: list[float] = []
    extra_totals: list[float] = []
    for _ in range(runs):
        bare = _import_times(_BARE_IMPORTS)
        product = _import_times(_PRODUCT_IMPORTS)
        bare_totals.append(sum(bare.values()))
        added = {name: ms for name, ms in product.items() if name not in bare}
        extra_totals.append(sum(added.values()))
        for name, ms in added.items():
            extra.setdefault(name, []).append(ms)
    print(
        f"\nImports (python -X importtime, median of {runs}): `import mcp.server.mcpserver` takes "
        f"{statistics.median(bare_totals):.0f} ms; the modules puter-mcp adds take "
        f"{statistics.median(extra_totals):.0f} ms"
    )
    top = sorted(extra.items(), key=lambda item: -statistics.median(item[1]))[:12]
    print_table(["module puter-mcp adds", "self ms (median)"], [[n, statistics.median(v)] for n, v in top])

    steps: dict[str, list[float]] = {}
    for _ in range(runs):
        out = subprocess.run(
            [PYTHON, "-c", _STARTUP_STEPS], capture_output=True, text=True, check=True
        ).stdout
        for name, seconds in json.loads(out.strip().splitlines()[-1]).items():
            steps.setdefault(name, []).append(seconds * 1000)
    print_table(
        ["start-up step of puter-mcp", "ms (median)"],
        [[name, statistics.median(values)] for name, values in steps.items()],
        title=f"Start-up steps, in one fresh process (median of {runs})",
    )


def _copy_profiles(paths: list[Path], into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for path in paths:
        (into / path.name).write_bytes(path.read_bytes())


async def explain_per_call(emulator: EmulatorProcess, calls: int, keep: Path | None = None) -> None:
    product_account = emulator.add_account("bench_profiled_product", "paid")
    forward_account = emulator.add_account("bench_profiled_forward", "paid")
    with private_home() as home, tempfile.TemporaryDirectory() as scratch:
        home.save_account("bench_profiled_product", product_account["token"], "paid")
        outputs = {
            "puter-mcp": Path(scratch) / "product.prof",
            "bare forwarder": Path(scratch) / "forward.prof",
        }
        product = StdioServerParameters(
            command=PYTHON,
            args=["-c", _PROFILED_SERVER, str(outputs["puter-mcp"]), "puter-mcp"],
            env=home.env(emulator.url),
        )
        forward = StdioServerParameters(
            command=PYTHON,
            args=[
                "-c",
                _PROFILED_SERVER,
                str(outputs["bare forwarder"]),
                str(BENCH_DIR / "bare_server.py"),
                "--forward",
                emulator.url,
            ],
            env={"PUTER_AUTH_TOKEN": forward_account["token"]},
        )
        async with Client(product) as product_client, Client(forward) as forward_client:
            emulator.clear_requests()
            await product_client.call_tool("puter-chat", {"message": PROMPT, "model": MODEL})
            sent_model = next(r["model"] for r in emulator.requests() if r["driver_method"] == "complete")

            async def both() -> None:
                await product_client.call_tool("puter-chat", {"message": PROMPT, "model": MODEL})
                await forward_client.call_tool("forward", {"message": PROMPT, "model": sent_model})

            for _ in range(10):
                await both()
            pids = [_pid_of(str(path)) for path in outputs.values()]
            for pid in pids:
                if pid:
                    os.kill(pid, signal.SIGUSR1)
            for _ in range(calls):
                await both()
                await anyio.sleep(0.06)
            for pid in pids:
                if pid:
                    os.kill(pid, signal.SIGUSR2)
            with anyio.fail_after(10):
                while not all(path.exists() for path in outputs.values()):  # noqa: ASYNC110 (another process)
                    await anyio.sleep(0.05)
            await anyio.sleep(0.2)  # let the dumps finish writing
            if keep is not None:
                _copy_profiles(list(outputs.values()), keep)
        totals: dict[str, collections.Counter[str]] = {}
        for name, path in outputs.items():
            counter: collections.Counter[str] = collections.Counter()
            raw: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
            for (filename, _line, function), (_cc, _nc, own_seconds, _cum, _callers) in raw.items():
                counter[_bucket(filename, function)] += own_seconds * 1000 / calls
            totals[name] = counter
    names = list(totals)
    buckets = sorted(
        {bucket for counter in totals.values() for bucket in counter},
        key=lambda bucket: -max(counter[bucket] for counter in totals.values()),
    )
    rows: list[list[Any]] = [[bucket, *(totals[n][bucket] for n in names)] for bucket in buckets]
    busy = [sum(v for k, v in totals[n].items() if not k.startswith("waiting")) for n in names]
    rows.append(["total CPU (all but waiting)", *busy])
    rows.append(["puter-mcp - bare forwarder", busy[0] - busy[1], math.nan])
    print_table(
        ["where a call's CPU goes (ms per call, under cProfile)", *names],
        rows,
        title=f"Server-side profile over {calls} calls each (cProfile roughly doubles every figure)",
    )


# -- main --------------------------------------------------------------------------------


async def run(sizes: Sizes, explain: bool, keep: Path | None) -> None:
    print(f"machine: {machine_info()}")
    with EmulatorProcess() as emulator, private_home() as home:
        print(f"emulator: {emulator.url} (its own process)")
        started = time.perf_counter()
        cold = await cold_start(emulator, home, sizes.cold_runs)
        report_cold_start(cold)
        variants = await per_call(emulator, sizes)
        report_per_call(variants)
        print(f"\n(measured in {time.perf_counter() - started:.0f} s; machine after: {machine_info()})")
        if explain:
            explain_cold_start(5)
            await explain_per_call(emulator, 100, keep)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="puter-mcp's cold start and added latency per call")
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    parser.add_argument("--explain", action="store_true", help="also show where the time goes")
    parser.add_argument(
        "--keep-profiles",
        type=Path,
        help="with --explain: keep the servers' raw cProfile output in this directory",
    )
    parser.add_argument("--cold-runs", type=int, help="spawns of each server")
    parser.add_argument("--rounds", type=int, help="measured rounds of calls (one call per variant)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.cold_runs or args.rounds:
        sizes = Sizes(
            cold_runs=args.cold_runs or sizes.cold_runs,
            call_rounds=args.rounds or sizes.call_rounds,
            warmup_rounds=sizes.warmup_rounds,
            period=sizes.period,
        )
    anyio.run(run, sizes, args.explain, args.keep_profiles)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
