"""The gateway's /stats, /metrics and access log, against the emulator on loopback.

Driven through the official `openai` client; what the gateway reports is checked against the
emulator's own request log (every upstream request it received), never against the gateway's
own idea of what it did.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx2
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from puter_mcp.core import Backend, ChatCall, CooldownInfo
from puter_mcp.emulator import Fault
from puter_mcp.gateway.access import Caller, KeyUsage
from puter_mcp.gateway.app import build_app
from puter_mcp.gateway.exchange import Exchange
from puter_mcp.gateway.failures import GatewayError
from puter_mcp.gateway.handling import Gateway
from puter_mcp.gateway.keystore import KeyLimits, KeySpec, SQLiteKeyStore, key_store_file
from puter_mcp.gateway.observe import ACCESS_LOGGER, GatewayMetrics, access_line, observer_of, route_of
from puter_mcp.settings import (
    CooldownSettings,
    GatewaySettings,
    RoutingSettings,
    load_settings,
    resolve_paths,
)
from tests.helpers import Emulator, backend_for, running_gateway

MODEL = "gpt-5-nano"
CANONICAL = "gpt-5-nano-2025-08-07"
CLIENT_KEY = "sk-never-logged-7f3a9c"  # the SDK insists on a key; with keys off it is ignored
SECRET_TEXT = "the otters' secret recipe"
# The 429's cooldown must still hold when /metrics is read, however slow the machine.
LONG_COOLDOWN = CooldownSettings(rate_limited=(3600.0,))


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for something the gateway does after the client got its last byte: it
    tells its hooks once the response is sent, so the client may be a moment ahead."""
    for _ in range(1000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text page, by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_stats_metrics_and_the_access_log_agree_with_the_emulators_request_log(
    emulator: Emulator, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    with running_gateway(
        emulator,
        home,
        emulator.paid,
        emulator.free,
        routing=RoutingSettings(strategy="fill-first"),
        cooldowns=LONG_COOLDOWN,
    ) as running:
        client = openai.OpenAI(base_url=f"{running.url}/v1", api_key=CLIENT_KEY, max_retries=0)
        emulator.state.clear_requests()
        # The first upstream request is refused with 429 on the paid account: the gateway fails
        # over to the free one before any byte is sent, and the paid account cools down.
        emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, model=MODEL, account=emulator.paid.username)
        messages: Any = [{"role": "user", "content": SECRET_TEXT}]
        for _ in range(2):
            client.chat.completions.create(model=MODEL, messages=messages)
        stream = client.chat.completions.create(
            model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
        )
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model-anywhere", messages=messages)
        sent = emulator.chat_requests()
        chat_lines = 4

        def access_lines() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == ACCESS_LOGGER]

        until(lambda: len(access_lines()) == chat_lines, "an access line per chat request")

        stats = httpx2.get(f"{running.url}/stats", params={"window": "1h"}, timeout=30).json()
        metrics = httpx2.get(f"{running.url}/metrics", timeout=30)
        until(lambda: len(access_lines()) == chat_lines + 2, "the access lines of /stats and /metrics")

    # -- the emulator saw: one 429 on paid, then three answers from free -------------------
    assert [(r.username, r.status) for r in sent] == [
        (emulator.paid.username, 429),
        (emulator.free.username, 200),
        (emulator.free.username, 200),
        (emulator.free.username, 200),
    ]

    # -- /stats: the same requests, per model and account, and the failure kind -----------
    assert stats["window_s"] == 3600
    assert {name: f["requests"] for name, f in stats["accounts"].items()} == dict(
        Counter(r.username for r in sent)
    )
    assert {name: f["requests"] for name, f in stats["models"].items()} == {CANONICAL: 4}
    assert stats["accounts"][emulator.paid.username]["failures"] == {"rate_limited": 1}
    assert stats["total"]["successes"] == 3 and stats["calls"] == 3
    assert stats["total"]["ttft_p50_ms"] is not None and stats["total"]["latency_p95_ms"] is not None
    assert stats["covers"].startswith("every process using this state database")
    assert stats["keys"] == {}  # keys are off: no key to count

    # -- /metrics: Prometheus text whose counters match --------------------------------------
    assert metrics.headers["content-type"].startswith("text/plain")
    samples = metric_samples(metrics.text)
    chat = {"api": "openai", "route": "/v1/chat/completions", "method": "POST"}
    assert value(samples, "puter_gateway_requests_total", **chat, status="200") == 3
    assert value(samples, "puter_gateway_requests_total", **chat, status="404") == 1
    assert value(samples, "puter_gateway_failures_total", api="openai", kind="model_not_found") == 1
    upstream = "puter_upstream_requests_total"
    assert (
        value(samples, upstream, model=CANONICAL, account=emulator.paid.username, outcome="rate_limited") == 1
    )
    assert value(samples, upstream, model=CANONICAL, account=emulator.free.username, outcome="ok") == 3
    assert value(samples, "puter_upstream_latency_seconds_count", model=CANONICAL) == 3
    assert value(samples, "puter_gateway_request_duration_seconds_count", api="openai", stream="true") == 1
    # Time to first token is the streamed answer's: a whole answer sends nothing before its end.
    assert value(samples, "puter_gateway_time_to_first_token_seconds_count", api="openai") == 1
    assert value(samples, "puter_upstream_time_to_first_token_seconds_count", model=CANONICAL) == 3
    tokens = "puter_upstream_tokens_total"
    assert value(samples, tokens, model=CANONICAL, direction="output") == stats["total"]["output_tokens"] > 0
    assert value(samples, tokens, model=CANONICAL, direction="input") == stats["total"]["input_tokens"] > 0
    assert value(samples, "puter_cooldowns_active", scope="account", kind="rate_limited") == 1
    assert value(samples, "puter_gateway_requests_in_flight") == 1  # the scrape itself

    # -- the access log: one line per request, never the key or the text ----------------------
    lines = [record.getMessage() for record in caplog.records if record.name == ACCESS_LOGGER]
    assert [line.split()[:3] for line in lines] == [
        *[["method=POST", "path=/v1/chat/completions", "status=200"]] * 3,
        ["method=POST", "path=/v1/chat/completions", "status=404"],
        ["method=GET", "path=/stats", "status=200"],
        ["method=GET", "path=/metrics", "status=200"],
    ]
    assert "stream=true" in lines[2] and "stream=false" in lines[0]
    assert f"answered={CANONICAL}" in lines[0] and f"model={MODEL}" in lines[0]
    assert "failure=model_not_found" in lines[3]
    every_line = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (CLIENT_KEY, SECRET_TEXT, emulator.paid.token, emulator.free.token):
        assert secret not in every_line


