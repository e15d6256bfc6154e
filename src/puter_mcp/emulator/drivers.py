"""`POST /drivers/call`: Puter's driver endpoint for the `puter-chat-completion` interface.

The checks run in Puter's order (docs/puter-protocol.md): the JSON body, the token, the per-tier rate
window and in-flight cap (every request past the token check counts, separately per driver
method; a 429 spends no slot), the call's shape, then for `complete` a scripted fault if one
matches, else the model, the credit gate (402 on every model once the balance is <= 0),
subscriber-only models (403), what the model's vendor would refuse (400: an image it cannot
read, tools it cannot call, another model's thinking block), and finally the answer, charged
to the account.

A request stays "in flight" until its response has been sent completely or the client has
gone away; the endpoint watches for the disconnect so that a stalled answer to a client that
gave up releases its slot at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .answers import (
    Answer,
    ArgsError,
    ChatArgs,
    compose_answer,
    parse_chat_args,
    refusal,
    stream_lines,
    success_body,
)
from .auth import EMAIL_UNCONFIRMED_MESSAGE, authenticate
from .catalogue import ModelSpec, fake_chat_model
from .fault_responses import render_fault
from .faults import Fault
from .responses import json_response, ndjson, ndjson_response, v2_error
from .state import Account, Admission, EmulatorState, RequestRecord, Tier
from .tokens import bearer_token

__all__ = ["RECORD_KEY", "DriversCall", "record_of"]

INTERFACE = "puter-chat-completion"
DRIVER = "ai-chat"
RECORD_KEY = "puter_emulator.record"
"""Scope key of the request's `RequestRecord`, which handlers fill in as they learn more."""


def record_of(scope: Scope) -> RequestRecord:
    """The log record of this request (a detached one if the app did not make one)."""
    record = scope.get(RECORD_KEY)
    if isinstance(record, RequestRecord):
        return record
    return RequestRecord(time=0.0, method=scope.get("method", ""), path=scope.get("path", ""))


