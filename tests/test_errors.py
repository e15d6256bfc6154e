"""The failure-kind table of errors.py: every row of Puter's error table, in both envelopes."""

from __future__ import annotations

from typing import Any

import pytest

from puter_mcp.puter.errors import FailureKind, PuterError, classify, classify_stream_error

K = FailureKind

# (situation, status, code, message, extra fields, expected kind): the table in
# docs/puter-protocol.md ("Errors"), row by row.
ERROR_TABLE: list[tuple[str, int, str, str, dict[str, Any], FailureKind]] = [
    ("no token", 401, "token_missing", "Missing authentication token.", {}, K.AUTH),
    ("not a current token", 401, "reauth_required", "Please sign in again.", {"reason": "legacy"}, K.AUTH),
    ("token fails verification", 401, "token_auth_failed", "Authentication failed.", {}, K.AUTH),
    ("malformed JSON body", 400, "client_bad_json", "Malformed JSON body.", {}, K.BAD_REQUEST),
    ("missing interface", 400, "bad_request", "Missing `interface`.", {}, K.BAD_REQUEST),
    ("unknown interface", 404, "not_found", "Interface not found.", {}, K.BAD_REQUEST),
    ("out of credits", 402, "insufficient_funds", "No usage left for request.", {}, K.OUT_OF_CREDITS),
    ("driver permission", 403, "forbidden", "Permission denied.", {}, K.AUTH),
    ("subscriber-only model", 403, "permission_denied", "Only for subscribers.", {}, K.MODEL_FORBIDDEN),
    ("request rate", 429, "too_many_requests", "Too many requests.", {}, K.RATE_LIMITED),
    ("concurrency cap", 429, "too_many_requests", "Too many concurrent requests.", {}, K.RATE_LIMITED),
    (
        "every provider throttled",
        429,
        "upstream_rate_limited",
        "Upstream rate limited.",
        {"attempts": [{"provider": "claude"}]},
        K.MODEL_DOWN,
    ),
    ("providers down", 400, "upstream_provider_unavailable", "Provider unavailable.", {}, K.MODEL_DOWN),
    ("upstream auth failure", 500, "upstream_auth_failed", "Upstream auth failed.", {}, K.MODEL_DOWN),
    ("upstream rejected", 400, "upstream_bad_request", "Upstream rejected it.", {}, K.BAD_REQUEST),
    ("mixed upstream failures", 400, "upstream_failed", "Upstream failed.", {}, K.MODEL_DOWN),
    ("unknown model", 400, "bad_request", "Model not found: gpt-99", {}, K.MODEL_UNKNOWN),
    ("bad arguments", 400, "bad_request", "`messages` must be an array", {}, K.BAD_REQUEST),
    (
        "moderation refusal",
        400,
        "bad_request",
        "Content flagged.",
        {"errorCode": "moderation_flagged"},
        K.BAD_REQUEST,
    ),
    ("unknown method", 404, "not_found", "Method not found.", {}, K.BAD_REQUEST),
    ("anything else", 500, "internal_error", "An internal error occurred.", {}, K.MODEL_DOWN),
]
IDS = [row[0] for row in ERROR_TABLE]


