"""The command line, run in-process against the emulator."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from puter_mcp.cli import main
from tests.helpers import Emulator


@pytest.fixture
def cli_env(emulator: Emulator, home: Path, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    monkeypatch.setenv("PUTER_API_ORIGIN", emulator.url)
    monkeypatch.setenv("PUTER_GUI_ORIGIN", emulator.url)
    return emulator


def test_login_with_a_token_saves_the_account_privately(
    cli_env: Emulator, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["login", "--token", cli_env.free.token]) == 0
    out, err = capsys.readouterr()
    assert "Signed in as free_user" in out
    assert cli_env.free.token not in out + err
    accounts = home / "data" / "accounts.json"
    assert stat.S_IMODE(os.stat(accounts).st_mode) == 0o600
    saved = json.loads(accounts.read_text())
    assert [a["username"] for a in saved["accounts"]] == ["free_user"]


def test_login_from_stdin(
    cli_env: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(cli_env.paid.token + "\n"))
    assert main(["login", "--token", "-"]) == 0
    assert "paid_user" in capsys.readouterr().out


def test_login_with_a_bad_token_saves_nothing(
    cli_env: Emulator, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["login", "--token", "not-a-token"]) == 1
    err = capsys.readouterr().err
    assert "did not accept" in err and "nothing was saved" in err.lower()
    assert not (home / "data" / "accounts.json").exists()


def test_accounts_use_rename_logout(cli_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "--token", cli_env.free.token]) == 0
    assert main(["login", "--token", cli_env.temp.token]) == 0
    capsys.readouterr()
    assert main(["use", "temp_user"]) == 0
    assert main(["rename", "temp_user", "scratch"]) == 0
    assert main(["accounts", "--json"]) == 0
    overview = json.loads(capsys.readouterr().out.split("\n", 2)[-1])
    names = {a["name"]: a for a in overview["accounts"]}
    assert set(names) == {"free_user", "scratch"}
    assert names["scratch"]["default"] is True
    assert names["scratch"]["credits"]["allowance_usd"] == pytest.approx(0.25)
    assert main(["use", "nobody"]) == 1
    assert "free_user" in capsys.readouterr().err  # the error lists the known names
    assert main(["logout", "scratch"]) == 0
    assert main(["logout", "--all"]) == 0
    assert main(["logout"]) == 2


def test_chat_streams_the_answer(cli_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "--token", cli_env.paid.token]) == 0
    capsys.readouterr()
    assert main(["chat", "tell me about otters", "-m", "gpt-5-nano"]) == 0
    out, err = capsys.readouterr()
    assert "tell me about otters" in out
    assert "gpt-5-nano" in err and "tokens" in err


def test_chat_says_an_answer_broke_off_only_when_text_was_shown(
    cli_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["login", "--token", cli_env.paid.token]) == 0
    assert main(["login", "--token", cli_env.free.token]) == 0
    capsys.readouterr()
    # Refused before its first token: the next account answers and nothing broke off.
    cli_env.state.add_fault("too_many_requests", model="gpt-5-nano", times=1)
    assert main(["chat", "tell me about otters", "-m", "gpt-5-nano"]) == 0
    out, err = capsys.readouterr()
    assert "tell me about otters" in out
    assert "broke off" not in out + err
    # Text on the terminal, then an error line: the user is told the next answer starts over.
    cli_env.state.add_fault("stream_error_after_text", model="gpt-5-nano", times=1)
    assert main(["chat", "tell me about otters", "-m", "gpt-5-nano"]) == 0
    out, err = capsys.readouterr()
    assert "\n[gpt-5-nano-2025-08-07 broke off (model_down); answering with " in out


def test_chat_without_an_account_says_how_to_sign_in(
    cli_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chat", "hello"]) == 1
    assert "puter-mcp login" in capsys.readouterr().err


def test_models_json(cli_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "gemini", "--json", "--limit", "3"]) == 0
    page = json.loads(capsys.readouterr().out)
    assert 0 < len(page["models"]) <= 3
    assert all("gemini" in (m["id"] + " ".join(m["aliases"])).lower() for m in page["models"])


def test_sandbox_chat_needs_nothing(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sandbox", "chat", "hello sandbox", "-m", "chat-fast"]) == 0
    out, err = capsys.readouterr()
    assert "hello sandbox" in out
    assert "SANDBOX" in err
    assert not (home / "data").exists()


def test_config_shows_paths_and_masks_the_http_token(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PUTER_MCP_AUTH_TOKEN", "a-very-long-secret-bearer-token-value")
    assert main(["config", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["paths"]["accounts_file"] == str(home / "data" / "accounts.json")
    assert "a-very-long-secret-bearer-token-value" not in json.dumps(shown)


def test_broken_config_is_reported_with_its_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text('default_model = "auto"\n[routing]\nmax_attempts = "many"\n')
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "config.toml, line 3" in err and "routing.max_attempts" in err


def test_chat_json_prints_only_json(cli_env: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "--token", cli_env.paid.token]) == 0
    capsys.readouterr()
    assert main(["chat", "json please", "-m", "gpt-5-nano", "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert "json please" in outcome["text"]
    assert outcome["model"].startswith("gpt-5-nano")


@pytest.mark.parametrize("command", [["logout", "--all"], ["login", "--token", "x"], ["config"], ["doctor"]])
def test_sandbox_is_refused_where_it_would_touch_real_files(
    home: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--sandbox", *command]) == 2
    assert "without --sandbox" in capsys.readouterr().err


def test_chat_refuses_a_bad_argument_before_calling_puter(
    cli_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["login", "--token", cli_env.paid.token]) == 0
    capsys.readouterr()
    assert main(["chat", "hello", "--temperature", "7"]) == 1
    assert (
        "bad chat argument `temperature`: Input should be less than or equal to 2" in capsys.readouterr().err
    )
    assert cli_env.chat_requests() == []
