"""Usage statistics: what the attempt log says about models and accounts over a window.

The router reports every upstream request it makes to its attempt hooks; one of them is the
state store's attempt log (docs/state.md), shared by every puter-mcp process that uses the
same state database. The figures here are computed from that log, not from a second one:
`Backend.usage_stats` reads the attempts that ended within the window (`attempts_since`) and
folds them with `usage_report`, a pure function like the percentile rule under it.

A front end that wants each attempt as it ends (the gateway's metrics) registers a hook with
`Backend.add_attempt_hook`; it is told an `UpstreamAttempt`, the core's record of one request
to Puter, with the account's name instead of its state id (`AttemptNames` keeps that map).

What the figures count:

- `requests`: upstream requests (attempts), successes and failures alike; a call that fails
  over from a 429 to another account counts one failed and one successful request. An attempt
  cut off by the caller (a client that hung up) or by the call's deadline ends without a
  record, so it is not counted.
- `calls`: distinct calls (a call's attempts share its request id).
- latency and time to first token: percentiles over successful requests only, since a
  refusal answered in a few milliseconds says nothing about how fast a model answers.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, Field

from puter_mcp.core.results import CooldownInfo
from puter_mcp.puter.errors import FailureKind

if TYPE_CHECKING:
    # The records and the pure functions are part of the core's face, which must stay cheap to
    # import; the parts below are the machinery's (docs/architecture.md, "Pitfalls").
    from puter_mcp.core.accounts_view import AccountsView
    from puter_mcp.routing.cooldowns import CooldownBook
    from puter_mcp.routing.state import Attempt, StateStore

__all__ = [
    "AttemptFields",
    "AttemptNames",
    "UpstreamAttempt",
    "UsageFigures",
    "UsageReport",
    "active_cooldowns",
    "attempt_hook",
    "covered_processes",
    "percentile",
    "summarize",
    "upstream_attempt",
    "usage_report",
    "usage_stats",
]


@dataclass(frozen=True, slots=True)
class UpstreamAttempt:
    """One request to Puter, as it ended (what `Backend.add_attempt_hook` hooks are told).

    Attributes:
        time: epoch seconds when the attempt ended.
        account: the account's name (never its token); the state id when no saved account
            has that id any more.
        model: the canonical id of the model asked.
        kind: the failure kind, or None for a success.
        latency_ms: from sending the request to its end (the whole stream, when streamed).
        ttft_ms: time to the first token (None when nothing was streamed, or on failure).
        input_tokens, output_tokens: as Puter reported them (None when it did not).
        cost_usd: what Puter charged (None when unknown).
        request_id: the call's id; every attempt of one call shares it.
    """

    time: float
    account: str
    model: str
    kind: FailureKind | None
    latency_ms: float
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    request_id: str = ""

    @property
    def ok(self) -> bool:
        return self.kind is None


class UsageFigures(BaseModel):
    """The figures of one group of upstream requests (a model, an account, or all of them)."""

    requests: int = Field(default=0, description="Upstream requests, successful or not.")
    successes: int = 0
    failures: dict[str, int] = Field(
        default_factory=dict, description="Failed requests by failure kind (e.g. `rate_limited`)."
    )
    latency_p50_ms: float | None = Field(
        default=None, description="Median latency of the successful requests."
    )
    latency_p95_ms: float | None = None
    ttft_p50_ms: float | None = Field(default=None, description="Median time to the first token (successes).")
    ttft_p95_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = Field(default=0.0, description="What Puter charged, summed over the requests it said.")


class UsageReport(BaseModel):
    """Usage over a window, per model and per account (`Backend.usage_stats`)."""

    since: float = Field(description="Start of the window (epoch seconds).")
    until: float = Field(description="End of the window (epoch seconds): when the report was made.")
    covers: str = Field(description="Which processes' requests the figures count.")
    calls: int = Field(default=0, description="Distinct calls (a call may make several upstream requests).")
    total: UsageFigures = Field(default_factory=UsageFigures)
    models: dict[str, UsageFigures] = Field(default_factory=dict)
    accounts: dict[str, UsageFigures] = Field(default_factory=dict)
    sandbox: bool = False


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least `fraction` of the values
    at or below it (so always one of the values). None for no values.

    >>> percentile([5.0, 1.0, 3.0, 2.0], 0.5)
    2.0
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"a percentile's fraction is in (0, 1], got {fraction}")
    return _ranked(sorted(values), fraction)


def _ranked(ordered: Sequence[float], fraction: float) -> float | None:
    """`percentile` of values already sorted."""
    if not ordered:
        return None
    # 1-based rank ceil(fraction * n), as the nearest-rank method defines it; the small
    # tolerance keeps 0.95 * 20 = 19.000000000000004 at rank 19, not 20.
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[rank - 1]


class AttemptFields(Protocol):
    """What the fold reads of an attempt: `UpstreamAttempt` and the store's own record alike
    (the store's records are folded as they come, without a copy each)."""

    @property
    def time(self) -> float: ...
    @property
    def account(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def kind(self) -> FailureKind | None: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def ttft_ms(self) -> float | None: ...
    @property
    def input_tokens(self) -> int | None: ...
    @property
    def output_tokens(self) -> int | None: ...
    @property
    def cost_usd(self) -> float | None: ...
    @property
    def request_id(self) -> str: ...


def summarize(attempts: Iterable[AttemptFields]) -> UsageFigures:
    """The figures of a group of attempts."""
    # Plain locals, one record built at the end: a day of a busy gateway is ~10^5 attempts,
    # each folded three times (total, model, account).
    requests = successes = tokens_in = tokens_out = 0
    cost = 0.0
    failures: dict[str, int] = {}
    latencies: list[float] = []
    ttfts: list[float] = []
    for attempt in attempts:
        requests += 1
        kind = attempt.kind
        if kind is None:
            successes += 1
            latencies.append(attempt.latency_ms)
            if attempt.ttft_ms is not None:
                ttfts.append(attempt.ttft_ms)
        else:
            failures[kind.value] = failures.get(kind.value, 0) + 1
        tokens_in += attempt.input_tokens or 0
        tokens_out += attempt.output_tokens or 0
        cost += attempt.cost_usd or 0.0
    latencies.sort()
    ttfts.sort()
    return UsageFigures(
        requests=requests,
        successes=successes,
        failures=dict(sorted(failures.items())),
        latency_p50_ms=_ranked(latencies, 0.5),
        latency_p95_ms=_ranked(latencies, 0.95),
        ttft_p50_ms=_ranked(ttfts, 0.5),
        ttft_p95_ms=_ranked(ttfts, 0.95),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        cost_usd=round(cost, 9),  # sums of floats: no noise past a nano-dollar
    )


def usage_report(
    attempts: Iterable[AttemptFields],
    *,
    since: float,
    until: float,
    covers: str,
    sandbox: bool = False,
    name_of: Callable[[str], str] | None = None,
) -> UsageReport:
    """Fold the attempts of a window into a report (attempts outside it are left out).

    `name_of` names an attempt's account (the store keeps state ids); by default the account is
    shown as the attempt has it.
    """
    inside = [a for a in attempts if since <= a.time <= until]
    by_model: dict[str, list[AttemptFields]] = {}
    by_account_id: dict[str, list[AttemptFields]] = {}
    for attempt in inside:
        by_model.setdefault(attempt.model, []).append(attempt)
        by_account_id.setdefault(attempt.account, []).append(attempt)
    by_account: dict[str, list[AttemptFields]] = {}
    for account, group in by_account_id.items():
        # Two ids may name one account (its uuid, and its username from before Puter told it).
        by_account.setdefault(name_of(account) if name_of else account, []).extend(group)
    return UsageReport(
        since=since,
        until=until,
        covers=covers,
        calls=len({a.request_id or id(a) for a in inside}),
        total=summarize(inside),
        models={name: summarize(group) for name, group in sorted(by_model.items())},
        accounts={name: summarize(group) for name, group in sorted(by_account.items())},
        sandbox=sandbox,
    )


def covered_processes(store_description: str) -> str:
    """Which processes a report over this store counts, in words (`StateStore.describe`)."""
    if store_description.startswith("sqlite:"):
        path = store_description.removeprefix("sqlite:")
        return f"every process using this state database ({path})"
    if store_description.startswith(("redis://", "rediss://")):
        return f"every replica sharing this Redis store ({store_description})"
    return f"this process only (state kept in {store_description}, shared with no other process)"


class AttemptNames:
    """Maps an attempt's account state id to the account's name.

    The map is built from the accounts file and the ``PUTER_AUTH_TOKEN`` account, and built
    again only when an id is not in it (an account signed in since), so that a hook told of
    every attempt costs a dictionary look-up.
    """

    def __init__(self, accounts: AccountsView) -> None:
        self._accounts = accounts
        self._names: dict[str, str] = {}

    def _build(self) -> dict[str, str]:
        from puter_mcp.accounts.identity import ENV_ACCOUNT, env_account_id, every_account_id

        names: dict[str, str] = {}
        saved, _default, _problem = self._accounts.saved()
        for account in saved:
            for state_id in every_account_id(account):
                names.setdefault(state_id, account.name)
        if self._accounts.env_token:
            names[env_account_id(self._accounts.env_token)] = ENV_ACCOUNT
        return names

    def __call__(self, state_id: str) -> str:
        name = self._names.get(state_id)
        if name is None:
            self._names = self._build()
            # An id no saved account has any more (signed out since) is shown as it is.
            name = self._names.get(state_id, state_id)
        return name


def upstream_attempt(attempt: Attempt, name_of: Callable[[str], str]) -> UpstreamAttempt:
    """The core's record of a routing attempt, the account named."""
    return UpstreamAttempt(
        time=attempt.time,
        account=name_of(attempt.account),
        model=attempt.model,
        kind=attempt.kind,
        latency_ms=attempt.latency_ms,
        ttft_ms=attempt.ttft_ms,
        input_tokens=attempt.input_tokens,
        output_tokens=attempt.output_tokens,
        cost_usd=attempt.cost_usd,
        request_id=attempt.request_id,
    )


def attempt_hook(hook: Callable[[UpstreamAttempt], None], names: AttemptNames) -> Callable[[Attempt], None]:
    """A router hook that tells `hook` of each attempt as an `UpstreamAttempt`."""

    def tell(attempt: Attempt) -> None:
        hook(upstream_attempt(attempt, names))

    return tell


async def usage_stats(
    store: StateStore, name_of: Callable[[str], str], *, since: float, until: float, sandbox: bool
) -> UsageReport:
    """The report over the store's attempts that ended from `since` to `until`.

    The attempt log keeps `ATTEMPTS_KEPT` seconds: a window reaching further back starts where
    the log does, and the report's `since` says so.
    """
    import anyio.to_thread

    from puter_mcp.core.stores import ATTEMPTS_KEPT

    since = max(since, until - ATTEMPTS_KEPT)
    attempts = await store.attempts_since(since)
    # A sandbox's state lives in a fresh private directory: no other process shares it.
    covers = "this sandbox only (its state is fresh and private)" if sandbox else None
    fold = functools.partial(
        usage_report,
        attempts,
        since=since,
        until=until,
        covers=covers or covered_processes(store.describe()),
        sandbox=sandbox,
        name_of=name_of,
    )
    # Folding a busy day (~10^5 attempts) takes a few hundred milliseconds: not on the event
    # loop, where the gateway's requests wait.
    return await anyio.to_thread.run_sync(fold)


async def active_cooldowns(book: CooldownBook, name_of: Callable[[str], str]) -> list[CooldownInfo]:
    """The cooldowns in force now, accounts named, without asking Puter anything (unlike the
    accounts overview, which checks each account): cheap enough for every metrics scrape."""
    return [
        CooldownInfo(
            scope=cooldown.scope.value,
            account=name_of(cooldown.account) if cooldown.account else None,
            model=cooldown.model or None,
            kind=cooldown.kind.value,
            until=None if cooldown.until == math.inf else cooldown.until,
            reason=cooldown.reason,
        )
        for cooldown in await book.snapshot()
    ]
