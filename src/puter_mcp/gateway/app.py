"""The gateway's ASGI app: every API's routes over one backend, and the layers around them.

```
build_app(gateway)
 ├─ HostOriginCheck          the Host/Origin rules of every HTTP face (puter_mcp.http_serving)
 ├─ CORS                     only when [gateway] cors_origins names origins
 ├─ /mcp                     MCP over streamable HTTP, with --mcp (behind the same keys)
 └─ routes                   each API module's `routes(gateway)`, /health, /health/live
```

How a handler is written: `puter_mcp.gateway.handling`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from puter_mcp.gateway import anthropic, keys_routes, observe, ollama, openai_chat, openai_responses
from puter_mcp.gateway.access import KeyGate
from puter_mcp.gateway.exchange import Exchange
from puter_mcp.gateway.failures import GatewayError
from puter_mcp.gateway.handling import Gateway, key_of
from puter_mcp.http_serving import HostOriginCheck, HostRules

__all__ = ["build_app"]


def _api_routes(gateway: Gateway) -> list[BaseRoute]:
    # One line per API module: each offers `routes(gateway)`.
    return [
        *openai_chat.routes(gateway),
        *openai_responses.routes(gateway),
        *anthropic.routes(gateway),
        *keys_routes.routes(gateway),
        *observe.routes(gateway),
        *ollama.routes(gateway),
    ]


class _GatewayApi:
    """The gateway's own routes (health): plain JSON errors."""

    name = "gateway"

    def error_response(self, error: GatewayError) -> Response:
        return JSONResponse({"error": error.message}, status_code=error.status, headers=error.headers())


GATEWAY_API = _GatewayApi()


def _health_routes(gateway: Gateway) -> list[BaseRoute]:
    async def health(request: Request, exchange: Exchange) -> Response:
        state = await gateway.backend.readiness()
        # Degraded still answers 200: a load balancer keeps sending requests to a replica
        # that answers from its own memory while the shared store is away.
        status = "unavailable" if not state.ready else "degraded" if state.degraded else "ok"
        body = {"status": status, **state.model_dump()}
        return JSONResponse(body, status_code=200 if state.ready else 503)

    async def live(request: Request, exchange: Exchange) -> Response:
        return JSONResponse({"status": "ok"})

    return [
        Route("/health", gateway.endpoint(GATEWAY_API, health), methods=["GET", "HEAD"]),
        Route("/health/live", gateway.endpoint(GATEWAY_API, live), methods=["GET", "HEAD"]),
    ]


def build_app(gateway: Gateway, *, host: str = "127.0.0.1", mcp_app: Starlette | None = None) -> ASGIApp:
    """The gateway's ASGI app.

    Args:
        host: the address it is bound to (Host/Origin rules: `HostRules.for_binding`).
        mcp_app: the MCP streamable-HTTP app, served at ``/mcp`` behind the same keys.
    """
    routes: list[BaseRoute] = [*_api_routes(gateway), *_health_routes(gateway)]
    lifespan = None
    if mcp_app is not None:
        lifespan = mcp_app.router.lifespan_context
    app: ASGIApp = Starlette(routes=routes, lifespan=lifespan)
    if mcp_app is not None:
        app = _WithMcp(app, _McpKeys(mcp_app, gateway.keys))
    app = observe.count_in_flight(app, gateway)
    settings = gateway.settings
    if settings.cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS", "HEAD"],
            allow_headers=["*"],
            expose_headers=["X-Puter-Model-Answered", "X-Puter-Fallback", "Retry-After"],
            max_age=600,
        )
    rules = HostRules.for_binding(host, settings.allowed_hosts)
    if settings.cors_origins:
        # Browsers send the page's Origin: the origins allowed for CORS are allowed here too.
        rules = HostRules(rules.hosts, (*rules.origins, *settings.cors_origins))
    return HostOriginCheck(app, rules)


class _WithMcp:
    """``/mcp`` to the MCP app, everything else to the gateway's."""

    def __init__(self, app: ASGIApp, mcp: ASGIApp) -> None:
        self.app, self.mcp = app, mcp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (path == "/mcp" or path.startswith("/mcp/")):
            await self.mcp(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class _McpKeys:
    """MCP over the gateway takes the gateway's API keys (as a bearer token)."""

    def __init__(self, app: ASGIApp, keys: KeyGate) -> None:
        self.app, self.keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            # Every JSON-RPC message is a request here (initialize, notifications...): only the
            # API routes' chats count against a key's limits.
            await self.keys.admit(key_of(request), None, spend=False)
        except GatewayError as error:
            body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": error.message}}
            await JSONResponse(body, status_code=error.status, headers=error.headers())(scope, receive, send)
            return
        await self.app(scope, receive, send)