async def _never_receive() -> Message:
    """The `receive` given to responses: the endpoint itself is the one listening."""
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def run_until_disconnect(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run `app`, but stop it as soon as the client disconnects."""
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(watch)
        await app(scope, _never_receive, send)
        group.cancel_scope.cancel()


@dataclass
class _ChatCall:
    """One `complete` request that passed the gates common to every driver call."""

    state: EmulatorState
    account: Account
    args: ChatArgs
    model: ModelSpec | None
    record: RequestRecord

    @property
    def asked_model(self) -> str:
        return self.args.model

    @property
    def stream(self) -> bool:
        return self.args.stream

    def stream_delay(self) -> float:
        return self.state.stream_delay

    def find_model(self, name: str) -> ModelSpec:
        """A catalogue model; Puter's test models exist even in a catalogue that omits them."""
        return self.state.catalogue.find(name) or fake_chat_model(name)

    def normal_reply(self, *, stall_after: int | None = None, stall_seconds: float = 0.0) -> ASGIApp:
        model = self.model
        if model is None:
            return v2_error(400, "bad_request", f"Model not found: {self.args.model}")
        if self.account.credits_microcents <= 0:
            return v2_error(402, "insufficient_funds", "No usage left for request.")
        if model.subscriber_only and self.account.tier is not Tier.PAID:
            return v2_error(
                403, "permission_denied", f"Model {self.args.model} is only available to subscribers."
            )
        refused = refusal(model, self.args)
        if refused is not None:
            return v2_error(400, "bad_request", refused)
        answer = compose_answer(
            model,
            self.args,
            new_id=self.state.next_id,
            output_limit=self.state.affordable_output_tokens(self.account, model),
        )
        cost = self.state.charge(self.account, model, answer.input_tokens, answer.output_tokens)
        answer = replace(answer, usd_cents=None if cost is None else cost / 1_000_000)
        return self.answer_reply(answer, stall_after=stall_after, stall_seconds=stall_seconds)

    def uncharged_answer(self, model: ModelSpec | None = None, text: str | None = None) -> Answer:
        chosen = model or self.model or self.find_model("fake")
        answer = compose_answer(chosen, self.args, new_id=self.state.next_id, text_override=text)
        return replace(answer, usd_cents=None if chosen.is_test_model else 0)

    def answer_reply(
        self, answer: Answer, *, stall_after: int | None = None, stall_seconds: float = 0.0
    ) -> ASGIApp:
        self.record.model_used = answer.model.id
        if not self.args.stream:
            return json_response(success_body(answer))
        chunks = [ndjson(line) for line in stream_lines(answer)]
        pace = answer.model.stream_seconds / max(1, len(chunks) - 1)
        return ndjson_response(
            chunks,
            delay=lambda: max(self.stream_delay(), pace),
            stall_after=stall_after,
            stall_seconds=stall_seconds,
        )


class DriversCall:
    """The ASGI endpoint of `POST /drivers/call`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            raw = await request.body()
        except ClientDisconnect:
            return
        record = record_of(scope)
        reply, admitted = self._dispatch(request, raw, record)
        try:
            await run_until_disconnect(reply, scope, receive, send)
        finally:
            if admitted is not None:
                self.state.release(*admitted)

    def _dispatch(
        self, request: Request, raw: bytes, record: RequestRecord
    ) -> tuple[ASGIApp, tuple[Account, str] | None]:
        """The reply, and the (account, method) slot to release once it has been sent."""
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return v2_error(400, "client_bad_json", "The request body is not valid JSON."), None
        auth = authenticate(self.state, bearer_token(request.headers, body))
        if not isinstance(auth, Account):
            return auth, None
        account = auth
        record.username = account.username
        if not account.email_confirmed:
            return v2_error(403, "email_confirmation_required", EMAIL_UNCONFIRMED_MESSAGE), None
        method = body.get("method")
        interface = body.get("interface")
        driver = body.get("driver")
        method_key = method if isinstance(method, str) else ""
        record.driver_method = method_key or None

        admission = self.state.admit(account, method_key)
        if admission is Admission.WINDOW_FULL:
            return v2_error(429, "too_many_requests", "Too many requests."), None
        if admission is Admission.TOO_MANY_IN_FLIGHT:
            return v2_error(429, "too_many_requests", "Too many concurrent requests."), None
        admitted = (account, method_key)

        for field_name, value in (("interface", interface), ("method", method)):
            if not isinstance(value, str) or not value:
                return v2_error(400, "bad_request", f"Missing required field: {field_name}."), admitted
        if interface != INTERFACE:
            return v2_error(404, "not_found", f"Interface not found: {interface}."), admitted
        if driver is not None and driver != DRIVER:
            return v2_error(404, "not_found", f"Driver not found: {driver}."), admitted
        if method == "models":
            return self._envelope(self.state.catalogue.details(include_hidden=True)), admitted
        if method == "list":
            return self._envelope(self.state.catalogue.all_listed_ids()), admitted
        if method != "complete":
            return v2_error(404, "not_found", f"Method not found: {method}."), admitted
        return self._complete(account, body.get("args"), record), admitted

    @staticmethod
    def _envelope(result: Any) -> ASGIApp:
        return json_response({"success": True, "service": {"name": DRIVER}, "result": result, "metadata": {}})

    def _complete(self, account: Account, raw_args: Any, record: RequestRecord) -> ASGIApp:
        if isinstance(raw_args, dict):
            asked = raw_args.get("model")
            record.model = asked if isinstance(asked, str) else None
            record.stream = raw_args.get("stream") is True
        try:
            args = parse_chat_args(raw_args)
        except ArgsError as exc:
            return v2_error(400, "bad_request", str(exc))
        record.model = args.model
        record.messages = list(args.messages)
        record.tools = list(args.tools)
        record.args = dict(raw_args)
        model = self.state.catalogue.find(args.model)
        call = _ChatCall(self.state, account, args, model, record)
        names = model.names() if model is not None else (args.model,)
        rule = self.state.take_fault(
            model_keys=frozenset(name.strip().lower() for name in names),
            username=account.username,
            stream=args.stream,
        )
        if rule is not None:
            record.fault = rule.fault
            if rule.fault in (Fault.TOO_MANY_REQUESTS, Fault.TOO_MANY_CONCURRENT):
                self.state.refund(account, "complete")
            return render_fault(rule, call)
        return call.normal_reply()
