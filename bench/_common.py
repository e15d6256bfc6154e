"""Helpers shared by the benchmarks: an emulator in its own process, private homes, statistics.

Why the emulator runs in a separate process (``python -m puter_mcp.emulator``) rather than in a
thread of the benchmark: the benchmark's own event loop does the timing, and a Starlette app
sharing its interpreter would compete with it for the GIL (Python hands the GIL over every
5 ms under contention). That would slow the *baselines* (the direct calls read the stream in
the same process) more than the product, and flatter the product's figures. In its own process
the emulator is scripted through its control routes (``/__emulator/...``), which are not
written to the request log that the benchmarks count.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx2

from puter_mcp.accounts.store import Account, AccountsStore
from puter_mcp.settings import Paths, resolve_paths

VARIANT_GAP = 0.001
"""Seconds of pause before each variant of a round. What a call leaves to finish in the
background (the state store's writer thread, its Redis round trip: a few hundred µs) must not
land in the next variant's time. Short on purpose: on these VMs the caches cool within
milliseconds of idling (a syscall costs 2x after 5 ms idle, 20x after 60 ms), which would tax
the variant with more code to run, not measure it."""

__all__ = [
    "BENCH_DIR",
    "PUTER_MCP",
    "PYTHON",
    "EmulatorProcess",
    "Home",
    "Placed",
    "Summary",
    "carry_over",
    "child_processes",
    "machine_info",
    "percentile",
    "print_carry_over",
    "print_table",
    "private_home",
    "process_cpu_ms",
    "python_path",
    "round_order",
    "summarize",
]

T = TypeVar("T")


def python_path() -> dict[str, str]:
    """This process's ``PYTHONPATH``, for the environment of a server it starts.

    The MCP SDK starts a stdio server with a few safe variables only, so without this a run
    from another checkout's sources (``PYTHONPATH=<worktree>/src``, to compare two versions)
    would measure that version in-process but the installed one over stdio.
    """
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}


def round_order(variants: Sequence[T], round_number: int) -> list[T]:
    """The order in which round `round_number` runs `variants`: a Williams design.

    Over every `len(variants)` rounds (twice that for an odd count) each variant runs first
    equally often and runs right after each other variant equally often. A plain rotation
    (``variants[k:] + variants[:k]``) keeps the same neighbours in the same order in all rounds
    but one, and on these VMs the variant that runs right after another one finds its caches,
    and the code they share (the HTTP stack, the MCP client, the emulator), warm: measured with
    a rotation, `Backend.chat` minus the direct call was 1.58 ms in the rounds where the direct
    call followed `Backend.chat` and -0.15 ms in the others (bench/README.md, "a fifth pass").
    Balanced, such carry-over falls on both sides of every pair alike.
    """
    count = len(variants)
    if count < 2:
        return list(variants)
    # The first row of a Williams square: 0, 1, n-1, 2, n-2, ...; row r adds r to each.
    first = [0]
    low, high = 1, count - 1
    while len(first) < count:
        first.append(low)
        low += 1
        if len(first) < count:
            first.append(high)
            high -= 1
    rows = count if count % 2 == 0 else 2 * count
    row = round_number % rows
    order = [variants[(step + row) % count] for step in first]
    # With an odd count the square is balanced only together with its mirror image.
    return order[::-1] if row >= count else order


class Placed(Protocol):
    """A variant's record as `carry_over` reads it."""

    @property
    def wall_ms(self) -> list[float]: ...
    @property
    def places(self) -> list[int]:
        """Where in each measured round it ran (0: first)."""
        ...


def carry_over(first: Placed, second: Placed) -> list[list[Any]]:
    """`first` minus `second` per round, split by which of the two ran right before the other.

    The variant that runs right after another finds the code they share warm; the balanced
    order (`round_order`) gives each side of a pair that head start equally often, and these
    rows (label, rounds, median ms) show how much it is worth.
    """
    split: dict[str, list[float]] = {"right after the other": [], "right before it": [], "apart": []}
    rounds = zip(first.wall_ms, second.wall_ms, first.places, second.places, strict=True)
    for a, b, place_a, place_b in rounds:
        if math.isnan(a) or math.isnan(b):
            continue
        if place_a == place_b + 1:
            split["right after the other"].append(a - b)
        elif place_b == place_a + 1:
            split["right before it"].append(a - b)
        else:
            split["apart"].append(a - b)
    return [[key, len(values), statistics.median(values)] for key, values in split.items() if values]


def print_carry_over(pairs: Sequence[tuple[str, list[list[Any]]]]) -> None:
    """One table of `carry_over` rows, each pair under its label."""
    print_table(
        ["the same differences, by order within the round (ms)", "n", "median"],
        [[f"{label}, first one {key}", n, median] for label, rows in pairs for key, n, median in rows],
        title="Carry-over (a variant that runs right after another finds shared code warm)",
    )


BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
"""The repository's root, on the path, so that a benchmark may use a test helper (the tests'
redis-server launcher) rather than a copy of it."""
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))
PYTHON = sys.executable
PUTER_MCP = str(Path(sys.executable).with_name("puter-mcp"))
"""The console script next to the interpreter running the benchmark (the project venv's)."""


