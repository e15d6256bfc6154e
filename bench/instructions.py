"""Instructions per `Backend.chat` call, counted by valgrind: a figure a busy machine cannot move.

Wall and CPU times on a shared VM move with the load of whatever else runs there; the number of
instructions a call executes does not. This script runs `Backend.chat` (or the direct `httpx2`
call, ``--direct``) against the emulator in its own process (which valgrind does not follow),
``--calls`` times after a warm-up. Run it under callgrind twice, with ``--calls 0`` and with
``--calls N``: the difference of the two totals, divided by N, is what one call costs::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/instructions.py --calls 0
    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python bench/instructions.py --calls 100

(``bench/instructions.py --compare`` runs the four and prints the figures.) Set
``PYTHONHASHSEED=0`` so that both runs hash alike.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

import anyio
import httpx2

from _common import EmulatorProcess, private_home
from puter_mcp.core import Backend, ChatCall
from puter_mcp.puter.wire import ChatMessage, ChatRequest
from puter_mcp.routing.state import MemoryStateStore
from puter_mcp.settings import load_settings

MODEL = "gpt-5-nano"
PROMPT = "Say hello to the benchmark."
WARM_UP = 10


async def run(calls: int, direct_only: bool, memory_state: bool) -> None:
    with EmulatorProcess() as emulator, private_home() as home:
        product = emulator.add_account("instr_product", "paid")
        direct_account = emulator.add_account("instr_direct", "paid")
        home.save_account("instr_product", product["token"], "paid")
        settings, paths = load_settings(paths=home.paths, env=home.env(emulator.url))
        store = MemoryStateStore() if memory_state else None
        async with (
            Backend(settings, paths, store=store) as backend,
            httpx2.AsyncClient(timeout=60) as http,
        ):
            call = ChatCall.build(message=PROMPT, model=MODEL)
            body = ChatRequest(messages=[ChatMessage(role="user", content=PROMPT)], model=MODEL)
            driver_call = body.to_driver_call(stream=True)
            headers = {
                "Authorization": f"Bearer {direct_account['token']}",
                "Accept": "application/x-ndjson, application/json",
            }

            async def direct() -> None:
                async with http.stream(
                    "POST", emulator.url + "/drivers/call", json=driver_call, headers=headers
                ) as response:
                    async for line in response.aiter_lines():
                        if line:
                            json.loads(line)

            for _ in range(WARM_UP):
                await backend.chat(call)
                await direct()
            for _ in range(calls):
                if direct_only:
                    await direct()
                else:
                    await backend.chat(call)
                await anyio.sleep(0.02)  # the pacer's settling time; also spaces the calls


def _count(args: list[str]) -> int:
    """Instructions of one run of this script under callgrind."""
    found = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        check=True,
    )
    match = re.search(r"Collected : (\d+)", found.stderr)
    if match is None:
        raise SystemExit(found.stderr[-2000:])
    return int(match.group(1))


def compare(calls: int, memory_state: bool) -> None:
    extra = ["--memory-state"] if memory_state else []
    rows = {}
    for name, flags in (("Backend.chat", []), ("direct httpx2", ["--direct"])):
        base = _count([*flags, *extra, "--calls", "0"])
        full = _count([*flags, *extra, "--calls", str(calls)])
        rows[name] = (full - base) / calls
        print(f"{name:14s} {rows[name] / 1000:9.1f} k instructions per call")
    added = rows["Backend.chat"] - rows["direct httpx2"]
    print(f"{'added':14s} {added / 1000:9.1f} k instructions per call")


def main() -> int:
    parser = argparse.ArgumentParser(description="Instructions per Backend.chat call (run under callgrind)")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--direct", action="store_true", help="time the direct httpx2 call instead")
    parser.add_argument("--memory-state", action="store_true", help="the in-memory state store")
    parser.add_argument("--compare", action="store_true", help="run callgrind four times and print")
    args = parser.parse_args()
    if args.compare:
        compare(args.calls, args.memory_state)
        return 0
    anyio.run(run, args.calls, args.direct, args.memory_state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
