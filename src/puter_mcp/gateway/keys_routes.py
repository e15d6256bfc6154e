"""The admin routes for API keys, equivalent to `puter-mcp keys`, errors in OpenAI's shape.

```
POST   /v1/keys          create a key; the answer carries it, the one time it is ever shown
GET    /v1/keys          the keys, masked (pmk-abcd…wxyz), with limits, models, expiry, last use
DELETE /v1/keys/{name}   revoke a key: it stops working in every gateway process at once
```

Only an admin key (``puter-mcp keys create NAME --admin``) may call them: 401 without a key
when keys are required, 403 with a key that is not an admin key, and 403 when keys are off and
no key is sent (the message says how to turn them on). Each call counts against the admin
key's own limits, as any request does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from puter_mcp.gateway.access import Caller
from puter_mcp.gateway.exchange import Exchange
from puter_mcp.gateway.failures import GatewayError
from puter_mcp.gateway.handling import Gateway, read_json, routes_for
from puter_mcp.gateway.keys import KeyRing
from puter_mcp.gateway.keystore import (
    DuplicateKeyName,
    KeyLimits,
    KeyRecord,
    KeySpec,
    KeyStoreError,
    UnknownKeyName,
    parse_expiry,
    parse_models,
)
from puter_mcp.gateway.openai_chat import OPENAI

__all__ = ["routes"]

_NO_STORE = {"Cache-Control": "no-store"}
"""A created key must not be kept by any cache between the gateway and the admin."""

T = TypeVar("T")

_FIELDS = frozenset({"name", "rpm", "rph", "rpd", "models", "expires", "admin"})


def _described(record: KeyRecord) -> dict[str, Any]:
    return {"object": "api_key", **record.public()}


async def _admin(gateway: Gateway, request: Request, exchange: Exchange) -> KeyRing:
    """The key ring, once the request is known to come from an admin key.

    Raises:
        GatewayError: 401 (no or a bad key where keys are required), 403 (keys off and no key
            sent, or a key that is not an admin key), 429 (the admin key's own limits).
    """
    caller: Caller = await gateway.admit(request, exchange, None, spend=False)
    ring = gateway.keys if isinstance(gateway.keys, KeyRing) else None
    if caller.key is None or ring is None:
        raise GatewayError(
            403,
            "managing API keys needs keys turned on: set `require_keys = true` under [gateway] "
            "(or PUTER_MCP_GATEWAY_REQUIRE_KEYS=1), create an admin key on the gateway's machine "
            "with `puter-mcp keys create NAME --admin`, and send it with this request",
            code="keys_disabled",
        )
    if not caller.admin:
        raise GatewayError(
            403,
            f"the API key {caller.key!r} may not manage keys: only a key created with "
            "`puter-mcp keys create NAME --admin` may",
            code="admin_key_required",
        )
    return ring


def _checked(param: str, make: Callable[[], T]) -> T:
    """`make()`, its `KeyStoreError` turned into a 400 naming `param`."""
    try:
        return make()
    except KeyStoreError as exc:
        raise GatewayError(400, str(exc), param=param) from None


def _limit(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise GatewayError(
            400, f"{name} must be a whole number of requests, or null for no limit", param=name
        )
    _checked(name, lambda: KeyLimits(**{name: value}))  # its range
    return value


def _spec(body: dict[str, Any], *, now: float) -> KeySpec:
    """The new key's spec from a POST body, each mistake a 400 naming its field."""
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise GatewayError(
            400, f"unknown field {unknown[0]!r}; a key takes {', '.join(sorted(_FIELDS))}", param=unknown[0]
        )
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise GatewayError(400, "name is required: a name for the key", param="name")
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise GatewayError(400, "admin must be true or false", param="admin")
    limits = KeyLimits(rpm=_limit(body, "rpm"), rph=_limit(body, "rph"), rpd=_limit(body, "rpd"))
    models_given = body.get("models")
    if models_given is not None and not isinstance(models_given, str | list):
        raise GatewayError(400, "models must be a list of model names, or null for any", param="models")
    models = _checked("models", lambda: parse_models(models_given))
    expires = _checked("expires", lambda: _expiry(body.get("expires"), now=now))
    return _checked(
        "name", lambda: KeySpec(name=name, limits=limits, models=models, expires=expires, admin=admin)
    )


def _expiry(value: Any, *, now: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise KeyStoreError("expires must be a date (YYYY-MM-DD), a time, a span (30d) or epoch seconds")
    if isinstance(value, str):
        return parse_expiry(value, now=now)
    if value <= now:
        raise KeyStoreError(f"expires {value}: that time is already past")
    return float(value)


def routes(gateway: Gateway) -> list[BaseRoute]:
    async def create(request: Request, exchange: Exchange) -> Response:
        ring = await _admin(gateway, request, exchange)
        spec = _spec(await read_json(request), now=time.time())
        try:
            record, secret = await ring.create(spec)
        except DuplicateKeyName as exc:
            raise GatewayError(
                409, str(exc), category="invalid_request", param="name", code="key_exists"
            ) from None
        body = {
            **_described(record),
            "key": secret,
            "note": "This is the only time the key is shown: keep it now. Lists show it masked.",
        }
        return JSONResponse(body, status_code=201, headers=_NO_STORE)

    async def listing(request: Request, exchange: Exchange) -> Response:
        ring = await _admin(gateway, request, exchange)
        records = await ring.list()
        return JSONResponse({"object": "list", "data": [_described(record) for record in records]})

    async def revoke(request: Request, exchange: Exchange) -> Response:
        ring = await _admin(gateway, request, exchange)
        name: str = request.path_params["name"]
        try:
            record = await ring.revoke(name)
        except UnknownKeyName as exc:
            raise GatewayError(404, str(exc), code="key_not_found") from None
        return JSONResponse({**_described(record), "revoked": True})

    table = [
        ("/v1/keys", create, ["POST"]),
        ("/v1/keys", listing, ["GET"]),
        ("/v1/keys/{name}", revoke, ["DELETE"]),
    ]
    return routes_for(gateway, OPENAI, table)
