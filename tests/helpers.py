"""Helpers shared by test files and by conftest.py's fixtures.

A test file imports what it shares from here, never from conftest.py or another test file: a
test file that imported another would run that file's tests' fixtures and set-up in its own
namespace, and moving a test would break its neighbours.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.lowlevel
import httpx2

from puter_mcp import doctor
from puter_mcp.accounts.store import Account, AccountsStore
from puter_mcp.cli import _build_parser as build_cli_parser
from puter_mcp.core import Backend, ChatCall
from puter_mcp.doctor import Check, DoctorReport, run_checks
from puter_mcp.emulator import EmulatorState
from puter_mcp.emulator.state import Account as EmulatedAccount
from puter_mcp.puter.client import PuterClient, Timeouts
from puter_mcp.puter.errors import PuterError
from puter_mcp.routing.cooldowns import CooldownBook, CooldownPolicy
from puter_mcp.routing.pacing import Pacer, PacingLimits
from puter_mcp.routing.router import AccountRef, Router, Strategy
from puter_mcp.routing.state import (
    MemoryStateStore,
    open_state_store,
)
from puter_mcp.server import serve_http
from puter_mcp.settings import (
    Paths,
    RoutingSettings,
    Settings,
    load_settings,
    resolve_paths,
)


def stop_with(server: subprocess.Popen[bytes], how: signal.Signals) -> int | None:
    """Send `how` to a server process and wait for it to end (10 s at most; killed after
    that), returning its exit status: `-how` when the signal ended it."""
    try:
        server.send_signal(how)
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return server.returncode


# --------------------------------------------------------------------------------------------
# The emulator on a loopback port, and settings and accounts that point at it


@dataclass
class Emulator:
    """A running emulator and the accounts seeded in it."""

    state: EmulatorState
    url: str
    paid: EmulatedAccount
    free: EmulatedAccount
    temp: EmulatedAccount

    def chat_requests(self) -> list[Any]:
        """The upstream chat requests the product made (the log tests count)."""
        return [r for r in self.state.requests if r.driver_method == "complete"]

    def all_released(self, account: EmulatedAccount, *, within: float = 10.0) -> bool:
        """Whether `account` has no chat request in flight any more, polled for `within`
        seconds at most (the product closes an abandoned request asynchronously)."""
        deadline = time.monotonic() + within
        while self.state.in_flight(account.username) != 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


def save_accounts(paths: Paths, *accounts: EmulatedAccount) -> None:
    store = AccountsStore(paths.accounts_file)
    for account in accounts:
        store.add_or_replace(
            Account.create(
                username=account.username,
                uuid=account.uuid,
                token=account.token,
                is_temp=account.tier.value == "temp",
                tier=account.tier.value,
            )
        )


def settings_for(emulator: Emulator, home: Path, **overrides: Any) -> tuple[Settings, Paths]:
    paths = resolve_paths({"PUTER_MCP_HOME": str(home)})
    env = {"PUTER_API_ORIGIN": emulator.url, "PUTER_GUI_ORIGIN": emulator.url}
    settings, paths = load_settings(paths=paths, env=env)
    if overrides:
        settings = settings.model_copy(update=overrides)
    return settings, paths


# --------------------------------------------------------------------------------------------
# What `puter-mcp doctor` looks at, pointed at temporary places


@dataclass
class Setup:
    """Everything doctor looks at, pointed at temporary places."""

    emulator: Emulator
    settings: Settings
    paths: Paths
    machine: Path
    env: dict[str, str]

    def _machine(self) -> dict[str, Any]:
        """What the doctor is told about this machine: its env, home and platform, no PATH."""
        # Reading the configs is what these tests are about; test_doctor_launch.py starts them.
        return {
            "env": self.env,
            "home": self.machine,
            "platform": "linux",
            "which": lambda _name: None,
            "launch_clients": False,
        }

    async def check(self, settings: Settings | None = None, *, use_settings: bool = True) -> DoctorReport:
        chosen = (settings or self.settings) if use_settings else None
        return await run_checks(chosen, self.paths, **self._machine())

    def run(self, *argv: str, settings: Settings | None = None, use_settings: bool = True) -> int:
        args = build_cli_parser().parse_args(["doctor", *argv])
        chosen = (settings or self.settings) if use_settings else None
        return doctor.run(args, chosen, self.paths, **self._machine())

    def launcher(self) -> Path:
        """A real, executable launcher, as `puter-mcp install` would point a client at."""
        path = self.machine / "bin" / "puter-mcp"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
        return path

    def claude_desktop(self, command: Path, env: dict[str, str] | None = None) -> Path:
        """A Claude Desktop config (Linux location) whose `puter` entry runs `command`."""
        entry: dict[str, object] = {"command": str(command), "args": []}
        if env is not None:
            entry["env"] = env
        path = self.machine / ".config" / "Claude" / "claude_desktop_config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"mcpServers": {"puter": entry}}))
        return path


def by_name(report: DoctorReport) -> dict[str, Check]:
    return {check.name: check for check in report.checks}


# --------------------------------------------------------------------------------------------
# A router on its own: an injected clock and sleep, memory state, a scripted upstream


T0 = 1_700_000_000.0


ROOMY = PacingLimits(requests_per_window=1000, max_in_flight=100)


class Clock:
    """Wall-clock seconds that move only when told to."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sleeper:
    """The router's `sleep`: records every call and moves the clock instead of waiting."""

    clock: Clock
    calls: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(seconds)