def test_a_bad_window_is_a_400_naming_the_parameter(emulator: Emulator, home: Path) -> None:
    with running_gateway(emulator, home) as running:
        answer = httpx2.get(f"{running.url}/stats", params={"window": "yesterday"}, timeout=30)
    assert answer.status_code == 400
    assert "not a window" in answer.json()["error"]


# -- the key rules, with a key gate standing in for the key store -----------------------------


class TwoKeys:
    """A `KeyGate` with one chat key and one admin key, and fixed usage figures."""

    required = True
    KEYS: ClassVar = {"pmk-chat": Caller("laptop"), "pmk-admin": Caller("ops", admin=True)}

    async def admit(self, secret: str | None, model: str | None, *, spend: bool = True) -> Caller:
        if secret not in self.KEYS:
            raise GatewayError(401, "a valid API key is required")
        return self.KEYS[secret]

    async def usage(self, since: float) -> list[KeyUsage]:
        return [KeyUsage("laptop", requests=12, rate_limited=2), KeyUsage("ops", requests=1, rate_limited=0)]

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def keyed(emulator: Emulator, home: Path) -> AsyncIterator[httpx2.AsyncClient]:
    async with backend_for(emulator, home, emulator.paid) as (backend, _):
        gateway = Gateway(backend, settings=GatewaySettings(require_keys=True), keys=TwoKeys())
        await backend.chat(ChatCall.build(message="hello", model=MODEL))
        transport = httpx2.ASGITransport(app=build_app(gateway))
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.anyio
async def test_with_keys_required_stats_need_an_admin_key_and_list_each_keys_usage(
    keyed: httpx2.AsyncClient,
) -> None:
    assert (await keyed.get("/stats")).status_code == 401
    refused = await keyed.get("/stats", headers=bearer("pmk-chat"))
    assert refused.status_code == 403 and "admin key" in refused.json()["error"]
    answer = await keyed.get("/stats", headers=bearer("pmk-admin"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["keys"] == {
        "laptop": {"requests": 12, "rate_limited": 2},
        "ops": {"requests": 1, "rate_limited": 0},
    }
    assert body["total"]["requests"] == 1  # the chat the fixture made, from the attempt log


@pytest.mark.anyio
async def test_with_keys_required_metrics_need_a_key_any_key(keyed: httpx2.AsyncClient) -> None:
    assert (await keyed.get("/metrics")).status_code == 401
    answer = await keyed.get("/metrics", headers={"x-api-key": "pmk-chat"})
    assert answer.status_code == 200
    families = {family.name for family in text_string_to_metric_families(answer.text)}
    assert {"puter_gateway_requests", "puter_upstream_requests", "puter_cooldowns_active"} <= families
    # Metrics name no key: a scraper's key sees the traffic, not who made it.
    assert "laptop" not in answer.text and "ops" not in answer.text


def test_stats_count_each_real_keys_requests_and_429s_and_metrics_name_no_key(
    emulator: Emulator, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    with running_gateway(emulator, home, emulator.paid, gateway={"require_keys": True}) as running:
        store = SQLiteKeyStore(key_store_file(running.paths))
        try:
            now = time.time()
            laptop = store.create_now(KeySpec("laptop", limits=KeyLimits(rpm=2)), now=now)[1]
            ops = store.create_now(KeySpec("ops", admin=True), now=now)[1]
        finally:
            store.close()
        client = openai.OpenAI(base_url=f"{running.url}/v1", api_key=laptop, max_retries=0)
        messages: Any = [{"role": "user", "content": "hi"}]
        for _ in range(2):
            client.chat.completions.create(model=MODEL, messages=messages)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model=MODEL, messages=messages)
        with httpx2.Client(base_url=running.url, timeout=30) as http:
            metrics = http.get("/metrics", headers=bearer(ops))
            stats = http.get("/stats", headers=bearer(ops)).json()
    # ops's own two requests count as they were admitted before /stats read the counts.
    assert stats["keys"] == {
        "laptop": {"requests": 2, "rate_limited": 1},
        "ops": {"requests": 2, "rate_limited": 0},
    }
    assert stats["total"]["requests"] == len(emulator.chat_requests()) == 2
    samples = metric_samples(metrics.text)
    chat = {"api": "openai", "route": "/v1/chat/completions", "method": "POST"}
    assert value(samples, "puter_gateway_requests_total", **chat, status="429") == 1
    assert "laptop" not in metrics.text and "ops" not in metrics.text
    lines = [record.getMessage() for record in caplog.records if record.name == ACCESS_LOGGER]
    # The two admitted requests name their key, and so does the one refused for its limit.
    assert sum("key=laptop" in line for line in lines) == 3
    (refused,) = [line for line in lines if "status=429" in line]
    assert "key=laptop" in refused
    for secret in (laptop, ops):
        assert all(secret not in line for line in lines)


# -- the pure parts --------------------------------------------------------------------------


def test_routes_with_a_value_in_their_path_are_one_label() -> None:
    assert route_of("/v1/models/gpt-5-nano") == "/v1/models/{id}"
    assert route_of("/models/openrouter:meta/llama") == "/models/{id}"
    assert route_of("/v1/keys/laptop") == "/v1/keys/{id}"
    assert route_of("/v1/models") == "/v1/models"
    assert route_of("/v1/chat/completions") == "/v1/chat/completions"


def exchange(**fields: Any) -> Exchange:
    base: dict[str, Any] = {"api": "openai", "method": "POST", "path": "/v1/chat/completions", "started": 0.0}
    return Exchange(**{**base, **fields})


def test_an_access_line_is_logfmt_with_quoted_values_and_no_empty_fields() -> None:
    line, fields = access_line(
        exchange(
            key="laptop",
            model_asked="coding-elite",
            model_answered="gpt-5",
            status=200,
            stream=True,
            ms=812.345,
            fallback='claude-x is down; "gpt-5" answered',
        )
    )
    assert line == (
        "method=POST path=/v1/chat/completions status=200 ms=812.3 api=openai key=laptop "
        'model=coding-elite answered=gpt-5 stream=true fallback="claude-x is down; \\"gpt-5\\" answered"'
    )
    assert fields["key"] == "laptop" and fields["account"] is None


def test_two_gateways_metrics_never_share_a_series() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()  # would raise on the global registry
    first.exchange_ended(exchange(status=200, ms=5.0))
    samples = metric_samples(second.text().decode())
    assert (
        value(
            samples,
            "puter_gateway_requests_total",
            api="openai",
            route="/v1/chat/completions",
            method="POST",
            status="200",
        )
        == 0
    )
    assert (
        value(
            metric_samples(first.text().decode()),
            "puter_gateway_requests_total",
            api="openai",
            route="/v1/chat/completions",
            method="POST",
            status="200",
        )
        == 1
    )


def test_the_cooldown_gauge_drops_kinds_that_ended() -> None:
    metrics = GatewayMetrics()
    metrics.set_cooldowns([CooldownInfo(scope="model", model="m", kind="model_down")] * 2)
    assert (
        value(
            metric_samples(metrics.text().decode()),
            "puter_cooldowns_active",
            scope="model",
            kind="model_down",
        )
        == 2
    )
    metrics.set_cooldowns([])
    assert ("puter_cooldowns_active", frozenset({("scope", "model"), ("kind", "model_down")})) not in (
        metric_samples(metrics.text().decode())
    )


def test_observing_a_backend_builds_none_of_its_machinery(home: Path) -> None:
    # Registering the metrics' attempt hook must not build the engine: a gateway starts fast.
    settings, paths = load_settings(paths=resolve_paths({"PUTER_MCP_HOME": str(home)}), env={})
    backend = Backend(settings, paths)
    gateway = Gateway(backend)
    assert observer_of(gateway) is observer_of(gateway)  # one per gateway, among its hooks
    assert gateway.hooks == [observer_of(gateway)]
    assert backend._engine is None  # pyright: ignore[reportPrivateUsage]
