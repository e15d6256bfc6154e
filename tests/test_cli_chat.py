"""`puter-mcp chat` (and every front end's ChatCall) refuses a blank question before sending it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from puter_mcp.cli import main
from puter_mcp.core import BackendError, ChatCall
from puter_mcp.settings import resolve_paths
from tests.helpers import Emulator, save_accounts


@pytest.mark.parametrize("blank", ["", " ", " \n\t "])
def test_a_blank_message_is_refused_when_the_call_is_built(blank: str) -> None:
    with pytest.raises(BackendError, match="empty"):
        ChatCall.build(message=blank)


@pytest.mark.parametrize(("argv", "stdin"), [(["chat", "  \n "], ""), (["chat", "-"], " \n\n")])
def test_the_cli_refuses_a_blank_question_before_sending_anything(
    emulator: Emulator,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str,
) -> None:
    monkeypatch.setenv("PUTER_API_ORIGIN", emulator.url)
    monkeypatch.setenv("PUTER_GUI_ORIGIN", emulator.url)
    save_accounts(resolve_paths(), emulator.paid)
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(argv) == 2
    assert "is empty" in capsys.readouterr().err
    assert emulator.chat_requests() == []


@pytest.mark.parametrize("max_tokens", [True, False, 12.0, 2.5, 1e38, "100"])
def test_max_tokens_must_be_a_whole_number_when_the_call_is_built(max_tokens: object) -> None:
    # The MCP tool checks its own arguments too; this is the check every front end shares.
    with pytest.raises(BackendError, match="bad chat argument `max_tokens`"):
        ChatCall.build(message="hi", max_tokens=max_tokens)  # type: ignore[arg-type]
    assert ChatCall.build(message="hi", max_tokens=12).max_tokens == 12
