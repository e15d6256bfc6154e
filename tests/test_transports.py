"""The real entry points: the console script over stdio, and `serve` over streamable HTTP and SSE."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

from tests.helpers import SCRIPT, Emulator, save_accounts, script_env, settings_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def _text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_console_script_over_stdio(emulator: Emulator, home: Path, mode: str) -> None:
    _settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.free)
    params = StdioServerParameters(command=SCRIPT, args=[], env=script_env(home, emulator))
    async with Client(params, mode=mode) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        answer = await client.call_tool("puter-chat", {"message": "hello over stdio", "model": "gpt-5-nano"})
        refused = await client.call_tool("puter-chat", {"message": "hello", "model": "no-such-model-at-all"})
    assert names == ["puter-chat", "puter-models", "puter-account"]
    assert not answer.is_error, _text(answer)
    assert "hello over stdio" in _text(answer)
    assert answer.structured_content is not None and answer.structured_content["account"] == "free_user"
    assert refused.is_error and "not found" in _text(refused)


async def test_environment_token_over_stdio(emulator: Emulator, home: Path) -> None:
    env = script_env(home, emulator, PUTER_AUTH_TOKEN=emulator.temp.token)
    async with Client(StdioServerParameters(command=SCRIPT, args=[], env=env)) as client:
        answer = await client.call_tool(
            "puter-chat", {"message": "from the environment", "model": "gpt-5-nano"}
        )
        account = await client.call_tool("puter-account", {})
    assert not answer.is_error, _text(answer)
    assert emulator.temp.token not in _text(account)
    assert "env" in _text(account)


async def test_sandbox_over_stdio_needs_no_account(home: Path) -> None:
    params = StdioServerParameters(command=SCRIPT, args=["--sandbox"], env=script_env(home, None))
    async with Client(params) as client:
        answer = await client.call_tool("puter-chat", {"message": "is this real?"})
        models = await client.call_tool("puter-models", {"query": "claude"})
        account = await client.call_tool("puter-account", {})
    assert not answer.is_error, _text(answer)
    assert _text(answer).startswith("[SANDBOX")
    assert answer.structured_content is not None and answer.structured_content["sandbox"] is True
    assert not models.is_error and models.structured_content and models.structured_content["total"] > 0
    assert "SANDBOX" in _text(account)
    assert not (home / "data" / "accounts.json").exists()  # the sandbox never touches real files


@asynccontextmanager
async def _serve(home: Path, emulator: Emulator, *args: str) -> AsyncIterator[str]:
    """Run `puter-mcp serve` as a subprocess and yield its URL (printed on stderr)."""
    command = [SCRIPT, "serve", "--port", "0", *args]
    process = await anyio.open_process(command, env=script_env(home, emulator), stderr=subprocess.PIPE)
    try:
        assert process.stderr is not None
        seen = b""
        with anyio.fail_after(20):
            while b"serving MCP at " not in seen or not seen.endswith(b"\n"):
                chunk = await process.stderr.receive()
                seen += chunk
        url = seen.decode().split("serving MCP at ", 1)[1].split()[0]
        yield url
    finally:
        process.terminate()
        with anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()


async def test_streamable_http_with_bearer_token(emulator: Emulator, home: Path) -> None:
    _settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid)
    async with _serve(home, emulator, "--transport", "http", "--auth-token", "s3cret-token-for-tests") as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
        good = httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret-token-for-tests"})
        async with good, Client(streamable_http_client(url, http_client=good)) as client:
            answer = await client.call_tool(
                "puter-chat", {"message": "hello over http", "model": "gpt-5-nano"}
            )
        assert not answer.is_error, _text(answer)
        assert "hello over http" in _text(answer)

        initialize = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        async with httpx2.AsyncClient() as raw:
            missing = await raw.post(url, json=initialize, headers=headers)
            wrong = await raw.post(url, json=initialize, headers={**headers, "Authorization": "Bearer nope"})
            bad_host = await raw.post(
                url,
                json=initialize,
                headers={**headers, "Authorization": "Bearer s3cret-token-for-tests", "Host": "evil.example"},
            )
        assert missing.status_code == 401
        assert wrong.status_code == 401
        assert "s3cret" not in wrong.text
        assert bad_host.status_code == 421  # the SDK's DNS-rebinding protection is kept


async def test_streamable_http_without_token_on_loopback(emulator: Emulator, home: Path) -> None:
    _settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid)
    async with _serve(home, emulator, "--transport", "http") as url, Client(url) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
    assert names == ["puter-chat", "puter-models", "puter-account"]


async def test_sse_transport(emulator: Emulator, home: Path) -> None:
    _settings, paths = settings_for(emulator, home)
    save_accounts(paths, emulator.paid)
    async with (
        _serve(home, emulator, "--transport", "sse", "--auth-token", "another-token") as url,
        Client(sse_client(url, headers={"Authorization": "Bearer another-token"})) as client,
    ):
        answer = await client.call_tool("puter-chat", {"message": "hello over sse", "model": "gpt-5-nano"})
    assert url.endswith("/sse")
    assert not answer.is_error, _text(answer)


def test_refuses_a_public_address_without_a_token(home: Path) -> None:
    done = subprocess.run(
        [SCRIPT, "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "0"],
        env=script_env(home, None),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "bearer token" in done.stderr
    assert done.stdout == ""


async def test_off_loopback_only_the_allowed_host_names_are_served(emulator: Emulator, home: Path) -> None:
    # 127.0.0.2 is still this machine, but not one of the addresses the SDK protects by
    # itself: the server must then demand a token and check the Host header on its own list.
    args = (
        "--transport",
        "http",
        "--host",
        "127.0.0.2",
        "--auth-token",
        "tok-0123456789abcdef0123456789abcdef",
        "--allowed-host",
        "mcp.test",
    )
    async with _serve(home, emulator, *args) as url:
        port = url.split(":")[2].split("/")[0]
        headers = {
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "Authorization": "Bearer tok-0123456789abcdef0123456789abcdef",
        }
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        async with httpx2.AsyncClient() as raw:
            named = await raw.post(url, json=ping, headers={**headers, "Host": f"mcp.test:{port}"})
            by_address = await raw.post(url, json=ping, headers=headers)
    assert url.startswith("http://127.0.0.2:")
    assert named.status_code != 421, named.text  # past the Host check (the SDK then wants a session)
    assert (by_address.status_code, by_address.text) == (421, "Invalid Host header")