@dataclass
class Rig:
    """A router with its parts, so that tests can set up cooldowns and read them back."""

    clock: Clock
    sleeper: Sleeper
    store: MemoryStateStore
    book: CooldownBook
    pacer: Pacer
    router: Router


def make_rig(
    *,
    strategy: Strategy = "fill-first",
    max_attempts: int = 6,
    deadline: float = 180.0,
    max_wait: float = 15.0,
    in_flight_hint: float = 0.25,
) -> Rig:
    clock = Clock()
    sleeper = Sleeper(clock)
    store = MemoryStateStore()
    # A fixed MODEL_DOWN time, so that the probe moment is exact.
    book = CooldownBook(store, CooldownPolicy(model_down=(40.0, 40.0)), clock=clock)
    pacer = Pacer(store, clock=clock, in_flight_hint=in_flight_hint, release_settle=0.0)
    router = Router(
        book=book,
        pacer=pacer,
        store=store,
        strategy=strategy,
        max_attempts=max_attempts,
        deadline=deadline,
        max_wait=max_wait,
        clock=clock,
        sleep=sleeper,
    )
    return Rig(clock, sleeper, store, book, pacer, router)


def accounts(*names: str, limits: PacingLimits = ROOMY) -> list[AccountRef]:
    return [AccountRef(f"id-{name}", name, f"token-{name}", limits) for name in names]


Call = tuple[str, str]  # (model, account name)


class Upstream:
    """A scripted `send`: failures by (model, account), else an answer naming both.

    `script` maps a pair to the errors it raises, one per call, in order; a pair whose list
    ran out (or that has none) answers.
    """

    def __init__(self, script: dict[Call, list[PuterError]] | None = None) -> None:
        self.script = {pair: list(errors) for pair, errors in (script or {}).items()}
        self.calls: list[Call] = []

    async def __call__(self, model: str, account: AccountRef) -> str:
        pair = (model, account.name)
        self.calls.append(pair)
        errors = self.script.get(pair)
        if errors:
            raise errors.pop(0)
        return f"{model}@{account.name}"


# --------------------------------------------------------------------------------------------
# A backend with an injected clock


