"""Control routes under `/__emulator/`: script an emulator running in another process.

Puter never serves these paths, and they are not written to the request log (tests count
upstream requests with it). Bodies and answers are plain JSON:

- `POST /__emulator/faults` `{"fault", "model"?, "account"?, "times"? (null: forever), "params"?}`
  -> the rule; `GET` lists the live rules; `DELETE` removes them all.
- `GET /__emulator/requests` -> `{"requests": [...]}`; `DELETE` clears the log.
- `POST /__emulator/accounts` `{"username", "tier"?, "credits_usd"?}` -> `{"username", "token",
  "tier", "credits_usd"}`; `GET` lists accounts with their tokens and balances.
- `POST /__emulator/config` `{"stream_delay"?, "signup_captcha_required"?, "authme_account"?}`
  -> the whole config; `GET` reads it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .faults import Fault
from .responses import json_response
from .state import Account, EmulatorState, Tier

__all__ = ["control_routes"]

PREFIX = "/__emulator"


class _BadInput(ValueError):
    pass


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise _BadInput("the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise _BadInput("the body must be a JSON object")
    return body


def _error(message: str, status: int = 400) -> Response:
    return json_response({"error": message}, status)


def _parse_fault(value: Any) -> Fault:
    if isinstance(value, str):
        for fault in Fault:
            if value.lower() in (fault.value, fault.name.lower()):
                return fault
    names = ", ".join(f.value for f in Fault)
    raise _BadInput(f"unknown fault {value!r}; one of: {names}")


def _account_json(account: Account) -> dict[str, Any]:
    return {
        "username": account.username,
        "token": account.token,
        "tier": account.tier.value,
        "credits_usd": account.credits_usd,
    }


def _config_json(state: EmulatorState) -> dict[str, Any]:
    return {
        "stream_delay": state.stream_delay,
        "signup_captcha_required": state.signup_captcha_required,
        "authme_account": state.authme_account,
    }


def control_routes(state: EmulatorState) -> list[Route]:
    """The `/__emulator/` routes bound to `state`."""

    async def faults(request: Request) -> Response:
        if request.method == "GET":
            return json_response({"faults": [rule.to_json() for rule in state.faults]})
        if request.method == "DELETE":
            count = len(state.faults)
            state.clear_faults()
            return json_response({"cleared": count})
        try:
            body = await _json_object(request)
            fault = _parse_fault(body.get("fault"))
            params = body.get("params") or {}
            if not isinstance(params, dict):
                raise _BadInput("params must be an object")
            times = body.get("times", 1)
            if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
                raise _BadInput("times must be an integer or null")
            rule = state.add_fault(
                fault, model=body.get("model"), account=body.get("account"), times=times, **params
            )
        except ValueError as exc:
            return _error(str(exc))
        return json_response(rule.to_json())

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            count = len(state.requests)
            state.clear_requests()
            return json_response({"cleared": count})
        return json_response({"requests": [record.to_json() for record in list(state.requests)]})

    async def accounts(request: Request) -> Response:
        if request.method == "GET":
            return json_response({"accounts": [_account_json(a) for a in list(state.accounts.values())]})
        try:
            body = await _json_object(request)
            username = body.get("username")
            if not isinstance(username, str) or not username:
                raise _BadInput("username is required")
            credits = body.get("credits_usd")
            if credits is not None and (isinstance(credits, bool) or not isinstance(credits, int | float)):
                raise _BadInput("credits_usd must be a number")
            account = state.add_account(
                username, tier=Tier.parse(str(body.get("tier", "free"))), credits_usd=credits
            )
        except ValueError as exc:
            return _error(str(exc))
        return json_response(_account_json(account))

    async def config(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await _json_object(request)
                if "stream_delay" in body:
                    delay = body["stream_delay"]
                    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
                        raise _BadInput("stream_delay must be a number >= 0")
                    state.stream_delay = float(delay)
                if "signup_captcha_required" in body:
                    state.signup_captcha_required = bool(body["signup_captcha_required"])
                if "authme_account" in body:
                    state.authme_account = body["authme_account"]
            except ValueError as exc:
                return _error(str(exc))
        return json_response(_config_json(state))

    return [
        Route(f"{PREFIX}/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route(f"{PREFIX}/requests", requests, methods=["GET", "DELETE"]),
        Route(f"{PREFIX}/accounts", accounts, methods=["GET", "POST"]),
        Route(f"{PREFIX}/config", config, methods=["GET", "POST"]),
    ]
