"""A self-hosted Puter without vendor keys: only its test models answer, and only the chat
driver names them (the model list is empty)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client
from mcp_types import TextContent

from puter_mcp.cli import main
from puter_mcp.core import Backend
from puter_mcp.core.wiring import engine_of
from puter_mcp.doctor import DoctorReport, run_checks
from puter_mcp.emulator import EmulatorState, EmulatorThread
from puter_mcp.emulator.catalogue import self_hosted_catalogue
from puter_mcp.puter.errors import FailureKind, account_state, credit_advice
from puter_mcp.server import build_server
from tests.helpers import Emulator, by_name, save_accounts, settings_for


@pytest.fixture
def self_hosted() -> Iterator[Emulator]:
    state = EmulatorState(seed=7, catalogue=self_hosted_catalogue())
    paid, free, temp = state.seed_default_accounts()
    with EmulatorThread(state) as url:
        yield Emulator(state, url, paid, free, temp)


def test_cli_chat_with_a_test_model_answers(
    self_hosted: Emulator, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PUTER_API_ORIGIN", self_hosted.url)
    monkeypatch.setenv("PUTER_GUI_ORIGIN", self_hosted.url)
    assert main(["login", "--token", self_hosted.free.token]) == 0
    capsys.readouterr()
    assert main(["chat", "hello from a self-hosted Puter", "-m", "fake"]) == 0
    out, err = capsys.readouterr()
    assert "hello from a self-hosted Puter" in out, err
    assert [r.model for r in self_hosted.chat_requests()] == ["fake"]


@pytest.mark.anyio
async def test_mcp_chat_with_a_test_model_answers(self_hosted: Emulator, home: Path) -> None:
    settings, paths = settings_for(self_hosted, home)
    save_accounts(paths, self_hosted.free)
    async with Backend.create(settings, paths, env={}) as backend, Client(build_server(backend)) as client:
        result = await client.call_tool("puter-chat", {"message": "ping the test model", "model": "fake"})
    text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
    assert not result.is_error, text
    assert "ping the test model" in text


@pytest.mark.anyio
async def test_an_empty_model_list_is_looked_at_again_within_a_minute(
    self_hosted: Emulator, home: Path
) -> None:
    settings, paths = settings_for(self_hosted, home)
    now = [time.time()]
    async with Backend.create(settings, paths, env={}, clock=lambda: now[0]) as backend:
        engine = engine_of(backend)
        assert len(await engine.catalogue()) == 0
        now[0] += 61
        before = sum(1 for r in self_hosted.state.requests if r.path.endswith("/models/details"))
        await engine.catalogue()
        after = sum(1 for r in self_hosted.state.requests if r.path.endswith("/models/details"))
    assert after == before + 1


def test_credit_advice_names_puter_com_only_for_puter_com() -> None:
    assert credit_advice("https://puter.com") == "add credit at puter.com"
    other = credit_advice("https://puter.example.org")
    assert "puter.example.org" in other and "puter.com" not in other
    state, advice = account_state(FailureKind.OUT_OF_CREDITS, "http://127.0.0.1:4100")
    assert state == "out-of-credits" and "127.0.0.1:4100" in advice and "puter.com" not in advice


async def _doctor(emulator: Emulator, home: Path, default_model: str) -> DoctorReport:
    settings, paths = settings_for(emulator, home, default_model=default_model)
    save_accounts(paths, emulator.free)
    env = {"PUTER_API_ORIGIN": emulator.url, "PUTER_GUI_ORIGIN": emulator.url}
    return await run_checks(
        settings, paths, env=env, home=home / "machine", platform="linux", which=lambda _: None
    )


@pytest.mark.anyio
async def test_doctor_fails_when_the_default_has_no_model_puter_answers(
    self_hosted: Emulator, home: Path
) -> None:
    report = await _doctor(self_hosted, home, "auto")
    checks = by_name(report)
    assert checks["default model"].status == "fail", checks["default model"]
    assert report.exit_code() != 0


@pytest.mark.anyio
async def test_doctor_accepts_a_test_model_as_the_default_on_a_self_hosted_puter(
    self_hosted: Emulator, home: Path
) -> None:
    report = await _doctor(self_hosted, home, "fake")
    checks = by_name(report)
    assert "default model" not in checks
    assert checks["model catalogue"].status == "warn" and "fake" in checks["model catalogue"].detail
