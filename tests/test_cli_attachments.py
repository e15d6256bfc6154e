"""The CLI's `chat --file/--image`: the same core helper as `puter-chat`, relative paths taken
from the current directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from puter_mcp.cli import main
from tests.helpers import Emulator


@pytest.fixture
def cli_env(emulator: Emulator, home: Path, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    monkeypatch.setenv("PUTER_API_ORIGIN", emulator.url)
    monkeypatch.setenv("PUTER_GUI_ORIGIN", emulator.url)
    return emulator


def test_chat_sends_a_relative_file_and_an_image_url(
    cli_env: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["login", "--token", cli_env.paid.token]) == 0
    (tmp_path / "notes.txt").write_text("otters hold hands\n")
    monkeypatch.chdir(tmp_path)
    url = "https://example.com/otter.png"
    assert (
        main(["chat", "what do otters do?", "-m", "gpt-5-nano", "--file", "notes.txt", "--image", url]) == 0
    )
    assert '"what do otters do?" (with 1 image)' in capsys.readouterr().out
    [sent] = cli_env.chat_requests()
    context, _question, image = sent.messages[0]["content"]
    assert context["text"] == f'<file path="{tmp_path / "notes.txt"}">\notters hold hands\n</file>'
    assert image == {"type": "image_url", "image_url": {"url": url}}


def test_chat_refuses_a_missing_file_before_asking(
    cli_env: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["login", "--token", cli_env.paid.token]) == 0
    assert main(["chat", "hi", "-m", "gpt-5-nano", "--file", str(tmp_path / "gone.txt")]) == 1
    assert f"files: {tmp_path / 'gone.txt'} does not exist" in capsys.readouterr().err
    assert cli_env.chat_requests() == []
