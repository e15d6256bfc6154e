"""`puter-mcp gateway`: the binding rules, the base URLs it prints, and MCP beside the APIs."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx2
import pytest
from mcp import Client

from puter_mcp.cli import main
from puter_mcp.gateway.serve import base_urls
from tests.helpers import (
    SCRIPT,
    Emulator,
    running_gateway,
    save_accounts,
    script_env,
    settings_for,
    stop_with,
)


def test_listening_beyond_loopback_without_keys_is_refused(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gateway", "--host", "0.0.0.0"]) == 2
    said = capsys.readouterr().err
    assert "require_keys = true" in said and "0.0.0.0" in said


def test_the_base_urls_name_each_api() -> None:
    urls = dict(base_urls("127.0.0.1", 8000, mcp=True))
    assert urls["OpenAI (base URL)"] == "http://127.0.0.1:8000/v1"
    assert urls["Anthropic (ANTHROPIC_BASE_URL)"] == "http://127.0.0.1:8000"
    assert urls["MCP (streamable HTTP)"] == "http://127.0.0.1:8000/mcp"


@pytest.mark.slow
def test_the_command_prints_its_urls_and_answers_in_the_sandbox(tmp_path: Path) -> None:
    env = script_env(tmp_path / "home", None)
    process = subprocess.Popen(
        [SCRIPT, "gateway", "--sandbox", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        lines: list[str] = []
        for _ in range(20):
            line = process.stderr.readline().decode()
            lines.append(line)
            if "Ollama" in line:
                break
        base = next(line.split()[-1] for line in lines if "OpenAI" in line)
        assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")
        with httpx2.Client(timeout=20) as http:
            answer = http.post(
                base + "/chat/completions",
                json={"model": "gpt-5-nano", "messages": [{"role": "user", "content": "hello sandbox"}]},
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["puter"]["sandbox"] is True
        assert any("SANDBOX" in line for line in lines)
    finally:
        stop_with(process, signal.SIGTERM)


@pytest.mark.anyio
async def test_mcp_is_served_beside_the_apis_with_the_mcp_option(emulator: Emulator, home: Path) -> None:
    _settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid)
    with running_gateway(emulator, home, gateway={"mcp": True}) as gateway:
        async with Client(gateway.url + "/mcp") as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
            answer = await client.call_tool(
                "puter-chat", {"message": "hello over the gateway", "model": "gpt-5-nano"}
            )
        async with httpx2.AsyncClient(timeout=20) as http:
            health = await http.get(gateway.url + "/health/live")
    assert names == ["puter-chat", "puter-models", "puter-account"]
    assert not answer.is_error
    assert health.status_code == 200


@pytest.mark.anyio
async def test_without_the_option_there_is_no_mcp_endpoint(emulator: Emulator, home: Path) -> None:
    with running_gateway(emulator, home) as gateway:
        async with httpx2.AsyncClient(timeout=20) as http:
            response = await http.post(gateway.url + "/mcp", json={})
    assert response.status_code == 404
