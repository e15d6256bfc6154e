"""What the gateway says about itself: ``GET /stats``, ``GET /metrics`` and the access log.

```
Observer (one per Gateway, itself one of the gateway's ExchangeHooks)
 ├─ the access log      one line per request, logger ``puter_mcp.gateway.access``
 ├─ GatewayMetrics      Prometheus counters and histograms in a registry of its own
 │    ├─ fed by each Exchange (one per HTTP request, when its last byte went out)
 │    ├─ fed by each upstream attempt (`Backend.add_attempt_hook`)
 │    └─ read at scrape time: cooldowns in force (`Backend.active_cooldowns`), in flight,
 │                      the deployment's last minutes from the shared attempt log
 ├─ GET /stats          usage over a window from the shared attempt log (`Backend.usage_stats`)
 │                      and each API key's requests and 429s (`KeyGate.usage`)
 └─ GET /metrics        the registry as Prometheus text
```

``/stats`` is computed from the attempt records the core already keeps (the state store's
attempt log), so it covers every process using the same state database (every replica of a
fleet on one Redis). ``/metrics`` has both: counters of this process since it started
(``puter_gateway_*``, ``puter_upstream_*``: Prometheus sums processes and takes rates), and
gauges of the whole deployment over the last `METRICS_WINDOW` seconds, from the same log as
``/stats`` (``puter_deployment_*``, with ``puter_deployment_info`` saying which processes they
cover), so that any one replica's scrape shows the fleet. Every figure and metric name is
listed in docs/gateway-observe.md.

Both routes follow the key rules: when keys are required, ``/metrics`` needs a valid key and
``/stats`` an admin key (it names every key and account). Neither names a key's secret, a
token or any message text; neither does the access log.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from puter_mcp.core import CooldownInfo, UpstreamAttempt, UsageReport
from puter_mcp.display import parse_window
from puter_mcp.gateway.exchange import Exchange
from puter_mcp.gateway.failures import GatewayError
from puter_mcp.gateway.handling import Gateway, routes_for

__all__ = [
    "ACCESS_LOGGER",
    "DEFAULT_WINDOW",
    "METRICS_WINDOW",
    "GatewayMetrics",
    "Observer",
    "access_line",
    "count_in_flight",
    "observer_of",
    "route_of",
    "routes",
]

ACCESS_LOGGER = "puter_mcp.gateway.access"
DEFAULT_WINDOW = 86400.0
"""`/stats` without ``?window=``: the last 24 hours."""

METRICS_WINDOW = 60.0
"""Seconds of the shared attempt log the ``puter_deployment_*`` gauges of ``/metrics`` cover:
the last minute, as a dashboard shows it, and short enough to read at every scrape (each
record read costs ~10 µs: a minute at 100 requests a second is ~60 ms of a scrape)."""

_access = logging.getLogger(ACCESS_LOGGER)

# Seconds. A model's whole answer takes from a fraction of a second to minutes; its first
# token from tens of milliseconds to tens of seconds (a reasoning model thinks first).
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
_TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)

# Path segments that are values, not routes: a label per model id or key name would make a
# series per value (Prometheus's "cardinality" warning).
_VALUE_AFTER = frozenset({"models", "keys"})


def route_of(path: str) -> str:
    """The route a path was served by, as a metric label: ``/v1/models/gpt-5`` is
    ``/v1/models/{id}``; every other path is its own route."""
    parts = path.split("/")
    for index in range(1, len(parts) - 1):
        if parts[index] in _VALUE_AFTER and parts[index + 1]:
            return "/".join([*parts[: index + 1], "{id}"])
    return path


class GatewayMetrics:
    """The gateway's Prometheus metrics, in a registry of their own (never the process-wide
    default), so that two gateways in one process, or one per test, never share a series.

    Args:
        registry: where the metrics live (a new one by default).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry or CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.requests = Counter(
            "puter_gateway_requests",
            "HTTP requests answered, by API, route, method and status.",
            ["api", "route", "method", "status"],
            registry=registry,
        )
        self.failures = Counter(
            "puter_gateway_failures",
            "HTTP requests that failed, by API and why (a failure kind or a refusal's category).",
            ["api", "kind"],
            registry=registry,
        )
        self.duration = Histogram(
            "puter_gateway_request_duration_seconds",
            "From a request's arrival to its last byte, by API and whether it was streamed.",
            ["api", "stream"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "puter_gateway_time_to_first_token_seconds",
            "From a chat request's arrival to its first content, by API.",
            ["api"],
            buckets=_TTFT_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "puter_gateway_requests_in_flight", "HTTP requests being answered now.", registry=registry
        )
        self.upstream = Counter(
            "puter_upstream_requests",
            "Requests to Puter, by model, account and outcome (`ok` or a failure kind).",
            ["model", "account", "outcome"],
            registry=registry,
        )
        self.upstream_latency = Histogram(
            "puter_upstream_latency_seconds",
            "Successful requests to Puter, from sending to the end of the answer, by model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream_ttft = Histogram(
            "puter_upstream_time_to_first_token_seconds",
            "Successful requests to Puter, from sending to the first token, by model.",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "puter_upstream_tokens",
            "Tokens Puter reported, by model and direction (`input`, `output`).",
            ["model", "direction"],
            registry=registry,
        )
        self.cost = Counter(
            "puter_upstream_cost_usd",
            "What Puter charged, in US dollars, by model (requests whose cost Puter told).",
            ["model"],
            registry=registry,
        )
        self.cooldowns = Gauge(
            "puter_cooldowns_active",
            "Cooldowns in force at scrape time, by scope (account, model, account_model) and kind.",
            ["scope", "kind"],
            registry=registry,
        )
        self.deployment_info = Gauge(
            "puter_deployment_info",
            "Always 1: which processes the puter_deployment_* gauges cover, and over how many seconds.",
            ["covers", "window_seconds"],
            registry=registry,
        )
        self.deployment_calls = Gauge(
            "puter_deployment_calls",
            "Chat calls (each one or more requests to Puter) of every covered process in the window.",
            registry=registry,
        )
        self.deployment_requests = Gauge(
            "puter_deployment_upstream_requests",
            "Requests to Puter of every covered process in the window, by model and outcome.",
            ["model", "outcome"],
            registry=registry,
        )
        self.deployment_account_requests = Gauge(
            "puter_deployment_account_requests",
            "Requests to Puter of every covered process in the window, by account and outcome.",
            ["account", "outcome"],
            registry=registry,
        )
        self.deployment_latency = Gauge(
            "puter_deployment_upstream_latency_seconds",
            "Latency of the successful requests in the window, by model and quantile (0.5, 0.95).",
            ["model", "quantile"],
            registry=registry,
        )
        self.deployment_tokens = Gauge(
            "puter_deployment_upstream_tokens",
            "Tokens Puter reported in the window, by model and direction (`input`, `output`).",
            ["model", "direction"],
            registry=registry,
        )
        self.deployment_cost = Gauge(
            "puter_deployment_upstream_cost_usd",
            "What Puter charged in the window, in US dollars, by model.",
            ["model"],
            registry=registry,
        )

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: the hooks run on the event loop for every
        request, and `labels` checks and converts its arguments each time (a few µs)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def exchange_ended(self, exchange: Exchange) -> None:
        """Count one HTTP request (an `ExchangeHook`)."""
        api, child = exchange.api, self._child
        child(self.requests, api, route_of(exchange.path), exchange.method, str(exchange.status)).inc()
        if exchange.failure:
            child(self.failures, api, exchange.failure).inc()
        child(self.duration, api, "true" if exchange.stream else "false").observe(exchange.ms / 1000)
        if exchange.ttft_ms is not None:
            child(self.ttft, api).observe(exchange.ttft_ms / 1000)

    def attempt_ended(self, attempt: UpstreamAttempt) -> None:
        """Count one request to Puter (a `Backend.add_attempt_hook` hook)."""
        model, child = attempt.model, self._child
        outcome = "ok" if attempt.kind is None else attempt.kind.value
        child(self.upstream, model, attempt.account, outcome).inc()
        if attempt.kind is None:
            child(self.upstream_latency, model).observe(attempt.latency_ms / 1000)
            if attempt.ttft_ms is not None:
                child(self.upstream_ttft, model).observe(attempt.ttft_ms / 1000)
        if attempt.input_tokens:
            child(self.tokens, model, "input").inc(attempt.input_tokens)
        if attempt.output_tokens:
            child(self.tokens, model, "output").inc(attempt.output_tokens)
        if attempt.cost_usd:
            child(self.cost, model).inc(attempt.cost_usd)

    def set_cooldowns(self, cooldowns: list[CooldownInfo]) -> None:
        """Replace the cooldown gauge's series by the cooldowns in force now."""
        counts: dict[tuple[str, str], int] = {}
        for cooldown in cooldowns:
            key = (cooldown.scope, cooldown.kind)
            counts[key] = counts.get(key, 0) + 1
        # Cleared first: a kind whose last cooldown ended must drop out, not stay at its last count.
        self.cooldowns.clear()
        for (scope, kind), count in counts.items():
            self.cooldowns.labels(scope, kind).set(count)

    def set_deployment(self, report: UsageReport, window: float) -> None:
        """Replace the ``puter_deployment_*`` gauges by `report` (the shared attempt log over
        the last `window` seconds); cleared first, so that a model gone quiet drops out."""
        gauges = (
            self.deployment_info,
            self.deployment_requests,
            self.deployment_account_requests,
            self.deployment_latency,
            self.deployment_tokens,
            self.deployment_cost,
        )
        for gauge in gauges:
            gauge.clear()
        self.deployment_info.labels(report.covers, f"{window:g}").set(1)
        self.deployment_calls.set(report.calls)
        for model, figures in report.models.items():
            for outcome, count in _outcomes(figures.successes, figures.failures):
                self.deployment_requests.labels(model, outcome).set(count)
            for quantile, ms in (("0.5", figures.latency_p50_ms), ("0.95", figures.latency_p95_ms)):
                if ms is not None:
                    self.deployment_latency.labels(model, quantile).set(ms / 1000)
            self.deployment_tokens.labels(model, "input").set(figures.input_tokens)
            self.deployment_tokens.labels(model, "output").set(figures.output_tokens)
            self.deployment_cost.labels(model).set(figures.cost_usd)
        for account, figures in report.accounts.items():
            for outcome, count in _outcomes(figures.successes, figures.failures):
                self.deployment_account_requests.labels(account, outcome).set(count)

    def text(self) -> bytes:
        """The registry in Prometheus's text format."""
        return generate_latest(self.registry)


def _outcomes(successes: int, failures: dict[str, int]) -> list[tuple[str, int]]:
    """Requests by outcome, as the per-process counter labels them: ``ok`` or a failure kind."""
    return [("ok", successes), *sorted(failures.items())]


# A value logfmt can show bare: printable, no space, quote, equals sign or backslash.
_BARE = re.compile(r'[^\s"=\\\x00-\x1f\x7f]+')


def _shown(value: object) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    if _BARE.fullmatch(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def access_line(exchange: Exchange) -> tuple[str, dict[str, Any]]:
    """One request as a logfmt line (``key=value`` pairs, values quoted when they need it), and
    the same fields as a dict for structured log handlers.

    Never a key's secret, a token or message text: the key is named, the path has no query.
    """
    fields: dict[str, Any] = {
        "method": exchange.method,
        "path": exchange.path,
        "status": exchange.status,
        "ms": round(exchange.ms, 1),
        "api": exchange.api,
        "key": exchange.key,
        "model": exchange.model_asked,
        "answered": exchange.model_answered,
        "account": exchange.account,
        "stream": exchange.stream,
        "ttft_ms": None if exchange.ttft_ms is None else round(exchange.ttft_ms, 1),
        "tokens_in": exchange.input_tokens,
        "tokens_out": exchange.output_tokens,
        "failure": exchange.failure,
        "fallback": exchange.fallback,
    }
    # Built with one join per line: the hook runs on the event loop once per request.
    line = " ".join([f"{name}={_shown(value)}" for name, value in fields.items() if value is not None])
    return line, fields


def log_exchange(exchange: Exchange) -> None:
    """Write the request's access line (an `ExchangeHook`)."""
    if _access.isEnabledFor(logging.INFO):
        line, fields = access_line(exchange)
        _access.info("%s", line, extra={"access": fields})


class _ObserveApi:
    """/stats and /metrics answer refusals as the gateway's own routes do: ``{"error": ...}``."""

    name = "gateway"

    def error_response(self, error: GatewayError) -> Response:
        return JSONResponse({"error": error.message}, status_code=error.status, headers=error.headers())


_API = _ObserveApi()


class Observer:
    """The gateway's statistics, metrics and access log. One per `Gateway` (`observer_of`):
    created with the gateway's routes, it registers itself as an `ExchangeHook` and registers
    its attempt hook with the backend."""

    def __init__(self, gateway: Gateway, metrics: GatewayMetrics | None = None) -> None:
        self.gateway = gateway
        self.metrics = metrics or GatewayMetrics()
        gateway.backend.add_attempt_hook(self.metrics.attempt_ended)

    def __call__(self, exchange: Exchange) -> None:
        """The `ExchangeHook`: the metrics, then the access line."""
        self.metrics.exchange_ended(exchange)
        log_exchange(exchange)

    async def stats(self, request: Request, exchange: Exchange) -> Response:
        caller = await self.gateway.admit(request, exchange, None)
        if self.gateway.keys.required and not caller.admin:
            raise GatewayError(
                403, "/stats names every key and account: it needs an admin key (`keys create --admin`)"
            )
        window = DEFAULT_WINDOW
        if "window" in request.query_params:
            try:
                window = parse_window(request.query_params["window"])
            except ValueError as exc:
                raise GatewayError(400, str(exc), param="window") from exc
        report = await self.gateway.backend.usage_stats(self.gateway.clock() - window)
        keys = {
            usage.key: {"requests": usage.requests, "rate_limited": usage.rate_limited}
            for usage in await self.gateway.keys.usage(report.since)
        }
        return JSONResponse({**report.model_dump(mode="json"), "window_s": window, "keys": keys})

    async def scrape(self, request: Request, exchange: Exchange) -> Response:
        await self.gateway.admit(request, exchange, None)
        backend = self.gateway.backend
        self.metrics.set_cooldowns(await backend.active_cooldowns())
        report = await backend.usage_stats(self.gateway.clock() - METRICS_WINDOW)
        self.metrics.set_deployment(report, METRICS_WINDOW)
        return Response(self.metrics.text(), media_type=CONTENT_TYPE_LATEST)

    def routes(self) -> list[BaseRoute]:
        return routes_for(
            self.gateway,
            _API,
            [("/stats", self.stats, ["GET"]), ("/metrics", self.scrape, ["GET"])],
        )


def observer_of(gateway: Gateway) -> Observer:
    """The gateway's `Observer`, made and registered on first use (it is one of its hooks)."""
    for hook in gateway.hooks:
        if isinstance(hook, Observer):
            return hook
    observer = Observer(gateway)
    gateway.hooks.append(observer)
    return observer


def routes(gateway: Gateway) -> list[BaseRoute]:
    """``/stats`` and ``/metrics``; registers the gateway's observer."""
    return observer_of(gateway).routes()


class _InFlight:
    """Counts the HTTP requests being answered (the in-flight gauge)."""

    def __init__(self, app: ASGIApp, gauge: Gauge) -> None:
        self.app, self.gauge = app, gauge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.gauge.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gauge.dec()


def count_in_flight(app: ASGIApp, gateway: Gateway) -> ASGIApp:
    """`app`, counting its requests in flight in the gateway's metrics."""
    return _InFlight(app, observer_of(gateway).metrics.in_flight)
