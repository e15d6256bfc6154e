"""What one backend learns applies to the Puter it learned it from, and to no other.

Two backends share one state database (one PUTER_MCP_HOME); one talks to an emulator, the other
to a second emulator (another origin), a third to the first emulator again. A cooldown learned
by the first must be seen by the third, never by the second. And after a finished chat, the
account overview shows nothing in flight.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from puter_mcp.core import Backend, ChatCall
from puter_mcp.core.wiring import engine_of
from puter_mcp.emulator import EmulatorState, EmulatorThread, Fault
from puter_mcp.routing.cooldowns import Scope
from tests.helpers import Emulator, save_accounts, settings_for

pytestmark = pytest.mark.anyio

MODEL = "gpt-5-nano"


async def test_cooldowns_are_kept_per_api_origin(emulator: Emulator, home: Path) -> None:
    settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid, emulator.free)
    emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, model=MODEL, account=emulator.paid.username, times=1)
    other_state = EmulatorState(seed=7)
    other_state.seed_default_accounts()
    with EmulatorThread(other_state) as other_url:
        elsewhere = settings.model_copy(update={"api_origin": other_url, "gui_origin": other_url})
        async with (
            Backend.create(
                settings.model_copy(
                    update={"routing": settings.routing.model_copy(update={"strategy": "fill-first"})}
                ),
                paths,
                env={},
            ) as first,
            Backend.create(elsewhere, paths, env={}) as other_puter,
            Backend.create(settings, paths, env={}) as same_puter,
        ):
            await first.chat(ChatCall.build(message="hello", model=MODEL))
            learned = [(c.scope, c.account) for c in await engine_of(first).book.snapshot()]
            assert (Scope.ACCOUNT, emulator.paid.uuid) in learned

            assert await engine_of(other_puter).book.snapshot() == []
            assert await engine_of(other_puter).store.last_used() == {}
            assert await engine_of(other_puter).store.recent_attempts() == []
            assert [(c.scope, c.account) for c in await engine_of(same_puter).book.snapshot()] == learned
            assert (
                await engine_of(same_puter).store.recent_attempts()
                == await engine_of(first).store.recent_attempts()
            )
            overview = await other_puter.accounts_overview()
            assert all(status.state == "active" for status in overview.accounts)


async def test_a_finished_chat_is_not_shown_in_flight(backend: Backend) -> None:
    await backend.chat(ChatCall.build(message="hello", model=MODEL))
    [status] = (await backend.accounts_overview()).accounts
    assert (status.requests_in_window, status.in_flight) == (1, 0)