def v2_body(code: str, message: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {"error": message, "message": message, "code": code, **extra}


def v1_body(status: int, code: str, message: str, extra: dict[str, Any]) -> dict[str, Any]:
    error = {"code": code, "message": message, "status": status, "$": "heyputer:api/APIError", **extra}
    return {"success": False, "error": error}


@pytest.mark.parametrize(("situation", "status", "code", "message", "extra", "kind"), ERROR_TABLE, ids=IDS)
def test_v2_envelope(
    situation: str, status: int, code: str, message: str, extra: dict[str, Any], kind: FailureKind
) -> None:
    assert classify(status, v2_body(code, message, extra)) == (kind, code, message)


@pytest.mark.parametrize(("situation", "status", "code", "message", "extra", "kind"), ERROR_TABLE, ids=IDS)
def test_v1_envelope_inside_a_200(
    situation: str, status: int, code: str, message: str, extra: dict[str, Any], kind: FailureKind
) -> None:
    assert classify(200, v1_body(status, code, message, extra)) == (kind, code, message)


@pytest.mark.parametrize(("situation", "status", "code", "message", "extra", "kind"), ERROR_TABLE, ids=IDS)
def test_v1_envelope_with_its_real_status(
    situation: str, status: int, code: str, message: str, extra: dict[str, Any], kind: FailureKind
) -> None:
    assert classify(status, v1_body(status, code, message, extra))[0] is kind


class TestV1Specials:
    def test_usage_limited_delegate_in_a_200(self) -> None:
        body = {
            "success": False,
            "error": {
                "code": "insufficient_funds",
                "message": "No usage left for request.",
                "status": 402,
                "delegate": "usage-limited-chat",
                "$": "heyputer:api/APIError",
            },
        }
        assert classify(200, body) == (K.OUT_OF_CREDITS, "insufficient_funds", "No usage left for request.")

    @pytest.mark.parametrize("status", [200, 400])
    def test_error_400_from_delegate_naming_usage_limited_chat(self, status: int) -> None:
        message = "Error 400 from delegate `usage-limited-chat`: Permission denied."
        body = {
            "success": False,
            "error": {"code": "error_400_from_delegate", "message": message, "status": 400},
        }
        assert classify(status, body) == (K.OUT_OF_CREDITS, "error_400_from_delegate", message)

    def test_error_400_from_delegate_flat_body(self) -> None:
        message = "Error 400 from delegate `usage-limited-chat`: Permission denied."
        body = {"code": "error_400_from_delegate", "message": message}
        assert classify(400, body)[0] is K.OUT_OF_CREDITS

    def test_error_400_from_another_delegate_is_a_bad_request(self) -> None:
        body = {"code": "error_400_from_delegate", "message": "Error 400 from delegate `claude`: bad image"}
        assert classify(400, body)[0] is K.BAD_REQUEST

    def test_field_invalid_naming_model_not_found(self) -> None:
        body = {"code": "field_invalid", "message": "Model not found: nope"}
        assert classify(400, body)[0] is K.MODEL_UNKNOWN

    def test_field_invalid_for_the_model_field(self) -> None:
        body = {
            "code": "field_invalid",
            "key": "model",
            "message": 'Field "model" is invalid. Expected a valid model name from https://x/puterai/chat/models.',
        }
        assert classify(400, body)[0] is K.MODEL_UNKNOWN

    def test_v1_without_status_in_a_200_is_not_mistaken_for_success(self) -> None:
        body = {"success": False, "error": {"code": "mystery", "message": "?"}}
        assert classify(200, body)[0] is K.TRANSPORT


class TestBodiesThatAreNotJson:
    @pytest.mark.parametrize(
        ("status", "kind"),
        [
            (502, K.TRANSPORT),
            (503, K.TRANSPORT),
            (500, K.TRANSPORT),
            (429, K.RATE_LIMITED),
            (401, K.AUTH),
            (402, K.OUT_OF_CREDITS),
            (403, K.AUTH),
            (413, K.BAD_REQUEST),
            (400, K.BAD_REQUEST),
            (418, K.TRANSPORT),
        ],
    )
    def test_html_page(self, status: int, kind: FailureKind) -> None:
        found, code, message = classify(status, None)
        assert found is kind
        assert code is None
        assert message  # always a sentence, even without a body

    def test_json_5xx_without_a_known_code_is_the_model_failing(self) -> None:
        assert classify(503, {"message": "Service Unavailable"})[0] is K.MODEL_DOWN

    def test_unknown_code_falls_back_on_status(self) -> None:
        assert classify(429, {"code": "new_code", "message": "slow down"})[0] is K.RATE_LIMITED


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ('429 {"type":"error","error":{"type":"rate_limit_error"}}', K.MODEL_DOWN),
        ("529 overloaded", K.MODEL_DOWN),
        ("503 Service Unavailable", K.MODEL_DOWN),
        ("500 internal", K.MODEL_DOWN),
        ("  502 bad gateway", K.MODEL_DOWN),
        ("402 credit balance too low", K.OUT_OF_CREDITS),
        ("401 invalid x-api-key", K.MODEL_DOWN),
        ("403 forbidden", K.MODEL_DOWN),
        ("400 prompt is too long", K.BAD_REQUEST),
        ("404 not found", K.TRANSPORT),
        ("4290 is not a status", K.TRANSPORT),
        ("Connection error.", K.TRANSPORT),
        ("", K.TRANSPORT),
    ],
)
def test_classify_stream_error(message: str, kind: FailureKind) -> None:
    assert classify_stream_error(message) is kind


def test_puter_error_carries_everything() -> None:
    error = PuterError(
        K.RATE_LIMITED, "Too many requests.", status=429, code="too_many_requests", partial_text="ab"
    )
    assert (error.kind, error.message, error.status, error.code, error.partial_text) == (
        K.RATE_LIMITED,
        "Too many requests.",
        429,
        "too_many_requests",
        "ab",
    )
    assert str(error) == "Too many requests."
    assert "rate_limited" in repr(error)
    assert "429" in repr(error)
