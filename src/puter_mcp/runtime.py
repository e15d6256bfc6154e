"""Bringing a backend up: for real, or in the sandbox against an in-process emulator.

Kept apart from `cli.py` so that tests and the benchmarks start the product the same way the
command line does.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, nullcontext
from pathlib import Path

from puter_mcp.core import Backend
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
    handle_signals: bool = True,
) -> AsyncIterator[Backend]:
    """Yield a ready backend and close it (and the sandbox's emulator) afterwards.

    While it is open, SIGTERM and SIGHUP first give back the pacing slots this process holds
    (see `slots_given_back_on_signals`), unless `handle_signals` is false: a program that
    embeds the backend keeps its own signal handlers.
    """
    with slots_given_back_on_signals() if handle_signals else nullcontext():
        async with _open_backend(settings, paths, sandbox=sandbox, env=env, on_warning=on_warning) as backend:
            yield backend


_STOP_SIGNALS = ("SIGTERM", "SIGHUP")


@contextmanager
def slots_given_back_on_signals() -> Iterator[None]:
    """On SIGTERM or SIGHUP: give back every pacing slot of this process, delete the sandbox's
    temporary directory, then end it as the signal would have.

    Without this, a process stopped in the middle of a request leaves its in-flight places
    taken in the shared state, and other processes on other hosts wait for them until the
    lease runs out (docs/state.md, "Slot ownership and leases"). The handler runs in the event loop, never
    in the middle of a state-store operation, so it cannot meet the store's lock half taken.
    Ending the process by the signal itself (rather than a graceful stop) is deliberate: a
    stdio server blocks in a read of stdin that cannot be cancelled, and the exit status
    stays what a supervisor expects. Nothing is installed off the main thread, on Windows, or
    outside an asyncio loop.
    """
    numbers = [getattr(signal, name) for name in _STOP_SIGNALS if hasattr(signal, name)]
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is None or sys.platform == "win32" or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in numbers}
    for number in numbers:
        loop.add_signal_handler(number, _give_slots_back_and_stop, number)
    try:
        yield
    finally:
        for number in numbers:
            loop.remove_signal_handler(number)
            handler = previous[number]
            if handler is not None:  # None: set outside Python, nothing to restore from here
                signal.signal(number, handler)


# Directories to delete before a stop signal ends the process: ending it by the signal skips
# every `finally`, so the sandbox registers its throw-away home here while it exists.
_removed_on_stop: set[Path] = set()


@contextmanager
def _temporary_home(home: Path) -> Iterator[Path]:
    """Delete `home` when the block ends, or on SIGTERM/SIGHUP (see `_give_slots_back_and_stop`)."""
    _removed_on_stop.add(home)
    try:
        yield home
    finally:
        _removed_on_stop.discard(home)
        shutil.rmtree(home, ignore_errors=True)


def _give_slots_back_and_stop(number: int) -> None:
    from puter_mcp.routing.state import release_process_slots

    released = release_process_slots()
    for home in list(_removed_on_stop):
        shutil.rmtree(home, ignore_errors=True)
    logger.warning(
        "stopping on %s; gave back %d pacing slot%s",
        signal.Signals(number).name,
        released,
        "" if released == 1 else "s",
    )
    signal.signal(number, signal.SIG_DFL)
    signal.raise_signal(number)


@asynccontextmanager
async def _open_backend(
    settings: Settings,
    paths: Paths,
    *,
    sandbox: bool,
    env: Mapping[str, str] | None,
    on_warning: Callable[[str], None] | None,
) -> AsyncIterator[Backend]:
    if not sandbox:
        backend = Backend.create(settings, paths, env=env, on_warning=on_warning)
        async with backend:
            yield backend
        return

    # The sandbox gets its own emulator on a loopback port and its own throw-away files, so it
    # needs no account and no network, and can never touch the user's real accounts or state.
    from puter_mcp.accounts.store import Account, AccountsStore
    from puter_mcp.core import sandbox_home
    from puter_mcp.emulator.runner import serve_emulator
    from puter_mcp.emulator.state import EmulatorState
    from puter_mcp.settings import resolve_paths

    state = EmulatorState()
    seeded = [
        state.add_account(username="sandbox-paid", tier="paid"),
        state.add_account(username="sandbox-free", tier="free"),
        state.add_account(username="sandbox-temp", tier="temp"),
    ]
    with _temporary_home(sandbox_home()) as home:
        async with serve_emulator(state) as base_url:
            # The config file stays the user's: any message about settings names their file.
            sandbox_paths = resolve_paths({"PUTER_MCP_HOME": str(home)}, config_file=paths.config_file)
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
