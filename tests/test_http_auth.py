"""The HTTP transport's bearer token as clients meet it: the SDK's streamable-HTTP client and raw httpx2."""

from __future__ import annotations

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from puter_mcp.core import Backend
from tests.helpers import HTTP_AUTH_TOKEN, served

pytestmark = pytest.mark.anyio

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_sdk_client_gets_in_with_the_token_in_any_scheme_case(
    backend: Backend, scheme: str
) -> None:
    async with served(backend) as url:
        http = httpx2.AsyncClient(headers={"Authorization": f"{scheme} {HTTP_AUTH_TOKEN}"})
        async with http, Client(streamable_http_client(url, http_client=http)) as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
    assert names == ["puter-chat", "puter-models", "puter-account"]


async def test_the_sdk_client_without_a_token_is_told_what_to_send(backend: Backend) -> None:
    async with served(backend) as url:
        with anyio.fail_after(10), pytest.raises((MCPError, ExceptionGroup)) as raised:
            async with Client(streamable_http_client(url)) as client:
                await client.list_tools()
    # The SDK wraps it in task-group exception groups; the sentence is what reaches the person.
    errors: list[BaseException] = [raised.value]
    while isinstance(errors[0], BaseExceptionGroup):
        errors = list(errors[0].exceptions)
    assert isinstance(errors[0], MCPError)
    assert "a bearer token is required" in str(errors[0]) and "Authorization: Bearer" in str(errors[0])


@pytest.mark.parametrize(
    ("authorization", "said"),
    [
        (None, "a bearer token is required"),
        ("Bearer wrong", "the bearer token is wrong"),
        (f"Basic {HTTP_AUTH_TOKEN}", "wrong"),
    ],
)
async def test_a_401_says_a_static_bearer_token_is_wanted_and_where_it_is_set(
    backend: Backend, authorization: str | None, said: str
) -> None:
    headers = dict(MCP_HEADERS)
    if authorization:
        headers["Authorization"] = authorization
    async with served(backend) as url, httpx2.AsyncClient() as raw:
        answer = await raw.post(url, json=PING, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    # A JSON-RPC error (what MCP clients show), carrying RFC 6750's fields as its data.
    assert body["jsonrpc"] == "2.0" and body["id"] is None
    assert body["error"]["data"]["error"] == "invalid_token"
    assert said in body["error"]["message"] == body["error"]["data"]["error_description"]
    for where in ("Authorization: Bearer", "PUTER_MCP_AUTH_TOKEN", "[http]"):
        assert where in body["error"]["message"]
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token", error_description="')
    assert said in challenge
    assert HTTP_AUTH_TOKEN not in answer.text


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/mcp",
        "/.well-known/openid-configuration",
        "/mcp/.well-known/openid-configuration",
        "/register",
        "/authorize",
        "/token",
    ],
)
async def test_oauth_discovery_gets_a_quick_json_404(backend: Backend, path: str) -> None:
    async with served(backend) as url, httpx2.AsyncClient() as raw:
        origin = url.removesuffix("/mcp")
        got = await raw.get(origin + path)
        posted = await raw.post(origin + path, json={"client_name": "x"})
    for answer in (got, posted):
        assert answer.status_code == 404
        described = answer.json()["error_description"]
        assert "does not use OAuth" in described
        assert "Authorization: Bearer" in described and "PUTER_MCP_AUTH_TOKEN" in described
        assert "www-authenticate" not in answer.headers