class OffsetClock:
    """Wall-clock time plus an offset a test can move forward (cooldowns, probes, re-checks)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@asynccontextmanager
async def open_backend(
    settings: Settings, paths: Paths, clock: Callable[[], float]
) -> AsyncIterator[Backend]:
    """`Backend.create`, but with an injected clock (create() takes none)."""
    timeouts = settings.timeouts
    client = PuterClient(
        settings.api_origin,
        gui_origin=settings.gui_origin,
        timeouts=Timeouts(
            connect=timeouts.connect, first_byte=timeouts.first_byte, idle=timeouts.idle, total=timeouts.total
        ),
    )
    store = open_state_store(paths.state_db)
    backend = Backend(
        settings, paths, client=client, accounts=AccountsStore(paths.accounts_file), store=store, clock=clock
    )
    async with backend:
        yield backend


# --------------------------------------------------------------------------------------------
# A backend over saved emulator accounts, tried in order


FILL_FIRST = RoutingSettings(strategy="fill-first")


@asynccontextmanager
async def backend_for(
    emulator: Emulator, home: Path, *saved: Any, env_token: str | None = None, **overrides: Any
) -> AsyncIterator[tuple[Backend, OffsetClock]]:
    settings, paths = settings_for(emulator, home, **{"routing": FILL_FIRST, **overrides})
    save_accounts(paths, *saved)
    clock = OffsetClock()
    if env_token is None:
        async with open_backend(settings, paths, clock) as backend:
            yield backend, clock
        return
    async with Backend(settings, paths, env_token=env_token, clock=clock) as backend:
        yield backend, clock


MODEL = "gpt-5-nano"


def ask(model: str = MODEL, **extra: Any) -> ChatCall:
    return ChatCall.build(message="hello", model=model, **extra)


# --------------------------------------------------------------------------------------------
# Puter's answers scripted over httpx2.MockTransport


API = "http://api.puter.localhost:4100"


NDJSON = {"content-type": "application/x-ndjson"}


def lines(*objects: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(obj).encode() + b"\n" for obj in objects)


STALL = object()


class ScriptedStream(httpx2.AsyncByteStream):
    """A response body that sends its chunks, sleeps or stalls as scripted, and records closing."""

    def __init__(self, script: Sequence[bytes | float | object]) -> None:
        self.script = script
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for step in self.script:
            if isinstance(step, bytes):
                await anyio.lowlevel.checkpoint()  # like a socket read: a point where timeouts fire
                yield step
            elif isinstance(step, float):
                await anyio.sleep(step)
            else:
                await anyio.sleep_forever()

    async def aclose(self) -> None:
        self.closed = True


# --------------------------------------------------------------------------------------------
# The MCP server over HTTP in this process


HTTP_AUTH_TOKEN = "a-long-enough-token-for-the-tests-0123456789"


@asynccontextmanager
async def served(backend: Backend, **options: Any) -> AsyncIterator[str]:
    """`serve_http` in this process on a free loopback port; yields its /mcp URL."""
    urls: list[str] = []
    ready = anyio.Event()

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    options = {"transport": "http", "host": "127.0.0.1", "port": 0, "auth_token": HTTP_AUTH_TOKEN, **options}
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: serve_http(backend, on_ready=on_ready, **options))
        with anyio.fail_after(10):
            await ready.wait()
        yield urls[0]
        group.cancel_scope.cancel()


# --------------------------------------------------------------------------------------------
# The console script, started as a client starts it


SCRIPT = shutil.which("puter-mcp", path=str(Path(sys.executable).parent)) or "puter-mcp"


def initialize_request(request_id: int) -> dict[str, Any]:
    """A raw MCP `initialize` request, for tests that speak JSON-RPC lines to the console script."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "0"},
        },
    }


