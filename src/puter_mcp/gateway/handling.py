"""What every route handler of the gateway uses: the `Gateway`, its endpoints, the body reader.

A handler is ``async def handler(request, exchange) -> Response`` wrapped by
`Gateway.endpoint`, which records the request (`Exchange`), renders any `GatewayError` in the
API's own shape (`Api.error_response`), answers an unexpected exception with a 500 in that shape
(logged, never shown), and tells the hooks once the last byte went out. A chat handler:

    body = await read_json(request)
    await gateway.admit(request, exchange, requested_model(body, default))
    call = <the API's translation of body into a ChatCall>
    if <streamed>:
        return gateway.stream(API, exchange, call, encoder=<events to bytes>, media_type=...)
    outcome = await gateway.whole(request, exchange, call)
    return JSONResponse(<outcome in the API's shape>, headers=answer_headers(exchange))
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from puter_mcp.core import Backend, ChatCall, ChatOutcome
from puter_mcp.gateway.access import Caller, KeyGate, OpenDoor
from puter_mcp.gateway.exchange import Exchange, ExchangeHook, tell_hooks
from puter_mcp.gateway.failures import GatewayError
from puter_mcp.gateway.gate import AnswerStream, EventEncoder, model_headers, whole_answer
from puter_mcp.settings import GatewaySettings

__all__ = [
    "Api",
    "Gateway",
    "Handler",
    "answer_headers",
    "key_of",
    "read_json",
    "requested_model",
    "routes_for",
]

_log = logging.getLogger(__name__)


class Api(Protocol):
    """One of the APIs the gateway speaks, as far as the shared plumbing needs to know it."""

    name: str
    """``openai``, ``anthropic``, ``ollama`` (or ``gateway`` for its own routes)."""

    def error_response(self, error: GatewayError) -> Response:
        """The refusal in this API's shape, with ``error.status`` and ``error.headers()``."""
        ...


Handler = Callable[[Request, Exchange], Awaitable[Response]]


@dataclass
class Gateway:
    """What every route handler gets: the backend and the gateway's own parts.

    Attributes:
        backend: the shared backend (chains, rotation, pacing, cooldowns).
        settings: the ``[gateway]`` settings.
        keys: who may call (`KeyGate`): `OpenDoor` when keys are off.
        hooks: told of each request when it ends (access log, metrics, per-key counts).
    """

    backend: Backend
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    keys: KeyGate = field(default_factory=OpenDoor)
    hooks: list[ExchangeHook] = field(default_factory=list)
    clock: Callable[[], float] = time.time

    def endpoint(self, api: Api, handler: Handler) -> ASGIApp:
        """The ASGI endpoint running `handler` (see the module docstring)."""
        return _Endpoint(self, api, handler)

    async def admit(
        self, request: Request, exchange: Exchange, model: str | None, *, spend: bool = True
    ) -> Caller:
        """Check the request's API key and its limits for `model`.

        Call it as soon as the body is read, before translating it: a caller without a valid
        key learns nothing about what is wrong with the body (`requested_model`). `spend`:
        whether the request counts against the key's limits (`KeyGate.admit`).

        Raises:
            GatewayError: 401, 403 or 429 (`puter_mcp.gateway.access`).
        """
        exchange.model_asked = model
        try:
            caller = await self.keys.admit(key_of(request), model, spend=spend)
        except GatewayError as refused:
            exchange.key = refused.key  # a known key refused: the access line names it
            raise
        exchange.key = caller.key
        return caller

    def stream(
        self,
        api: Api,
        exchange: Exchange,
        call: ChatCall,
        *,
        encoder: EventEncoder,
        media_type: str,
        headers: Mapping[str, str] | None = None,
        ping: bytes | None = None,
        ping_every: float = 10.0,
    ) -> Response:
        """The streamed answer: headers after the first content, then `encoder`'s body (see
        `puter_mcp.gateway.gate`)."""
        return AnswerStream(
            self.backend,
            call,
            encoder=encoder,
            error_response=api.error_response,
            exchange=exchange,
            media_type=media_type,
            headers=headers,
            ping=ping,
            ping_every=ping_every,
        )

    async def whole(self, request: Request, exchange: Exchange, call: ChatCall) -> ChatOutcome:
        """The whole answer of a non-streamed request, recorded in `exchange`.

        Raises:
            GatewayError: no candidate can answer.
        """
        outcome = await whole_answer(self.backend, call, request)
        exchange.answered(outcome)
        return outcome


def requested_model(body: Mapping[str, Any], default: str) -> str:
    """The model a request body names (``model``), or `default` when it names none: what a
    key's model list is checked against."""
    model = body.get("model")
    return model.strip() if isinstance(model, str) and model.strip() else default


def answer_headers(exchange: Exchange) -> dict[str, str]:
    """The model headers of a whole answer (`puter_mcp.gateway.gate.model_headers`)."""
    return model_headers(exchange.model_asked, exchange.model_answered or "", exchange.fallback)


def key_of(request: Request) -> str | None:
    """The API key a request carries: ``Authorization: Bearer <key>`` or ``x-api-key``."""
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


async def read_json(request: Request, *, limit: int | None = None) -> dict[str, Any]:
    """The request's body as a JSON object.

    Raises:
        GatewayError: 413 past `limit` bytes (default: the gateway's ``max_body_mb``), 400 for
            a body that is not JSON or not an object.
    """
    if limit is None:
        gateway: Gateway | None = request.scope.get("puter_gateway")
        limit = int((gateway.settings if gateway else GatewaySettings()).max_body_mb * 1024 * 1024)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise GatewayError(400, "the request has no body: send a JSON object")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GatewayError(400, f"the request body is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise GatewayError(400, f"the request body must be a JSON object, not {type(data).__name__}")
    return data


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        f"the request body is larger than {limit / 1024 / 1024:g} MiB; "
        "raise [gateway] max_body_mb if this is expected",
    )


class _Endpoint:
    """An ASGI endpoint (so that a streamed answer's body is sent by the task that opened it)."""

    def __init__(self, gateway: Gateway, api: Api, handler: Handler) -> None:
        self.gateway, self.api, self.handler = gateway, api, handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["puter_gateway"] = self.gateway
        request = Request(scope, receive)
        exchange = Exchange(
            # The scope's path, not `request.url.path`: building the URL parses it whole.
            api=self.api.name,
            method=scope["method"],
            path=scope["path"],
            started=time.perf_counter(),
        )
        try:
            response = await self._respond(request, exchange)
            await response(scope, receive, send)
            if not exchange.status:
                exchange.status = response.status_code
        finally:
            exchange.finish()
            tell_hooks(self.gateway.hooks, exchange)

    async def _respond(self, request: Request, exchange: Exchange) -> Response:
        try:
            return await self.handler(request, exchange)
        except GatewayError as error:
            exchange.refused(error)
            return self.api.error_response(error)
        except Exception:
            _log.exception("the gateway failed on %s %s", request.method, request.url.path)
            error = GatewayError(500, "the gateway failed on this request; its log says why")
            exchange.refused(error)
            return self.api.error_response(error)


def routes_for(
    gateway: Gateway, api: Api, table: Sequence[tuple[str, Handler, list[str]]]
) -> list[BaseRoute]:
    """Routes from (path, handler, methods) rows, each handler wrapped by `Gateway.endpoint`."""
    return [Route(path, gateway.endpoint(api, handler), methods=methods) for path, handler, methods in table]
