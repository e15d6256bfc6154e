"""Shared fixtures: a Puter emulator on a real loopback port, a private home, a ready backend.

Their helpers live in tests/helpers.py, which test files import; nothing imports this module.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest

from puter_mcp.core import Backend
from puter_mcp.emulator import EmulatorState, EmulatorThread, serve_emulator
from puter_mcp.routing.state import FallbackStateStore, MemoryStateStore, SQLiteStateStore, StateStore
from puter_mcp.routing.state.redis import RedisStateStore
from tests.helpers import Emulator, RedisServer, Setup, save_accounts, settings_for


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """A test that runs `main()` in-process configures the root logger (a handler on the
    captured stderr, the level); without this they outlive the test, and every later INFO
    line (the gateway's access log: one per request) reports a write to a closed file."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        # Only puter-mcp's own handlers: pytest's log capture manages its own.
        if getattr(handler, "_puter_mcp_handler", False) and handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def _unexpected_warning(message: str) -> None:
    raise AssertionError(f"a healthy store warned: {message}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server of the tests' own for the session (loopback, free port, nothing saved);
    tests keep apart by key prefix (`redis_prefix`)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test's own, so that tests sharing the session's Redis never meet."""
    return f"test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture(params=["memory", "sqlite", "fallback-over-sqlite", "fallback-over-memory", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    """Each state store in turn, the fallback wrapper over each store included: they must
    behave alike (the store contract)."""
    made: StateStore
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisStateStore(server.url, prefix=request.getfixturevalue("redis_prefix"))
    elif request.param == "memory":
        made = MemoryStateStore()
    elif request.param == "sqlite":
        made = SQLiteStateStore(tmp_path / "s.db")
    elif request.param == "fallback-over-sqlite":
        made = FallbackStateStore(SQLiteStateStore(tmp_path / "s.db"), on_warning=_unexpected_warning)
    else:
        made = FallbackStateStore(MemoryStateStore(), on_warning=_unexpected_warning)
    yield made
    await made.aclose()


@pytest.fixture
async def client(state: EmulatorState) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client for the emulator of the test module's own `state` fixture, on loopback."""
    async with serve_emulator(state) as base_url, httpx2.AsyncClient(base_url=base_url, timeout=5) as http:
        yield http


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    state = EmulatorState(seed=7)
    paid, free, temp = state.seed_default_accounts()
    with EmulatorThread(state) as url:
        yield Emulator(state, url, paid, free, temp)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private PUTER_MCP_HOME, and no token from the developer's own environment."""
    root = tmp_path / "home"
    monkeypatch.setenv("PUTER_MCP_HOME", str(root))
    monkeypatch.delenv("PUTER_AUTH_TOKEN", raising=False)
    for name in ("PUTER_API_ORIGIN", "PUTER_GUI_ORIGIN", "PUTER_MCP_AUTH_TOKEN", "PUTER_MCP_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return root


@pytest.fixture
async def backend(emulator: Emulator, home: Path) -> AsyncIterator[Backend]:
    """A backend signed in to the emulator's paid account only."""
    settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid)
    async with Backend.create(settings, paths, env={}) as ready:
        yield ready


@pytest.fixture
def setup(emulator: Emulator, home: Path, tmp_path: Path) -> Setup:
    """What `puter-mcp doctor` looks at, healthy: a valid config file, two signed-in accounts,
    one configured client."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text('default_model = "auto"\n\n[routing]\nmax_attempts = 4\n')
    settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid, emulator.free)
    env = {"PUTER_API_ORIGIN": emulator.url, "PUTER_GUI_ORIGIN": emulator.url}
    ready = Setup(emulator, settings, paths, tmp_path / "machine", env)
    ready.claude_desktop(ready.launcher())
    return ready
