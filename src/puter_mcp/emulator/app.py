"""`create_app(state)`: the Starlette app that behaves like Puter's API and GUI hosts.

One app serves both hosts' routes (tests point both origins at it): the API host's
`/drivers/call`, `/puterai/chat/models[/details]`, `/whoami`, `/metering/usage`, and the GUI
host's `/signup` and `/?action=authme`. Every request, on every path (unknown ones too), is
written to `state.requests`, except the emulator's own `/__emulator/` control routes.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from .auth import authenticate
from .control import PREFIX as CONTROL_PREFIX
from .control import control_routes
from .drivers import RECORD_KEY, DriversCall, record_of
from .responses import RAW_SEND_KEY, json_response, v2_error
from .state import Account, EmulatorState, RequestRecord, Tier
from .tokens import bearer_token

__all__ = ["EmulatorApp", "create_app", "whoami_body"]

_LANDING_PAGE = """<!DOCTYPE html>
<html><head><title>Puter (emulator)</title></head>
<body><h1>Puter emulator</h1><p>A local stand-in for puter.com, for tests and sandboxes.</p></body></html>
"""


def whoami_body(account: Account) -> dict[str, Any]:
    """`GET /whoami` for `account`; a paying account has a `subscription` object."""
    body: dict[str, Any] = {
        "username": account.username,
        "uuid": account.uuid,
        "email": account.email,
        "email_confirmed": not account.is_temp and account.email_confirmed,
        "requires_email_confirmation": False,
        "is_temp": account.is_temp,
        "taskbar_items": [],
        "referral_code": account.uuid[:8],
        "otp": False,
        "feature_flags": {},
    }
    if account.tier is Tier.PAID:
        body["subscription"] = {"active": True, "status": "active", "tier": "paid"}
    return body


def _metering_body(account: Account) -> dict[str, Any]:
    used = account.used_microcents
    usage: dict[str, Any] = {"total": used}
    for usage_type, line in account.usage.items():
        usage[usage_type] = {"units": line.units, "cost": line.cost, "count": line.count}
    if used > 0:
        usage["allowanceUsed"] = used
    return {
        "usage": usage,
        "appTotals": {},
        "allowanceInfo": {
            "remaining": max(0, account.credits_microcents),
            "monthUsageAllowance": account.allowance_microcents,
            "addons": {},
        },
    }


def _with_token(url: str, token: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("token", token)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class EmulatorApp(Starlette):
    """Starlette, plus the request log and the server's raw `send` kept in the scope.

    Logging here, outside Starlette's own middleware, sees every request and the status
    actually sent, even for unknown paths and for internal errors.
    """

    def __init__(self, state: EmulatorState, routes: list[Route]) -> None:
        super().__init__(routes=routes, exception_handlers={Exception: _internal_error})
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        scope[RAW_SEND_KEY] = send
        if scope["path"].startswith(CONTROL_PREFIX + "/"):
            await super().__call__(scope, receive, send)
            return
        record = RequestRecord(time=self.state.clock(), method=scope["method"], path=scope["path"])
        scope[RECORD_KEY] = record
        self.state.log_request(record)

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
            await send(message)

        await super().__call__(scope, receive, logging_send)


async def _internal_error(request: Request, exc: Exception) -> Response:
    return v2_error(500, "internal_error", "An internal error occurred.")


def _authenticated(state: EmulatorState, request: Request) -> Account | Response:
    result = authenticate(state, bearer_token(request.headers))
    if isinstance(result, Account):
        record_of(request.scope).username = result.username
    return result


def create_app(state: EmulatorState) -> Starlette:
    """The emulator's ASGI app, serving `state`."""

    async def models(request: Request) -> Response:
        return json_response({"models": state.catalogue.listed_ids()})

    async def model_details(request: Request) -> Response:
        return json_response({"models": state.catalogue.details()})

    async def whoami(request: Request) -> Response:
        account = _authenticated(state, request)
        return json_response(whoami_body(account)) if isinstance(account, Account) else account

    async def metering_usage(request: Request) -> Response:
        account = _authenticated(state, request)
        return json_response(_metering_body(account)) if isinstance(account, Account) else account

    async def signup(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return v2_error(400, "client_bad_json", "The request body is not valid JSON.")
        if state.signup_captcha_required:
            # puter.com's answer when the captcha fields are missing.
            return v2_error(400, "captcha_required", "Captcha verification required")
        if body.get("is_temp") is True:
            account = state.create_temp_account()
        elif isinstance(body.get("username"), str) and body["username"]:
            if body["username"] in state.accounts:
                return v2_error(
                    400, "username_already_in_use", f"Username {body['username']} is already in use."
                )
            email = body.get("email") if isinstance(body.get("email"), str) else None
            account = state.add_account(body["username"], tier=Tier.FREE, email=email)
        else:
            return v2_error(400, "bad_request", "Missing required field: username (or is_temp: true).")
        record_of(request.scope).username = account.username
        return json_response(
            {"proceed": True, "next_step": "complete", "token": account.token, "user": whoami_body(account)}
        )

    async def gui_root(request: Request) -> Response:
        if request.query_params.get("action") != "authme":
            return HTMLResponse(_LANDING_PAGE)
        redirect_url = request.query_params.get("redirectURL")
        if not redirect_url:
            return PlainTextResponse("redirectURL is required", 400)
        account = state.authme_target()
        if account is None:
            return PlainTextResponse("No account to sign in with.", 404)
        record_of(request.scope).username = account.username
        return RedirectResponse(_with_token(redirect_url, account.token), status_code=302)

    routes = [
        Route("/drivers/call", DriversCall(state), methods=["POST"]),
        Route("/puterai/chat/models", models, methods=["GET"]),
        Route("/puterai/chat/models/details", model_details, methods=["GET"]),
        Route("/whoami", whoami, methods=["GET"]),
        Route("/metering/usage", metering_usage, methods=["GET"]),
        Route("/signup", signup, methods=["POST"]),
        Route("/", gui_root, methods=["GET"]),
        *control_routes(state),
    ]
    return EmulatorApp(state, routes)
