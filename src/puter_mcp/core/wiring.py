"""Building the engine from settings: the one place the parts are made and put together.

`Backend` calls `build_engine` on its first call. Tests and benchmarks that need a part (the
cooldown book, the pacer, the router, the Puter client) reach it through `engine_of`, never
through the facade, which offers only what a front end calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from puter_mcp.accounts.store import AccountsStore
from puter_mcp.core.engine import Engine
from puter_mcp.core.errors import BackendError
from puter_mcp.core.stores import open_store
from puter_mcp.puter.client import PuterClient, Timeouts
from puter_mcp.routing import chains
from puter_mcp.routing.state import StateStore
from puter_mcp.settings import Paths, Settings

if TYPE_CHECKING:
    from puter_mcp.core.backend import Backend

__all__ = ["build_engine", "engine_of", "puter_client"]


def puter_client(settings: Settings) -> PuterClient:
    """The Puter client the settings describe (origins and timeouts)."""
    return PuterClient(
        settings.api_origin,
        gui_origin=settings.gui_origin,
        timeouts=Timeouts(**settings.timeouts.model_dump()),
    )


def build_engine(
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
) -> Engine:
    """Build the engine from settings, with any part given ready-made (tests inject them)."""
    try:
        # First: a mistake in the user's chains must stop us before anything is opened.
        user_chains = chains.parse_user_chains(settings.chains, source=str(paths.config_file))
    except chains.ChainConfigError as exc:
        raise BackendError(str(exc)) from exc
    if store is None:
        store = open_store(settings, paths, on_warning=on_warning, clock=clock)
    return Engine(
        settings,
        paths,
        client=client or puter_client(settings),
        accounts=accounts or AccountsStore(paths.accounts_file),
        store=store,
        virtual_models=chains.merge_chains(user_chains),
        env_token=env_token,
        sandbox=sandbox,
        clock=clock,
    )


def engine_of(backend: Backend) -> Engine:
    """The engine behind a backend (built now if it was not yet), for tests and benchmarks."""
    return backend._engine_now()  # pyright: ignore[reportPrivateUsage]