# -- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linearly interpolated between the closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p95: float
    p99: float
    minimum: float
    maximum: float


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    return Summary(
        n=len(values),
        median=statistics.median(values),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        minimum=min(values),
        maximum=max(values),
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "") -> None:
    """A plain, aligned text table (numbers right-aligned), easy to paste into the README."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    if title:
        print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for raw, row in zip(rows, cells, strict=True):
        print(
            "  ".join(
                cell.rjust(w) if isinstance(value, int | float) else cell.ljust(w)
                for value, cell, w in zip(raw, row, widths, strict=True)
            )
        )
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def machine_info() -> str:
    """One line describing where the figures come from (they only mean something with it)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = "load {:.2f}/{:.2f}/{:.2f}".format(*os.getloadavg())
    except OSError:
        load = "load unknown"
    from importlib.metadata import version

    return (
        f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, {load}; "
        f"Python {platform.python_version()}, mcp {version('mcp')}, httpx2 {version('httpx2')}"
    )


# -- CPU time of other processes (Linux /proc) ------------------------------------------------


def child_processes() -> dict[int, str]:
    """This process's children, pid -> command line (empty where /proc does not exist)."""
    children: dict[int, str] = {}
    me = os.getpid()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            if parent == me:
                with open(f"/proc/{entry}/cmdline", encoding="utf-8") as cmdline:
                    children[int(entry)] = cmdline.read().replace("\0", " ").strip()
        except (OSError, ValueError, IndexError):
            continue
    return children


def process_cpu_ms(pid: int) -> float:
    """CPU time (user + system, every thread) a process has used so far, in ms; NaN if unknown.

    Wall-clock latency on a loaded machine mostly measures the scheduler; the CPU a process
    burns per call is far steadier, so the benchmarks report both.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


# -- the emulator in its own process ------------------------------------------------------


class EmulatorProcess:
    """``python -m puter_mcp.emulator --port 0``, scripted over its control routes.

    Seeds ``paid_user``, ``free_user`` and ``temp_user`` (their tokens in `tokens`, by tier).
    Use as a context manager; the process is stopped (by its pid) on exit. `fast`: served with
    httptools and uvloop (``--fast``), for a benchmark whose upstream must cost little CPU.
    """

    def __init__(self, *, stream_delay: float = 0.0, seed: int = 1, fast: bool = False) -> None:
        self._args = [
            PYTHON,
            "-m",
            "puter_mcp.emulator",
            "--port",
            "0",
            "--seed",
            str(seed),
            "--stream-delay",
            str(stream_delay),
            *(["--fast"] if fast else []),
        ]
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self.tokens: dict[str, str] = {}
        self._control: httpx2.Client | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> EmulatorProcess:
        self._process = subprocess.Popen(
            self._args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
        )
        assert self._process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self._process.stdout.readline()
            if not line:
                raise RuntimeError("the emulator exited before announcing its URL")
            key, _, value = line.strip().partition("=")
            if key == "PUTER_EMULATOR_URL":
                self.url = value
            elif key.startswith("PUTER_EMULATOR_TOKEN_"):
                self.tokens[key.removeprefix("PUTER_EMULATOR_TOKEN_").lower()] = value
            if self.url and len(self.tokens) == 3:
                break
        else:
            raise RuntimeError("the emulator did not announce its URL within 30 s")
        self._control = httpx2.Client(base_url=self.url, timeout=30)
        return self

    def stop(self) -> None:
        if self._control is not None:
            self._control.close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        assert self._control is not None, "start() the emulator first"
        response = self._control.request(method, "/__emulator/" + path, json=body)
        response.raise_for_status()
        return response.json()

    def add_account(self, username: str, tier: str, credits_usd: float | None = None) -> dict[str, Any]:
        """A new account; returns ``{"username", "token", "tier", "credits_usd"}``."""
        body: dict[str, Any] = {"username": username, "tier": tier}
        if credits_usd is not None:
            body["credits_usd"] = credits_usd
        return self._call("POST", "accounts", body)

    def accounts(self) -> list[dict[str, Any]]:
        return self._call("GET", "accounts")["accounts"]

    def add_fault(
        self,
        fault: str,
        *,
        model: str | None = None,
        account: str | None = None,
        times: int | None = 1,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self._call(
            "POST",
            "faults",
            {"fault": fault, "model": model, "account": account, "times": times, "params": params or {}},
        )

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def requests(self) -> list[dict[str, Any]]:
        """The request log (control routes excluded)."""
        return self._call("GET", "requests")["requests"]

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def set_stream_delay(self, seconds: float) -> None:
        self._call("POST", "config", {"stream_delay": seconds})


# -- a private home for the product ---------------------------------------------------------


@dataclass
class Home:
    """A throw-away ``PUTER_MCP_HOME`` with its paths; accounts can be saved into it."""

    root: Path
    paths: Paths

    def save_account(self, username: str, token: str, tier: str) -> None:
        AccountsStore(self.paths.accounts_file).add_or_replace(
            Account.create(username=username, token=token, is_temp=tier == "temp", tier=tier)  # type: ignore[arg-type]
        )

    def env(self, api_origin: str, **extra: str) -> dict[str, str]:
        """The environment of a `puter-mcp` subprocess pointed at the emulator, quiet on stderr."""
        return {
            **python_path(),
            "PUTER_MCP_HOME": str(self.root),
            "PUTER_API_ORIGIN": api_origin,
            "PUTER_GUI_ORIGIN": api_origin,
            "PUTER_MCP_LOG_LEVEL": "WARNING",
            **extra,
        }


@contextmanager
def private_home(prefix: str = "puter-mcp-bench-") -> Iterator[Home]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield Home(root, resolve_paths({"PUTER_MCP_HOME": str(root)}))
    finally:
        shutil.rmtree(root, ignore_errors=True)
