"""Everything the emulator remembers: accounts, credits, rate windows, faults, the request log.

`EmulatorState` is plain data plus the rules Puter applies to it (tier limits, the credit
gate, charging); it does no I/O. Time comes from an injected clock and randomness from a
seeded generator, so a test can fill a rate window and then step past it without sleeping.
The HTTP app reads and changes one state; a test (possibly on another thread, when the server
runs in `EmulatorThread`) reads and scripts the same object, hence the lock.
"""

from __future__ import annotations

import enum
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .catalogue import Catalogue, ModelSpec, default_catalogue
from .faults import Fault, FaultRule
from .tokens import make_token

__all__ = [
    "DEFAULT_CREDITS_USD",
    "MICROCENTS_PER_USD",
    "RATE_WINDOW_SECONDS",
    "TIER_LIMITS",
    "Account",
    "Admission",
    "EmulatorState",
    "RequestRecord",
    "Tier",
    "TierLimits",
    "UsageLine",
]

MICROCENTS_PER_USD = 100_000_000
"""Puter's metering unit: dollars = microcents / 100,000,000."""

RATE_WINDOW_SECONDS = 10.0

_TOKEN_ISSUED_AT = 1_767_225_600
"""A fixed `iat` (2026-01-01), so that a seeded state makes the same tokens on every run."""


class Tier(enum.StrEnum):
    """Puter's account tiers, as far as AI limits go (docs/puter-protocol.md, "Limits per tier")."""

    PAID = "paid"
    FREE = "free"
    TEMP = "temp"

    @classmethod
    def parse(cls, value: str | Tier) -> Tier:
        """Accept the member, its value, or the long word `temporary`."""
        if isinstance(value, Tier):
            return value
        text = value.strip().lower()
        return cls.TEMP if text == "temporary" else cls(text)


@dataclass(frozen=True)
class TierLimits:
    requests_per_window: int
    """Requests per rolling `RATE_WINDOW_SECONDS`, counted separately per driver method."""
    in_flight: int
    """Requests of one driver method running at the same time."""


TIER_LIMITS: dict[Tier, TierLimits] = {
    Tier.PAID: TierLimits(200, 20),
    Tier.FREE: TierLimits(30, 3),
    Tier.TEMP: TierLimits(20, 2),
}

DEFAULT_CREDITS_USD: dict[Tier, float] = {Tier.PAID: 10.0, Tier.FREE: 0.50, Tier.TEMP: 0.25}
"""Monthly allowances: Puter's for free ($0.50) and temporary ($0.25); an example for paid."""


@dataclass
class UsageLine:
    """One usage type of `/metering/usage` (`units`, `cost` in microcents, `count`)."""

    units: int = 0
    cost: int = 0
    count: int = 0


@dataclass
class Account:
    """A Puter account as the emulator knows it. Amounts are microcents."""

    username: str
    token: str
    tier: Tier
    uuid: str
    email: str | None
    allowance_microcents: int
    """The month's allowance (`allowanceInfo.monthUsageAllowance`)."""
    credits_microcents: int
    """What is left; a call is refused with 402 once this is <= 0."""
    usage: dict[str, UsageLine] = field(default_factory=dict)
    email_confirmed: bool = True
    """False: every driver call is refused with 403 `email_confirmation_required`."""

    @property
    def is_temp(self) -> bool:
        return self.tier is Tier.TEMP

    @property
    def credits_usd(self) -> float:
        return self.credits_microcents / MICROCENTS_PER_USD

    @property
    def used_microcents(self) -> int:
        return sum(line.cost for line in self.usage.values())


