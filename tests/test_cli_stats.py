"""`puter-mcp stats`: usage from the shared attempt log, run in-process against the emulator,
with no gateway running."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import anyio
import pytest

from puter_mcp.cli import main
from puter_mcp.display import parse_window, window_text
from puter_mcp.emulator import Fault
from tests.helpers import Emulator

MODEL = "gpt-5-nano"
CANONICAL = "gpt-5-nano-2025-08-07"


@pytest.fixture
def cli_env(emulator: Emulator, home: Path, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    monkeypatch.setenv("PUTER_API_ORIGIN", emulator.url)
    monkeypatch.setenv("PUTER_GUI_ORIGIN", emulator.url)
    return emulator


def test_stats_counts_the_requests_of_earlier_commands_from_the_shared_state(
    cli_env: Emulator, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for account in (cli_env.paid, cli_env.free):
        assert main(["login", "--token", account.token]) == 0
    cli_env.state.clear_requests()
    cli_env.state.add_fault(Fault.TOO_MANY_REQUESTS, model=MODEL)  # the first request only
    # Two commands, each its own backend: what they did reaches `stats` through the state file.
    for _ in range(2):
        assert main(["chat", "hello", "-m", MODEL]) == 0
    capsys.readouterr()
    sent = cli_env.chat_requests()
    assert len(sent) == 3

    assert main(["stats", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {name: f["requests"] for name, f in report["accounts"].items()} == dict(
        Counter(r.username for r in sent)
    )
    assert report["models"][CANONICAL]["requests"] == 3
    assert report["total"]["failures"] == {"rate_limited": 1}
    assert (report["calls"], report["total"]["successes"]) == (2, 2)
    assert report["covers"] == f"every process using this state database ({home / 'state' / 'state.db'})"

    assert main(["stats", "--window", "2h"]) == 0
    out = capsys.readouterr().out
    assert "Usage over the last 2 h" in out
    assert "every process using this state database" in out
    assert "2 calls, 3 upstream requests, 2 answered" in out
    model_row = next(line for line in out.splitlines() if line.startswith(CANONICAL))
    assert model_row.split()[1:3] == ["3", "2"]  # requests, ok
    assert model_row.endswith("rate_limited 1")
    for account in (cli_env.paid, cli_env.free):
        assert any(line.startswith(account.username) for line in out.splitlines())
        assert account.token not in out


def test_sandbox_stats_are_empty_and_say_whose_they_are(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--sandbox", "stats"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[SANDBOX")
    assert "Usage over the last 24 h" in out
    assert "this sandbox only" in out
    assert "No upstream request in this window." in out


def test_a_window_that_is_not_one_is_refused_with_what_is_accepted(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["stats", "--window", "soon"])
    assert stopped.value.code == 2
    assert "give a positive number and a unit, e.g. 24h" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [
        ("24h", 86400.0, "24 h"),
        ("90m", 5400.0, "90 min"),
        ("7d", 604800.0, "7 d"),
        ("1w", 604800.0, "7 d"),
        ("3600", 3600.0, "1 h"),
        ("1.5h", 5400.0, "90 min"),
        (" 45S ", 45.0, "45 s"),
    ],
)
def test_windows_read_and_shown(text: str, seconds: float, shown: str) -> None:
    assert parse_window(text) == seconds
    assert window_text(seconds) == shown


@pytest.mark.parametrize("text", ["", "h", "-1h", "0", "3y", "1h30m"])
def test_what_is_not_a_window(text: str) -> None:
    with pytest.raises(ValueError, match="not a window"):
        parse_window(text)


def test_stats_add_each_api_keys_requests_and_429s_from_the_key_store(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from puter_mcp.gateway.keystore import SQLiteKeyStore, key_store_file
    from puter_mcp.settings import resolve_paths

    store_file = key_store_file(resolve_paths({"PUTER_MCP_HOME": str(home)}))
    assert main(["stats"]) == 0
    assert "API keys" not in capsys.readouterr().out
    assert not store_file.exists()  # a look at the stats creates no key store

    assert main(["keys", "create", "laptop"]) == 0
    secret = capsys.readouterr().out.strip()
    store = SQLiteKeyStore(store_file)
    try:
        (laptop,) = store.list_now()
        now = time.time()

        async def use() -> None:
            for admitted in (True, True, True, False):
                await store.record_use(laptop, now=now, admitted=admitted)

        anyio.run(use)
    finally:
        store.close()

    assert main(["stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["keys"] == {"laptop": {"requests": 3, "rate_limited": 1}}
    assert main(["stats"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("laptop"))
    assert row.split() == ["laptop", "3", "1"]
    assert secret not in out


def test_sandbox_stats_never_read_the_real_key_store(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "laptop"]) == 0
    capsys.readouterr()
    assert main(["--sandbox", "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["keys"] == {}