def script_env(home: Path, emulator: Emulator | None, **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PUTER_MCP_HOME": str(home)}
    if emulator is not None:
        env["PUTER_API_ORIGIN"] = emulator.url
        env["PUTER_GUI_ORIGIN"] = emulator.url
    env.update(extra)
    return env


# --------------------------------------------------------------------------------------------
# A scripted browser for the sign-in


_JOIN_TIMEOUT = 20.0


BROWSER_THREAD = "scripted-browser"


Step = Callable[[httpx2.Client, str], httpx2.Response]


def redirect_of(url: str) -> str:
    """The listener address inside a sign-in address (`redirectURL`)."""
    (redirect,) = parse_qs(urlsplit(url).query)["redirectURL"]
    return redirect


def follow_sign_in(client: httpx2.Client, url: str) -> httpx2.Response:
    """What the user's browser does: open the address, Puter redirects back with a token."""
    return client.get(url)


def visit(path: str | None = None, query: str = "", *, state: bool = True) -> Step:
    """GET the listener directly: on its secret path (None) or another one, with `query` after
    the redirect's own query (its one-time state) unless `state` is False."""

    def step(client: httpx2.Client, url: str) -> httpx2.Response:
        parts = urlsplit(redirect_of(url))
        full_query = "&".join(filter(None, (parts.query if state else "", query)))
        return client.get(f"http://127.0.0.1:{parts.port}{parts.path if path is None else path}?{full_query}")

    return step


class ScriptedBrowser:
    """Stands in for `webbrowser.open`: runs `steps` in a thread and records the answers."""

    def __init__(self, *steps: Step, notices: list[str] | None = None) -> None:
        self.steps = steps
        self.opened: list[str] = []
        self.notices = notices
        self.notices_seen_when_opened: list[str] = []
        self.responses: list[httpx2.Response] = []
        self.errors: list[BaseException] = []
        self._thread: threading.Thread | None = None

    def __call__(self, url: str) -> bool:
        self.opened.append(url)
        if self.notices is not None:
            self.notices_seen_when_opened = list(self.notices)
        self._thread = threading.Thread(target=self._run, args=(url,), name=BROWSER_THREAD, daemon=True)
        self._thread.start()
        return True

    def _run(self, url: str) -> None:
        try:
            with httpx2.Client(timeout=10.0, follow_redirects=True) as client:
                for step in self.steps:
                    self.responses.append(step(client, url))
        except BaseException as exc:  # re-raised by join(), in the test's thread
            self.errors.append(exc)

    def join(self) -> None:
        assert self._thread is not None, "the browser was never opened"
        self._thread.join(_JOIN_TIMEOUT)
        assert not self._thread.is_alive()
        if self.errors:
            raise self.errors[0]

    @property
    def statuses(self) -> list[int]:
        return [response.status_code for response in self.responses]


def stored(home_paths_file: Path) -> list[Account]:
    return AccountsStore(home_paths_file).load().accounts


# --------------------------------------------------------------------------------------------
# The HTTP gateway over the emulator's accounts, in a thread of its own


@dataclass
class RunningGateway:
    """A gateway serving on a free loopback port (`url`, e.g. ``http://127.0.0.1:PORT``)."""

    url: str
    emulator: Emulator
    settings: Settings
    paths: Paths


@contextmanager
def running_gateway(
    emulator: Emulator,
    home: Path,
    *saved: EmulatedAccount,
    gateway: dict[str, Any] | None = None,
    hooks: Sequence[Any] = (),
    **overrides: Any,
) -> Iterator[RunningGateway]:
    """`serve_gateway` over the emulator's accounts (`saved`, default: the paid one), in a
    thread with its own event loop, so that sync clients (``openai.OpenAI``) and async ones
    both work from the test. `gateway`: ``[gateway]`` settings; `overrides`: other settings."""
    from puter_mcp.gateway.serve import serve_gateway
    from puter_mcp.settings import GatewaySettings

    # Accounts are tried in the order saved (fill-first), so a test knows which one answers.
    settings, paths = settings_for(emulator, home, **{"routing": FILL_FIRST, **overrides})
    settings = settings.model_copy(
        update={"gateway": GatewaySettings.model_validate({"port": 0, **(gateway or {})})}
    )
    save_accounts(paths, *(saved or (emulator.paid,)))
    ready = threading.Event()
    held: dict[str, Any] = {}

    async def serve() -> None:
        held["loop"], held["stop"] = asyncio.get_running_loop(), anyio.Event()

        def on_ready(urls: list[tuple[str, str]]) -> None:
            held["url"] = urls[0][1].removesuffix("/v1")
            ready.set()

        async with Backend.create(settings, paths, env={}) as backend:
            await serve_gateway(backend, settings.gateway, hooks=hooks, on_ready=on_ready, stop=held["stop"])

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:
            held["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="gateway", daemon=True)
    thread.start()
    try:
        if not ready.wait(20):
            raise AssertionError("the gateway did not start within 20 s")
        if "error" in held:
            raise AssertionError(f"the gateway failed to start: {held['error']!r}") from held["error"]
        yield RunningGateway(held["url"], emulator, settings, paths)
    finally:
        if "stop" in held and thread.is_alive():
            # A graceful end, as uvicorn ends on a signal: open requests finish first.
            held["loop"].call_soon_threadsafe(held["stop"].set)
        thread.join(20)
        if thread.is_alive():
            raise AssertionError("the gateway did not stop within 20 s")


# -- a real Redis for the Redis state store's tests ----------------------------------------


def _free_loopback_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers_ping(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A redis-server of the tests' own: loopback, a free port, a temporary directory, nothing
    saved to disk (never the system's service). `stop` ends it; `start` starts it again on the
    same port, empty, as a Redis restarted without persistence would be."""

    directory: Path
    port: int = 0
    password: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError(
                "redis-server is not installed: `.ci/run` installs it (Debian's redis-server "
                "package), or run `apt-get install -y redis-server`"
            )
        self.port = self.port or _free_loopback_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        for _ in range(200):  # 10 s at most
            if _answers_ping(self.port) or (self.password and self._answers_at_all()):
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise AssertionError(f"redis-server did not start on port {self.port}:\n{log}")

    def _answers_at_all(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"-NOAUTH")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill it (SIGKILL: nothing is saved, nothing is said to the clients)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


# --------------------------------------------------------------------------------------------
# `puter-mcp gateway` as a process of its own (replicas, the proxy in front of them)


@dataclass
class GatewayProcess:
    """A `puter-mcp gateway` subprocess: its base URL (`http://127.0.0.1:PORT`) and every line
    it wrote to stderr so far (the start-up lines, one access line per request, warnings)."""

    process: subprocess.Popen[bytes]
    url: str
    lines: list[str] = field(default_factory=list)

    def logged(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def requests_logged(self, path: str) -> int:
        """The requests for `path` it has answered so far (its access log lines)."""
        return sum(
            1 for line in list(self.lines) if "puter_mcp.gateway.access" in line and f" path={path} " in line
        )

    def stop(self) -> None:
        """SIGTERM (it gives its slots back), SIGKILL if it has not ended after 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _pump_lines(stream: IO[bytes], found: queue.Queue[str], kept: list[str]) -> None:
    for raw in stream:
        line = raw.decode(errors="replace")
        kept.append(line)
        found.put(line)


def start_gateway_process(env: dict[str, str], *args: str) -> GatewayProcess:
    """`puter-mcp gateway --port 0 *args` under `env`, once it says where it serves."""
    process = subprocess.Popen(
        [SCRIPT, "gateway", "--port", "0", *args], env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    found: queue.Queue[str] = queue.Queue()
    kept: list[str] = []
    threading.Thread(target=_pump_lines, args=(process.stderr, found, kept), daemon=True).start()
    for _ in range(200):  # bounded: the start-up prints a few lines
        try:
            line = found.get(timeout=20)
        except queue.Empty:
            break
        if "OpenAI" in line and "http://" in line:
            return GatewayProcess(process, line.split()[-1].removesuffix("/v1"), kept)
    process.kill()
    process.wait()
    raise AssertionError("the gateway did not start:\n" + "".join(kept))


def keys_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`puter-mcp keys ARGS` under `env` (its output as text)."""
    return subprocess.run([SCRIPT, "keys", *args], env=env, capture_output=True, text=True, timeout=60)


def assert_a_new_key_reaches_every_gateway(
    gateways: Sequence[GatewayProcess], *, create_env: dict[str, str], revoke_env: dict[str, str]
) -> None:
    """A key created with `keys create` (under `create_env`) while the gateways run works on
    every one at once; revoked (under `revoke_env`), it stops on every one at once: no gateway
    caches a key."""
    import openai

    def ask(gateway: GatewayProcess, key: str) -> str:
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as client:
            answer = client.chat.completions.create(
                model="gpt-5-nano", messages=[{"role": "user", "content": "hi"}]
            )
        return answer.choices[0].message.content or ""

    created = keys_cli(create_env, "create", "other")
    assert created.returncode == 0, created.stderr
    other = created.stdout.strip()
    for gateway in gateways:
        assert ask(gateway, other)
    assert keys_cli(revoke_env, "revoke", "other").returncode == 0
    for gateway in gateways:
        try:
            ask(gateway, other)
        except openai.AuthenticationError:
            continue
        raise AssertionError(f"a revoked key still works on {gateway.url}")


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server a test starts, such as nginx)."""
    return _free_loopback_port()
