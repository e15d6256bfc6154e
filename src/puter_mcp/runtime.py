"""Bringing a backend up: for real, or in the sandbox against an in-process emulator.

Kept apart from `cli.py` so that tests and the benchmarks start the product the same way the
command line does.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from puter_mcp.backend import Backend
from puter_mcp.settings import Paths, Settings

__all__ = ["SANDBOX_NOTICE", "open_backend"]

logger = logging.getLogger(__name__)

SANDBOX_NOTICE = (
    "SANDBOX: puter-mcp is answering from its built-in Puter emulator. The answers are not real "
    "model output and no account is used. Sign in with `puter-mcp login` and drop --sandbox for the real thing."
)


@asynccontextmanager
async def open_backend(
    settings: Settings,
    paths: Paths,
    *,
    sandbox: bool = False,
    env: Mapping[str, str] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> AsyncIterator[Backend]:
    """Yield a ready backend and close it (and the sandbox's emulator) afterwards."""
    if not sandbox:
        backend = Backend.create(settings, paths, env=env, on_warning=on_warning)
        async with backend:
            yield backend
        return

    # The sandbox gets its own emulator on a loopback port and its own throw-away files, so it
    # needs no account and no network, and can never touch the user's real accounts or state.
    from puter_mcp.accounts.store import Account, AccountsStore
    from puter_mcp.backend import sandbox_home
    from puter_mcp.emulator.runner import serve_emulator
    from puter_mcp.emulator.state import EmulatorState
    from puter_mcp.settings import resolve_paths

    state = EmulatorState()
    seeded = [
        state.add_account(username="sandbox-paid", tier="paid"),
        state.add_account(username="sandbox-free", tier="free"),
        state.add_account(username="sandbox-temp", tier="temp"),
    ]
    home = sandbox_home()
    try:
        async with serve_emulator(state) as base_url:
            sandbox_paths = resolve_paths({"PUTER_MCP_HOME": str(home)})
            store = AccountsStore(sandbox_paths.accounts_file)
            for account in seeded:
                store.add_or_replace(
                    Account.create(
                        username=account.username,
                        uuid=account.uuid,
                        token=account.token,
                        is_temp=account.tier == "temp",
                        tier=account.tier.value,
                    )
                )
            sandbox_settings = settings.model_copy(update={"api_origin": base_url, "gui_origin": base_url})
            backend = Backend.create(
                sandbox_settings, sandbox_paths, env={}, sandbox=True, on_warning=on_warning
            )
            async with backend:
                yield backend
    finally:
        shutil.rmtree(home, ignore_errors=True)
