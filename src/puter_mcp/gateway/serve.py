"""Running the gateway: check the binding, build the app, serve it with uvicorn.

Off loopback, the gateway refuses to start unless API keys are required (``[gateway]
require_keys = true``): without them anyone who reaches the port spends the accounts' credit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio
from starlette.applications import Starlette

from puter_mcp.core import Backend, BackendError
from puter_mcp.gateway.access import KeyGate
from puter_mcp.gateway.app import build_app
from puter_mcp.gateway.exchange import ExchangeHook
from puter_mcp.gateway.handling import Gateway
from puter_mcp.gateway.keys import KeyRing
from puter_mcp.gateway.keystore import KeyStoreError
from puter_mcp.http_serving import LOOPBACK_HOSTS, ServingError, serve_asgi, served_url
from puter_mcp.settings import GatewaySettings

__all__ = ["base_urls", "binding_problem", "serve_gateway"]


def binding_problem(settings: GatewaySettings) -> str | None:
    """Why the gateway must not serve as set up, or None."""
    if settings.host not in LOOPBACK_HOSTS and not settings.require_keys:
        return (
            f"the gateway would listen on {settings.host}, beyond this machine, without API keys: "
            "anyone reaching the port could spend your Puter credit. Set `require_keys = true` "
            "under [gateway] (or PUTER_MCP_GATEWAY_REQUIRE_KEYS=1), create a key with "
            "`puter-mcp keys create NAME`, or listen on 127.0.0.1"
        )
    return None


def base_urls(host: str, port: int, *, mcp: bool) -> list[tuple[str, str]]:
    """What to paste into each kind of client, as (what, URL)."""
    root = served_url(host, port)
    urls = [
        ("OpenAI (base URL)", f"{root}/v1"),
        ("Anthropic (ANTHROPIC_BASE_URL)", root),
        ("Ollama (host)", root),
    ]
    if mcp:
        urls.append(("MCP (streamable HTTP)", f"{root}/mcp"))
    return urls


async def serve_gateway(
    backend: Backend,
    settings: GatewaySettings,
    *,
    keys: KeyGate | None = None,
    hooks: Sequence[ExchangeHook] = (),
    on_ready: Callable[[list[tuple[str, str]]], None] | None = None,
    stop: anyio.Event | None = None,
) -> None:
    """Serve the gateway until cancelled; `on_ready` gets the base URLs once it listens.

    Raises:
        BackendError: the binding is unsafe or the address cannot be bound; the message says
            what to do.
    """
    problem = binding_problem(settings)
    if problem:
        raise BackendError(problem)
    if keys is None:
        # The configured key store (the machine's file, or the fleet's Redis), also when keys
        # are not required: a key sent anyway is checked and its limits hold.
        try:
            keys = KeyRing.for_settings(backend.settings, backend.paths, required=settings.require_keys)
        except KeyStoreError as exc:
            raise BackendError(str(exc)) from exc
    gateway = Gateway(backend, settings=settings, keys=keys, hooks=list(hooks))
    mcp_app: Starlette | None = None
    if settings.mcp:
        from puter_mcp.server import http_app

        made = http_app(
            backend,
            transport="http",
            host=settings.host,
            auth_token=None,
            allowed_hosts=settings.allowed_hosts,
        )
        assert isinstance(made, Starlette)  # without a token, the SDK's own app
        mcp_app = made
    app = build_app(gateway, host=settings.host, mcp_app=mcp_app)

    def announce(port: int) -> None:
        if on_ready:
            on_ready(base_urls(settings.host, port, mcp=settings.mcp))

    try:
        await serve_asgi(app, host=settings.host, port=settings.port, on_ready=announce, stop=stop)
    except ServingError as exc:
        raise BackendError(str(exc)) from exc
    finally:
        await keys.aclose()
