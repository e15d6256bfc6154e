"""Every scripted fault of the emulator, as a client sees it on the wire.

Error bodies are also run through the shared `classify` / `classify_stream_error`, so that the
emulator and the client's classification agree on what each fault means.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from puter_mcp.emulator import STREAM_ONLY_FAULTS, EmulatorState, Fault, FaultRule
from puter_mcp.emulator.testing import ManualClock, chat_body
from puter_mcp.puter.errors import FailureKind, classify, classify_stream_error

pytestmark = pytest.mark.anyio

V2_FAULTS: list[tuple[Fault, int, str, FailureKind]] = [
    (Fault.TOKEN_MISSING, 401, "token_missing", FailureKind.AUTH),
    (Fault.REAUTH_REQUIRED, 401, "reauth_required", FailureKind.AUTH),
    (Fault.TOKEN_AUTH_FAILED, 401, "token_auth_failed", FailureKind.AUTH),
    (Fault.EMAIL_CONFIRMATION_REQUIRED, 403, "email_confirmation_required", FailureKind.EMAIL_UNCONFIRMED),
    (Fault.CLIENT_BAD_JSON, 400, "client_bad_json", FailureKind.BAD_REQUEST),
    (Fault.BAD_REQUEST, 400, "bad_request", FailureKind.BAD_REQUEST),
    (Fault.NOT_FOUND, 404, "not_found", FailureKind.BAD_REQUEST),
    (Fault.INSUFFICIENT_FUNDS, 402, "insufficient_funds", FailureKind.OUT_OF_CREDITS),
    (Fault.FORBIDDEN, 403, "forbidden", FailureKind.AUTH),
    (Fault.PERMISSION_DENIED, 403, "permission_denied", FailureKind.MODEL_FORBIDDEN),
    (Fault.TOO_MANY_REQUESTS, 429, "too_many_requests", FailureKind.RATE_LIMITED),
    (Fault.TOO_MANY_CONCURRENT, 429, "too_many_requests", FailureKind.RATE_LIMITED),
    (Fault.UPSTREAM_RATE_LIMITED, 429, "upstream_rate_limited", FailureKind.MODEL_DOWN),
    (Fault.UPSTREAM_PROVIDER_UNAVAILABLE, 400, "upstream_provider_unavailable", FailureKind.MODEL_DOWN),
    (Fault.UPSTREAM_AUTH_FAILED, 500, "upstream_auth_failed", FailureKind.MODEL_DOWN),
    (Fault.UPSTREAM_BAD_REQUEST, 400, "upstream_bad_request", FailureKind.BAD_REQUEST),
    (Fault.UPSTREAM_FAILED, 400, "upstream_failed", FailureKind.MODEL_DOWN),
    (Fault.MODEL_NOT_FOUND, 400, "bad_request", FailureKind.MODEL_UNKNOWN),
    (Fault.MODERATION_FLAGGED, 400, "bad_request", FailureKind.BAD_REQUEST),
    (Fault.METHOD_NOT_FOUND, 404, "not_found", FailureKind.BAD_REQUEST),
    (Fault.INTERNAL_ERROR, 500, "internal_error", FailureKind.MODEL_DOWN),
]
OTHER_FAULTS_TESTED_BELOW = {
    Fault.V1_INSUFFICIENT_FUNDS,
    Fault.V1_DELEGATE_ERROR,
    Fault.V1_MODEL_NOT_FOUND,
    Fault.USAGE_LIMITED_ANSWER,
    Fault.ABUSE_STANDIN,
    Fault.STREAM_ERROR_AFTER_TEXT,
    Fault.STREAM_ERROR_ONLY,
    Fault.STALL_MID_STREAM,
    Fault.STREAM_CUT_MID_LINE,
    Fault.STREAM_NO_USAGE,
    Fault.STALL_BEFORE_HEADERS,
    Fault.INVALID_JSON,
    Fault.HTML_502,
    Fault.DROP_CONNECTION,
}


@pytest.fixture
def state() -> EmulatorState:
    emulator = EmulatorState(clock=ManualClock(), seed=11)
    emulator.seed_default_accounts()
    return emulator


async def call(
    client: httpx2.AsyncClient,
    state: EmulatorState,
    model: str = "gpt-5-nano",
    *,
    username: str = "paid_user",
    stream: bool = False,
    **kwargs: Any,
) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {state.accounts[username].token}"}
    return await client.post("/drivers/call", json=chat_body(model, stream=stream), headers=headers, **kwargs)


def lines_of(response: httpx2.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line) for line in response.text.splitlines()]


def test_every_fault_is_covered_by_these_tests() -> None:
    assert {case[0] for case in V2_FAULTS} | OTHER_FAULTS_TESTED_BELOW == set(Fault)


def test_a_rule_needs_at_least_one_use() -> None:
    with pytest.raises(ValueError, match="times"):
        FaultRule(Fault.HTML_502, times=0)


@pytest.mark.parametrize(("fault", "status", "code", "kind"), V2_FAULTS, ids=[c[0].value for c in V2_FAULTS])
async def test_v2_error_faults(
    client: httpx2.AsyncClient, state: EmulatorState, fault: Fault, status: int, code: str, kind: FailureKind
) -> None:
    state.add_fault(fault, model="claude-sonnet-latest")
    credits_before = state.accounts["paid_user"].credits_microcents
    for stream in (False, True):  # an error before the stream starts is plain JSON either way
        if stream:
            state.add_fault(fault, model="claude-sonnet-latest")
        response = await call(client, state, "claude-sonnet-5", stream=stream)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        body = response.json()
        assert body["code"] == code
        assert body["error"] == body["message"]
        assert body["message"]
        assert classify(response.status_code, body)[0] is kind
        assert (response.headers.get("x-needs-upgrade") == "true") == (status == 402)
    assert state.accounts["paid_user"].credits_microcents == credits_before
    assert [(r.fault, r.status) for r in state.requests] == [(fault, status), (fault, status)]


async def test_v2_fault_extra_fields(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(Fault.REAUTH_REQUIRED, reason="expired")
    assert (await call(client, state)).json()["reason"] == "expired"
    state.add_fault(Fault.MODERATION_FLAGGED)
    assert (await call(client, state)).json()["errorCode"] == "moderation_flagged"
    state.add_fault(Fault.UPSTREAM_RATE_LIMITED)
    attempts = (await call(client, state)).json()["attempts"]
    assert attempts[0]["provider"] == "openai-completion"
    assert attempts[0]["status"] == 429
    state.add_fault(Fault.MODEL_NOT_FOUND)
    assert (await call(client, state, "GPT-5-nano")).json()["message"] == "Model not found: GPT-5-nano"
    state.add_fault(Fault.INTERNAL_ERROR, message="boom")
    assert (await call(client, state)).json()["message"] == "boom"


async def test_v1_success_false_envelope(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(Fault.V1_INSUFFICIENT_FUNDS)
    response = await call(client, state, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["success"] is False
    error = body["error"]
    assert (error["code"], error["status"], error["delegate"], error["$"]) == (
        "insufficient_funds",
        402,
        "usage-limited-chat",
        "heyputer:api/APIError",
    )
    assert classify(200, body)[0] is FailureKind.OUT_OF_CREDITS


async def test_v1_delegate_error_and_field_invalid(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(Fault.V1_DELEGATE_ERROR)
    response = await call(client, state)
    body = response.json()
    assert (response.status_code, body["code"]) == (400, "error_400_from_delegate")
    assert "usage-limited-chat" in body["message"]
    assert classify(400, body)[0] is FailureKind.OUT_OF_CREDITS
    state.add_fault(Fault.V1_MODEL_NOT_FOUND)
    response = await call(client, state, "gpt-5-nano")
    body = response.json()
    assert (response.status_code, body["code"]) == (400, "field_invalid")
    assert classify(400, body)[0] is FailureKind.MODEL_UNKNOWN


async def test_usage_limited_answer_is_a_200_json_even_for_a_stream(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    state.add_fault(Fault.USAGE_LIMITED_ANSWER)
    response = await call(client, state, "claude-sonnet-5", stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["success"] is True
    assert body["metadata"]["usage_limited"] is True
    assert body["metadata"]["providerUsed"] == "usage-limited-chat"
    assert "usage limit" in body["result"]["message"]["content"][0]["text"]
    assert state.accounts["paid_user"].usage == {}


async def test_abuse_model_stands_in(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(Fault.ABUSE_STANDIN, model="gpt-5-nano", times=2)
    body = (await call(client, state, "gpt-5-nano")).json()
    assert body["metadata"]["providerUsed"] == "abuse"
    assert body["metadata"]["service_used"] == "fake-chat"
    message = body["result"]["message"]
    assert message["model"] == "abuse"
    assert "gpt-5-nano" in message["content"][0]["text"]
    assert body["result"]["usage"]["usd_cents"] is None
    lines = lines_of(await call(client, state, "gpt-5-nano", stream=True))
    assert "".join(line["text"] for line in lines if line["type"] == "text").startswith("[abuse]")
    assert lines[-1]["usage"]["usd_cents"] is None
    assert state.accounts["paid_user"].usage == {}
    assert [r.model_used for r in state.requests] == ["abuse", "abuse"]


async def test_stream_error_after_some_text(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(Fault.STREAM_ERROR_AFTER_TEXT)
    lines = lines_of(await call(client, state, "claude-sonnet-5", stream=True))
    assert [line["type"] for line in lines] == ["text", "text", "error"]
    assert lines[-1]["message"].startswith("429 {")
    assert classify_stream_error(lines[-1]["message"]) is FailureKind.MODEL_DOWN
    state.add_fault(Fault.STREAM_ERROR_AFTER_TEXT, text_lines=1, message="socket hang up")
    lines = lines_of(await call(client, state, "gpt-5-nano", stream=True))
    assert [line["type"] for line in lines] == ["text", "error"]
    assert classify_stream_error(lines[-1]["message"]) is FailureKind.TRANSPORT


async def test_claude_style_stream_of_a_single_error_line(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    state.add_fault(
        Fault.STREAM_ERROR_ONLY, message='529 {"type":"error","error":{"type":"overloaded_error"}}'
    )
    lines = lines_of(await call(client, state, "claude-sonnet-5", stream=True))
    assert lines == [{"type": "error", "message": '529 {"type":"error","error":{"type":"overloaded_error"}}'}]


async def test_stream_cut_mid_line(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(Fault.STREAM_CUT_MID_LINE, after_lines=2)
    response = await call(client, state, stream=True)
    assert response.status_code == 200
    assert not response.text.endswith("\n")
    *whole, cut = response.text.split("\n")
    assert [json.loads(line)["type"] for line in whole] == ["text", "text"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut)


async def test_stream_without_usage_line(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(Fault.STREAM_NO_USAGE)
    lines = lines_of(await call(client, state, stream=True))
    assert lines
    assert {line["type"] for line in lines} == {"text"}


async def test_stream_only_rules_skip_non_streaming_requests(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    assert Fault.STREAM_NO_USAGE in STREAM_ONLY_FAULTS
    rule = state.add_fault(Fault.STREAM_NO_USAGE)
    assert (await call(client, state)).json()["success"] is True
    assert rule.hits == 0
    lines = lines_of(await call(client, state, stream=True))
    assert "usage" not in {line["type"] for line in lines}
    assert rule.hits == 1
    assert state.faults == []


async def test_stall_before_headers(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(Fault.STALL_BEFORE_HEADERS, seconds=30)
    with pytest.raises(httpx2.ReadTimeout):
        await call(client, state, timeout=httpx2.Timeout(5, read=0.3))
    # A short stall, then the normal (charged) answer.
    state.add_fault(Fault.STALL_BEFORE_HEADERS, seconds=0.01)
    response = await call(client, state, "claude-sonnet-5")
    assert response.json()["metadata"]["providerUsed"] == "claude-sonnet-5"
    assert state.requests[-1].fault is Fault.STALL_BEFORE_HEADERS
    assert state.accounts["paid_user"].used_microcents > 0


async def test_stall_mid_stream(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(Fault.STALL_MID_STREAM, seconds=30, after_lines=1)
    headers = {"Authorization": f"Bearer {state.accounts['paid_user'].token}"}
    body = chat_body("gpt-5-nano", stream=True)
    async with client.stream("POST", "/drivers/call", json=body, headers=headers, timeout=0.3) as response:
        assert response.status_code == 200
        lines = response.aiter_lines()
        assert json.loads(await anext(lines))["type"] == "text"
        with pytest.raises(httpx2.ReadTimeout):
            await anext(lines)


async def test_invalid_json_body(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(Fault.INVALID_JSON)
    response = await call(client, state)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_html_502_page(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(Fault.HTML_502)
    response = await call(client, state, stream=True)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text
    assert classify(502, None)[0] is FailureKind.TRANSPORT


@pytest.mark.parametrize("stream", [False, True])
async def test_dropped_connection_gets_no_http_answer(
    client: httpx2.AsyncClient, state: EmulatorState, stream: bool
) -> None:
    state.add_fault(Fault.DROP_CONNECTION)
    with pytest.raises((httpx2.RemoteProtocolError, httpx2.ReadError)):
        await call(client, state, stream=stream)
    record = state.requests[-1]
    assert (record.fault, record.status) == (Fault.DROP_CONNECTION, None)
    assert (await call(client, state)).status_code == 200  # the client recovers on a new connection


# --- which requests a rule matches -------------------------------------------------------


async def test_rules_match_any_name_of_the_model(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    state.add_fault(Fault.HTML_502, model="gpt-5-nano", times=None)
    for name in (
        "GPT-5-NANO-2025-08-07",
        "openai:openai/gpt-5-nano-2025-08-07",
        "openai/gpt-5-nano-2025-08-07",
    ):
        assert (await call(client, state, name)).status_code == 502
    assert (await call(client, state, "gpt-5-mini")).status_code == 200
    state.clear_faults()
    state.add_fault(Fault.UPSTREAM_FAILED, model="my-private-model")  # a name outside the catalogue
    assert (await call(client, state, "My-Private-Model")).json()["code"] == "upstream_failed"


async def test_rules_by_account_count_and_order(client: httpx2.AsyncClient, state: EmulatorState) -> None:
    first = state.add_fault(Fault.HTML_502, account="free_user", times=2)
    forever = state.add_fault(Fault.INSUFFICIENT_FUNDS, account="free_user", times=None)
    assert (await call(client, state, username="paid_user")).status_code == 200
    statuses = [(await call(client, state, username="free_user")).status_code for _ in range(4)]
    assert statuses == [502, 502, 402, 402]
    assert (first.hits, forever.hits) == (2, 2)
    assert state.faults == [forever]


async def test_faulted_requests_count_in_the_rate_window(
    client: httpx2.AsyncClient, state: EmulatorState
) -> None:
    state.add_fault(Fault.INTERNAL_ERROR, times=3)
    for _ in range(3):
        await call(client, state, username="temp_user")
    assert state.window_count("temp_user") == 3
    assert state.in_flight("temp_user") == 0
