"""`/health` while the shared state store (a real redis-server of the test's own) is away:
``degraded`` with HTTP 200 and the reason, requests still answered; ``ok`` again once it is back."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from puter_mcp.core import Readiness
from tests.helpers import Emulator, RedisServer, running_gateway

MODEL = "gpt-5-nano"


def _health_until(url: str, wanted: str) -> dict[str, Any]:
    """GET /health until its status is `wanted` (bounded: the store is tried again every 5 s)."""
    body: dict[str, Any] = {}
    for _ in range(150):
        answer = httpx2.get(f"{url}/health", timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if body["status"] == wanted:
            return body
        time.sleep(0.1)
    raise AssertionError(f"/health never said {wanted!r}: {body}")


def test_readiness_pins_its_fields() -> None:
    assert list(Readiness.model_fields) == [
        "ready",
        "accounts",
        "usable_accounts",
        "models",
        "stale_catalogue",
        "problems",
        "sandbox",
        "degraded",
        "degraded_reason",
    ]


@pytest.mark.slow
def test_health_is_degraded_while_redis_is_away_and_ok_when_it_returns(
    emulator: Emulator, home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path / "redis", password="s3cret-redis-pw").start()
    url_with_password = f"redis://:s3cret-redis-pw@127.0.0.1:{server.port}/0"
    try:
        with running_gateway(
            emulator, home, state=url_with_password, state_prefix=f"t-{uuid.uuid4().hex[:8]}:"
        ) as gateway:
            healthy = _health_until(gateway.url, "ok")
            assert healthy["degraded"] is False and healthy["degraded_reason"] is None

            server.stop()
            degraded = _health_until(gateway.url, "degraded")
            assert degraded["ready"] is True
            assert "does not answer" in degraded["degraded_reason"]
            assert "s3cret-redis-pw" not in str(degraded)
            # No request fails because Redis is away: the replica answers from memory.
            with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-anything", max_retries=0) as client:
                answer = client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "hi"}]
                )
            assert answer.choices[0].message.content

            server.start()  # the same port, empty
            back = _health_until(gateway.url, "ok")
            assert back["degraded"] is False
    finally:
        server.stop()
    assert "the Redis state store at redis://:****@" in caplog.text  # the switch was logged...
    assert "s3cret-redis-pw" not in caplog.text  # ...without the password