@dataclass
class RequestRecord:
    """One request the emulator received (control routes under `/__emulator/` excepted)."""

    time: float
    """The state's clock when the request arrived."""
    method: str
    path: str
    username: str | None = None
    """The account whose token authenticated the request, if any."""
    driver_method: str | None = None
    """For `/drivers/call`: the driver method (`complete`, `models`, ...)."""
    model: str | None = None
    """The model name as asked."""
    model_used: str | None = None
    """The canonical id of the model that answered (`metadata.providerUsed`)."""
    stream: bool | None = None
    status: int | None = None
    """The HTTP status sent; None while pending, or when the connection was dropped."""
    fault: Fault | None = None
    messages: list[dict[str, Any]] | None = None
    """For `complete`: the messages as sent (what tests read to see what reached Puter)."""
    tools: list[dict[str, Any]] | None = None
    """For `complete`: the tools as sent."""
    args: dict[str, Any] | None = None
    """For `complete`: every argument as sent (reasoning effort, max_tokens, stop...)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "username": self.username,
            "driver_method": self.driver_method,
            "model": self.model,
            "model_used": self.model_used,
            "stream": self.stream,
            "status": self.status,
            "fault": self.fault.value if self.fault else None,
            "messages": self.messages,
            "tools": self.tools,
            "args": self.args,
        }


class Admission(enum.Enum):
    """What the rate limiter decided for one request."""

    ADMITTED = "admitted"
    WINDOW_FULL = "window_full"
    TOO_MANY_IN_FLIGHT = "too_many_in_flight"


class EmulatorState:
    """The emulator's whole state; see the module docstring.

    Args:
        clock: seconds, monotonic; drives rate windows and request times.
        seed: seeds the generator behind tokens, uuids and usernames (None: unpredictable).
        catalogue: the models served (default: `default_catalogue()`).
        stream_delay: seconds between two NDJSON lines of a stream.
        signup_captcha_required: refuse `POST /signup` as puter.com does.
        authme_account: username the authme redirect signs in (None: the first account).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        catalogue: Catalogue | None = None,
        stream_delay: float = 0.0,
        signup_captcha_required: bool = False,
        authme_account: str | None = None,
    ) -> None:
        self.clock = clock
        self.rng = random.Random(seed)
        self.catalogue = catalogue if catalogue is not None else default_catalogue()
        self.stream_delay = stream_delay
        self.signup_captcha_required = signup_captcha_required
        self.authme_account = authme_account
        self.accounts: dict[str, Account] = {}
        self.faults: list[FaultRule] = []
        self.requests: list[RequestRecord] = []
        self._by_token: dict[str, Account] = {}
        self.revoked_tokens: set[str] = set()
        """Sessions signed out elsewhere: answered 401 `reauth_required`, `session_revoked`."""
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._in_flight: dict[tuple[str, str], int] = {}
        self._serial = 0
        self._lock = threading.RLock()

    # --- accounts -------------------------------------------------------------------

    def add_account(
        self,
        username: str,
        *,
        tier: Tier | str = Tier.FREE,
        credits_usd: float | None = None,
        token: str | None = None,
        email: str | None = None,
    ) -> Account:
        """Create an account; credits default to the tier's allowance. Returns it (with its token)."""
        tier = Tier.parse(tier)
        with self._lock:
            if username in self.accounts:
                raise ValueError(f"account {username!r} already exists")
            user_uuid = self._uuid()
            if token is None:
                token = make_token(self.rng, user_uuid=user_uuid, issued_at=_TOKEN_ISSUED_AT)
            if token in self._by_token:
                raise ValueError("that token already belongs to another account")
            usd = DEFAULT_CREDITS_USD[tier] if credits_usd is None else credits_usd
            microcents = round(usd * MICROCENTS_PER_USD)
            if email is None and tier is not Tier.TEMP:
                email = f"{username}@example.com"
            account = Account(
                username=username,
                token=token,
                tier=tier,
                uuid=user_uuid,
                email=email,
                allowance_microcents=microcents,
                credits_microcents=microcents,
            )
            self.accounts[username] = account
            self._by_token[token] = account
            return account

    def seed_default_accounts(
        self, *, paid_credits_usd: float = DEFAULT_CREDITS_USD[Tier.PAID]
    ) -> list[Account]:
        """Add `paid_user`, `free_user` and `temp_user` (in that order) and return them."""
        return [
            self.add_account("paid_user", tier=Tier.PAID, credits_usd=paid_credits_usd),
            self.add_account("free_user", tier=Tier.FREE),
            self.add_account("temp_user", tier=Tier.TEMP),
        ]

    def create_temp_account(self) -> Account:
        """What `POST /signup {"is_temp": true}` does: a fresh temporary account."""
        with self._lock:
            while True:
                username = f"temp_{self.rng.getrandbits(40):010x}"
                if username not in self.accounts:
                    return self.add_account(username, tier=Tier.TEMP)

    def revoke_session(self, username: str, *, revoked: bool = True) -> None:
        """Sign the account's session out (as signing out on another device does), or back in."""
        with self._lock:
            token = self.accounts[username].token
            if revoked:
                self.revoked_tokens.add(token)
            else:
                self.revoked_tokens.discard(token)

    def account_by_token(self, token: str) -> Account | None:
        with self._lock:
            return self._by_token.get(token)

    def set_credits(self, username: str, usd: float) -> None:
        """Set what is left on an account (0 or less: every call gets 402)."""
        with self._lock:
            self.accounts[username].credits_microcents = round(usd * MICROCENTS_PER_USD)

    def authme_target(self) -> Account | None:
        """The account the GUI's authme redirect hands out."""
        with self._lock:
            if self.authme_account is not None:
                return self.accounts.get(self.authme_account)
            return next(iter(self.accounts.values()), None)

    # --- credits --------------------------------------------------------------------

    def affordable_output_tokens(self, account: Account, model: ModelSpec) -> int | None:
        """How many output tokens the balance pays for (None: no limit, the model costs nothing).

        Puter silently lowers `max_tokens` to this before calling the model.
        """
        if model.is_test_model or model.output_cost <= 0:
            return None
        per_token = model.cost_microcents(0, 1)[1]
        with self._lock:
            return max(0, account.credits_microcents) // per_token

    def charge(self, account: Account, model: ModelSpec, input_tokens: int, output_tokens: int) -> int | None:
        """Debit one call and record it in the metering usage; returns microcents (None: test model).

        Free models are recorded at cost 0; Puter's test models are never charged.
        """
        if model.is_test_model:
            return None
        spec = model.provider_spec
        input_cost, output_cost = model.cost_microcents(input_tokens, output_tokens)
        with self._lock:
            for key, units, cost in (
                (spec.input_cost_key, input_tokens, input_cost),
                (spec.output_cost_key, output_tokens, output_cost),
            ):
                usage_type = f"{model.provider}:{model.usage_model_name}:{key}"
                line = account.usage.setdefault(usage_type, UsageLine())
                line.units += units
                line.cost += cost
                line.count += 1
            account.credits_microcents -= input_cost + output_cost
        return input_cost + output_cost

    # --- rate limits ----------------------------------------------------------------

    def admit(self, account: Account, driver_method: str) -> Admission:
        """Count one request in the account's window and in-flight set, unless either is full.

        A refused request spends no slot (docs/puter-protocol.md, "Limits per tier");
        an admitted one must be `release`d.
        """
        limits = TIER_LIMITS[account.tier]
        key = (account.username, driver_method)
        now = self.clock()
        with self._lock:
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - RATE_WINDOW_SECONDS:
                window.popleft()
            if len(window) >= limits.requests_per_window:
                return Admission.WINDOW_FULL
            if self._in_flight.get(key, 0) >= limits.in_flight:
                return Admission.TOO_MANY_IN_FLIGHT
            window.append(now)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            return Admission.ADMITTED

    def refund(self, account: Account, driver_method: str) -> None:
        """Give back the window slot of an admitted request that ends up refused with 429.

        Puter does not count a request it refuses with 429; a scripted 429 must not either,
        or a long run of scripted refusals would fill the window for real.
        """
        key = (account.username, driver_method)
        with self._lock:
            window = self._windows.get(key)
            if window:
                window.pop()

    def release(self, account: Account, driver_method: str) -> None:
        key = (account.username, driver_method)
        with self._lock:
            self._in_flight[key] = max(0, self._in_flight.get(key, 0) - 1)

    def in_flight(self, username: str, driver_method: str = "complete") -> int:
        with self._lock:
            return self._in_flight.get((username, driver_method), 0)

    def window_count(self, username: str, driver_method: str = "complete") -> int:
        """Requests counted in the current rolling window."""
        now = self.clock()
        with self._lock:
            window = self._windows.get((username, driver_method), deque())
            return sum(1 for t in window if t > now - RATE_WINDOW_SECONDS)

    # --- faults ---------------------------------------------------------------------

    def add_fault(
        self,
        fault: Fault | str,
        *,
        model: str | None = None,
        account: str | None = None,
        times: int | None = 1,
        **params: Any,
    ) -> FaultRule:
        """Script `fault` for the next `times` (None: all) complete requests matching model/account."""
        rule = FaultRule(fault=Fault(fault), model=model, account=account, times=times, params=dict(params))
        with self._lock:
            self.faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def take_fault(self, *, model_keys: frozenset[str], username: str, stream: bool) -> FaultRule | None:
        """The first live rule matching the request, with one use spent; exhausted rules are dropped."""
        with self._lock:
            for rule in self.faults:
                if rule.matches(model_keys=model_keys, username=username, stream=stream):
                    rule.hits += 1
                    if rule.exhausted:
                        self.faults.remove(rule)
                    return rule
            return None

    # --- request log and ids --------------------------------------------------------

    def log_request(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def next_id(self, prefix: str) -> str:
        """Deterministic ids for messages and tool calls (`msg_emu_000001`, ...)."""
        with self._lock:
            self._serial += 1
            return f"{prefix}_emu_{self._serial:06d}"

    def _uuid(self) -> str:
        value = f"{self.rng.getrandbits(128):032x}"
        return f"{value[:8]}-{value[8:12]}-4{value[13:16]}-a{value[17:20]}-{value[20:]}"
