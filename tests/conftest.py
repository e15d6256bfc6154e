"""Shared fixtures: a Puter emulator on a real loopback port, a private home, a ready backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from puter_mcp.accounts.store import Account, AccountsStore
from puter_mcp.core import Backend
from puter_mcp.emulator import EmulatorState, EmulatorThread, serve_emulator
from puter_mcp.emulator.state import Account as EmulatedAccount
from puter_mcp.routing.state import FallbackStateStore, MemoryStateStore, SQLiteStateStore, StateStore
from puter_mcp.settings import Paths, Settings, load_settings, resolve_paths


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _unexpected_warning(message: str) -> None:
    raise AssertionError(f"a healthy store warned: {message}")


@pytest.fixture(params=["memory", "sqlite", "fallback-over-sqlite", "fallback-over-memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    """Each state store in turn, the fallback wrapper over each store included: they must
    behave alike (the store contract)."""
    made: StateStore
    if request.param == "memory":
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


@pytest.fixture
async def backend(emulator: Emulator, home: Path) -> AsyncIterator[Backend]:
    """A backend signed in to the emulator's paid account only."""
    settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid)
    async with Backend.create(settings, paths, env={}) as ready:
        yield ready
