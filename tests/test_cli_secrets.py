"""Secrets reach the command line's commands from a file, stdin or the environment, and a
secret written in argv (readable with `ps`) earns a warning."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from puter_mcp.cli import main
from tests.helpers import Emulator


@pytest.fixture
def cli_env(emulator: Emulator, home: Path, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    monkeypatch.setenv("PUTER_API_ORIGIN", emulator.url)
    monkeypatch.setenv("PUTER_GUI_ORIGIN", emulator.url)
    return emulator


def _private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def _saved_usernames(home: Path) -> list[str]:
    saved = json.loads((home / "data" / "accounts.json").read_text())
    return [account["username"] for account in saved["accounts"]]


def test_login_reads_the_token_from_a_file(
    cli_env: Emulator, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = _private_file(tmp_path / "token", f"  {cli_env.free.token}\n")
    assert main(["login", "--token-file", str(token_file)]) == 0
    _, err = capsys.readouterr()
    assert "warning" not in err
    assert _saved_usernames(home) == ["free_user"]


def test_a_token_file_with_a_byte_order_mark_gives_the_token_alone(
    cli_env: Emulator, home: Path, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_bytes(b"\xef\xbb\xbf" + cli_env.free.token.encode() + b"\r\n")  # Notepad's way
    token_file.chmod(0o600)
    assert main(["login", "--token-file", str(token_file)]) == 0
    assert _saved_usernames(home) == ["free_user"]


def test_login_reads_the_token_from_the_environment(
    cli_env: Emulator, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PUTER_AUTH_TOKEN", cli_env.paid.token)
    assert main(["login", "--token-from-env"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert _saved_usernames(home) == ["paid_user"]


def test_login_from_stdin_gives_no_warning(
    cli_env: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(cli_env.paid.token + "\n"))
    assert main(["login", "--token", "-"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_token_in_argv_is_used_but_warned_about(
    cli_env: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["login", "--token", cli_env.free.token]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "ps" in err and "--token-file" in err
    assert cli_env.free.token not in err


def test_bad_token_sources_are_refused_before_anything_is_sent(
    cli_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = _private_file(tmp_path / "empty", "\n")
    assert main(["login", "--token-file", str(empty)]) == 2
    assert "is empty" in capsys.readouterr().err
    assert main(["login", "--token-file", str(tmp_path / "missing")]) == 2
    assert "cannot read the Puter token from" in capsys.readouterr().err
    monkeypatch.delenv("PUTER_AUTH_TOKEN", raising=False)
    assert main(["login", "--token-from-env"]) == 2
    assert "PUTER_AUTH_TOKEN" in capsys.readouterr().err
    assert main(["login", "--token", "x", "--token-file", str(empty)]) == 2
    assert cli_env.chat_requests() == [] and not cli_env.state.requests


def test_a_token_file_others_can_read_is_warned_about(
    cli_env: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(cli_env.free.token)
    token_file.chmod(0o644)
    assert main(["login", "--token-file", str(token_file)]) == 0
    assert "chmod 600" in capsys.readouterr().err


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `serve` would have served with: the HTTP server itself is replaced (its own tests
    cover it); everything before it is the real command line."""
    seen: dict[str, Any] = {}

    async def fake_serve_http(backend: object, **options: Any) -> None:
        seen.update(options)

    monkeypatch.setattr("puter_mcp.server.serve_http", fake_serve_http)
    return seen


def test_serve_reads_the_bearer_token_from_a_file(
    home: Path, tmp_path: Path, served: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = _private_file(tmp_path / "bearer", "s3cret-bearer-token-of-at-least-32-chars\n")
    argv = ["serve", "--transport", "http", "--host", "0.0.0.0", "--auth-token-file", str(token_file)]
    assert main(argv) == 0
    assert served["auth_token"] == "s3cret-bearer-token-of-at-least-32-chars"
    assert "warning" not in capsys.readouterr().err


def test_serve_reads_the_bearer_token_from_stdin(
    home: Path, monkeypatch: pytest.MonkeyPatch, served: dict[str, Any]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("from-stdin-token\n"))
    assert main(["serve", "--transport", "http", "--auth-token", "-"]) == 0
    assert served["auth_token"] == "from-stdin-token"


def test_serve_warns_about_a_bearer_token_in_argv(
    home: Path, served: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--transport", "http", "--auth-token", "argv-token-value"]) == 0
    assert served["auth_token"] == "argv-token-value"
    err = capsys.readouterr().err
    assert "warning" in err and "--auth-token-file" in err and "argv-token-value" not in err


def test_stdio_serve_cannot_read_its_token_from_stdin(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--auth-token", "-"]) == 2
    assert "--auth-token-file" in capsys.readouterr().err


def test_help_lists_the_safe_forms_first(capsys: pytest.CaptureFixture[str]) -> None:
    for command, safe, unsafe in (
        ("serve", "--auth-token-file", "--auth-token TOKEN"),
        ("login", "--token-file", "--token TOKEN"),
    ):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert text.index(safe) < text.index(unsafe)
