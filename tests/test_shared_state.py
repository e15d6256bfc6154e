"""Two real puter-mcp processes sharing one state database: a cooldown one records, the other honours.

Each MCP client (Claude Desktop, Zed, Cursor, ...) starts its own server process, so the routing
state lives in one SQLite file under PUTER_MCP_HOME. Here process A meets a failure from the
emulator (served by this test on a loopback port) and records the cooldown; process B, started
afterwards with the same home, must not send to the model or account that cooled down: the
emulator's request log shows what each process asked for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from puter_mcp.emulator import Fault
from tests.helpers import Emulator, save_accounts, settings_for

MODEL = "gpt-5-nano"

# One chat through Backend.create, exactly as a server process would build it (settings and
# paths from the environment); prints what the test needs as one JSON line.
CHILD = """
import json, sys
import anyio
from puter_mcp.core import Backend, ChatCall
from puter_mcp.core.wiring import engine_of
from puter_mcp.settings import load_settings

async def main() -> None:
    settings, paths = load_settings()
    async with Backend.create(settings, paths) as backend:
        outcome = await backend.chat(ChatCall.build(message=sys.argv[1], model=sys.argv[2]))
        print(json.dumps({
            "store": engine_of(backend).store.describe(),
            "model": outcome.model,
            "account": outcome.account,
            "fallback": outcome.fallback,
            "attempts": [[a.model, a.account, a.outcome] for a in outcome.attempts],
            "cooldowns": [[c.scope.value, c.kind.value] for c in await engine_of(backend).book.snapshot()],
        }))

anyio.run(main)
"""


def run_process(emulator: Emulator, home: Path, prompt: str) -> dict[str, Any]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PUTER_MCP_", "PUTER_API_", "PUTER_GUI_")) and key != "PUTER_AUTH_TOKEN"
    }
    env.update(
        PUTER_MCP_HOME=str(home),
        PUTER_API_ORIGIN=emulator.url,
        PUTER_GUI_ORIGIN=emulator.url,
        PUTER_MCP_STRATEGY="fill-first",
    )
    done = subprocess.run(
        [sys.executable, "-c", CHILD, prompt, MODEL],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Story:
    fault: Fault
    on_paid_only: bool
    kind: str
    scope: str


STORIES = [
    pytest.param(Story(Fault.UPSTREAM_PROVIDER_UNAVAILABLE, False, "model_down", "model"), id="model-down"),
    # The account still has credit (``/metering/usage`` says so): only the model it could not
    # afford is set aside on it.
    pytest.param(
        Story(Fault.INSUFFICIENT_FUNDS, True, "out_of_credits", "account_model"), id="out-of-credits"
    ),
    pytest.param(Story(Fault.TOO_MANY_REQUESTS, True, "rate_limited", "account"), id="rate-limited"),
]


@pytest.mark.parametrize("story", STORIES)
def test_a_cooldown_recorded_by_one_process_is_honoured_by_another(
    emulator: Emulator, home: Path, story: Story
) -> None:
    _settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid, emulator.free)
    paid, free = emulator.paid.username, emulator.free.username
    emulator.state.add_fault(story.fault, model=MODEL, account=paid if story.on_paid_only else None, times=1)

    first = run_process(emulator, home, "process A")
    assert first["store"].startswith("sqlite:")
    assert first["attempts"][0][1:] == [paid, story.kind]
    assert [story.scope, story.kind] in first["cooldowns"]
    a_requests = [(r.model, r.username) for r in emulator.chat_requests()]
    cooled_model = a_requests[0][0]
    assert len(a_requests) == 2  # the failure, then the answer elsewhere
    emulator.state.clear_requests()

    second = run_process(emulator, home, "process B")
    b_requests = [(r.model, r.username) for r in emulator.chat_requests()]
    assert len(b_requests) == 1  # answered at the first request ...
    assert [story.scope, story.kind] in second["cooldowns"]  # ... because it read A's cooldown
    if story.scope == "model":
        # B never asked the model that was down: the free fallback answered on the same account.
        assert all(model != cooled_model for model, _ in b_requests)
        assert b_requests == [(second["model"], paid)]
        assert second["fallback"].endswith(f"because {cooled_model} is cooling down (model_down)")
    else:
        # B never called as the account that cooled down, and kept the model.
        assert b_requests == [(cooled_model, free)]
        assert (second["model"], second["account"]) == (cooled_model, free)
        assert second["fallback"] is None
