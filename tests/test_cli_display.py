"""What `status`, `accounts` and `chat` print for people."""

from __future__ import annotations

from pathlib import Path

import pytest

from puter_mcp.cli import main
from puter_mcp.core.results import AccountsOverview, CooldownInfo
from puter_mcp.display import accounts_text
from puter_mcp.emulator import Fault
from puter_mcp.settings import resolve_paths
from tests.helpers import Emulator, save_accounts


def test_a_cooldown_without_an_end_reads_as_one_phrase() -> None:
    overview = AccountsOverview(
        model_cooldowns=[CooldownInfo(scope="model", model="gpt-x", kind="model_down")]
    )
    text = accounts_text(overview)
    assert "gpt-x: model_down until further notice" in text
    assert "until until" not in text


def test_a_cooldown_with_an_end_names_the_time_once() -> None:
    line = CooldownInfo(scope="model", model="gpt-x", kind="rate_limited", until=0.0).describe()
    assert line == "gpt-x: rate_limited until 00:00:00 UTC"


def test_chat_marks_an_answer_that_broke_off_and_names_the_next_model(
    emulator: Emulator, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PUTER_API_ORIGIN", emulator.url)
    monkeypatch.setenv("PUTER_GUI_ORIGIN", emulator.url)
    save_accounts(resolve_paths(), emulator.paid)
    emulator.state.add_fault(
        Fault.STREAM_ERROR_AFTER_TEXT,
        model="gpt-5-nano",
        message="529 overloaded: the provider is busy",
    )
    assert main(["chat", "tell me about otters", "-m", "gpt-5-nano"]) == 0
    out, err = capsys.readouterr()
    broken, rest = out.split("\n[gpt-5-nano", 1)
    assert broken.startswith("[gpt-5-nano-2025-08-07] You said")  # the failed attempt's text
    separator, answer = rest.split("]\n", 1)
    assert separator.startswith("-2025-08-07 broke off (")
    next_model = separator.rsplit("answering with ", 1)[1]
    assert answer.startswith(f"[{next_model}] You said")  # the next answer, on its own line
    assert next_model in err  # the summary names the model that answered
