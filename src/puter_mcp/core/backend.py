"""The facade every front end uses: the MCP tools today, the HTTP gateway tomorrow.

`Backend` offers the operations behind the three tools (`chat`, `list_models`,
`accounts_overview`) over one Puter client, the saved accounts, the shared routing state and
the model catalogue. It knows nothing of MCP: failures a person can act on come out as
`BackendError`, with a sentence that says what happened and what to do next.

Creating a `Backend` costs nothing: the machinery (`puter_mcp.core.engine`) is imported and built on
the first call, so a server answers `tools/list` as fast as a bare one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from puter_mcp.core.calls import ChatCall, ModelsQuery
from puter_mcp.core.errors import BackendError
from puter_mcp.core.results import AccountsOverview, ChatOutcome, ModelsPage, StreamProgress
from puter_mcp.settings import Paths, Settings

if TYPE_CHECKING:
    from puter_mcp.accounts.store import AccountsStore
    from puter_mcp.core.engine import Engine
    from puter_mcp.core.results import VirtualModelRecord
    from puter_mcp.puter.catalogue import Catalogue
    from puter_mcp.puter.client import PuterClient
    from puter_mcp.routing.cooldowns import CooldownBook
    from puter_mcp.routing.pacing import Pacer
    from puter_mcp.routing.router import AccountRef, Router
    from puter_mcp.routing.state import StateStore

__all__ = ["Backend", "sandbox_home"]


class Backend:
    """The shared backend of one process. Use it as an async context manager, or `aclose` it.

    Args:
        settings, paths: what `puter_mcp.settings.load_settings` gives.
        client, accounts, store: ready-made parts (tests inject them); by default built from
            the settings on first use.
        env_token: the ``PUTER_AUTH_TOKEN`` account, used first and never saved.
        sandbox: answers come from the built-in emulator (said in every answer).
        on_warning: where a degraded state database is reported (default: the log).
        clock: wall-clock seconds, shared with other processes through the state database.
    """

    def __init__(
        self,
        settings: Settings,
        paths: Paths,
        *,
        client: PuterClient | None = None,
        accounts: AccountsStore | None = None,
        store: StateStore | None = None,
        env_token: str | None = None,
        sandbox: bool = False,
        on_warning: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.sandbox = sandbox
        self._client, self._accounts, self._store = client, accounts, store
        self._env_token = env_token or None
        self._on_warning = on_warning
        self._clock = clock
        self._engine: Engine | None = None
        if settings.chains:
            # A mistake in the user's chains must stop start-up, not the first call; checking
            # them needs only the chains module, not the whole engine.
            from puter_mcp.routing.chains import ChainConfigError, parse_user_chains

            try:
                parse_user_chains(settings.chains, source=str(paths.config_file))
            except ChainConfigError as exc:
                raise BackendError(str(exc)) from exc

    @classmethod
    def create(
        cls,
        settings: Settings,
        paths: Paths,
        *,
        env: Mapping[str, str] | None = None,
        sandbox: bool = False,
        on_warning: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Backend:
        """A backend for these settings; the token of ``PUTER_AUTH_TOKEN`` comes from `env`."""
        env = os.environ if env is None else env
        return cls(
            settings,
            paths,
            env_token=env.get("PUTER_AUTH_TOKEN"),
            sandbox=sandbox,
            on_warning=on_warning,
            clock=clock,
        )

    @property
    def engine(self) -> Engine:
        """The machinery, built (and imported) on first use."""
        if self._engine is None:
            from puter_mcp.core.engine import build_engine

            self._engine = build_engine(
                self.settings,
                self.paths,
                client=self._client,
                accounts=self._accounts,
                store=self._store,
                env_token=self._env_token,
                sandbox=self.sandbox,
                on_warning=self._on_warning,
                clock=self._clock,
            )
        return self._engine

    # The engine's parts, for status displays, tests and benchmarks.
    @property
    def client(self) -> PuterClient:
        return self.engine.client

    @property
    def store(self) -> StateStore:
        return self.engine.store

    @property
    def book(self) -> CooldownBook:
        return self.engine.book

    @property
    def pacer(self) -> Pacer:
        return self.engine.pacer

    @property
    def router(self) -> Router:
        return self.engine.router

    async def chat(
        self, call: ChatCall, on_progress: Callable[[StreamProgress], None] | None = None
    ) -> ChatOutcome:
        """Answer a chat call, falling back over models and rotating accounts as needed."""
        return await self.engine.chat(call, on_progress)

    async def list_models(self, query: ModelsQuery) -> ModelsPage:
        """One page of the catalogue, or the virtual models with their members."""
        return await self.engine.list_models(query)

    async def accounts_overview(self) -> AccountsOverview:
        """Every account with its credit, tier and state, and the models' cooldowns."""
        return await self.engine.accounts_overview()

    async def catalogue(self) -> Catalogue:
        """Puter's model catalogue (cached in memory and on disk)."""
        return await self.engine.catalogue()

    def virtual_models(self, catalogue: Catalogue) -> list[VirtualModelRecord]:
        return self.engine.virtual_models(catalogue)

    def routable_accounts(self) -> list[AccountRef]:
        return self.engine.routable_accounts()

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.aclose()

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()


def sandbox_home() -> Path:
    """A fresh private directory for the sandbox's files, so it never touches real accounts."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="puter-mcp-sandbox-"))
