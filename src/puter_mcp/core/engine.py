"""The backend's machinery: built on the first call, so that a server starts fast.

`puter_mcp.core.backend.Backend` is the facade every front end holds; it creates an `Engine` the first
time it is asked to do something. Importing this module pulls in the Puter client (with its TLS
set-up), the routing state (SQLite) and the pydantic wire models: together most of a server's
start-up time, which a client waiting for `tools/list` should not pay.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TypeVar

import anyio

from puter_mcp.accounts.secrets import mask_token, redact
from puter_mcp.accounts.store import Account, AccountsSnapshot, AccountsStore
from puter_mcp.core.calls import ChatCall, ModelsQuery
from puter_mcp.core.errors import BackendError
from puter_mcp.core.results import (
    AccountsOverview,
    AccountStatus,
    AttemptRecord,
    AutoInfo,
    ChatOutcome,
    CooldownInfo,
    Credits,
    ModelRecord,
    ModelsPage,
    StreamProgress,
    UsageInfo,
    VirtualModelRecord,
)
from puter_mcp.files import ensure_private_dir, write_private_atomic
from puter_mcp.logs import register_secret
from puter_mcp.puter.catalogue import Catalogue, ModelInfo
from puter_mcp.puter.client import PuterClient, Timeouts, WhoAmI
from puter_mcp.puter.errors import FailureKind, PuterError, account_state
from puter_mcp.puter.wire import ChatAccumulator, ChatMessage, ChatRequest, ChatResult, TextDelta
from puter_mcp.routing import chains
from puter_mcp.routing.cooldowns import CooldownBook, CooldownPolicy, Scope
from puter_mcp.routing.pacing import Pacer, Tier, limits_for
from puter_mcp.routing.router import (
    NOT_FAILURES,
    SIGN_IN_HINT,
    AccountRef,
    AttemptLog,
    Router,
    RoutingFailed,
)
from puter_mcp.routing.state import StateStore, open_state_store
from puter_mcp.settings import Paths, Settings

__all__ = ["Engine", "build_engine", "puter_client"]

logger = logging.getLogger(__name__)

# How long the first call of a process waits for an account's tier from /whoami (once per
# account). Puter answers it in well under a second; past this the call goes on at the cautious
# tier rather than making its caller wait on a slow lookup.
_TIER_WAIT = 2.0
T = TypeVar("T")

_ENV_ACCOUNT = "env"
"""The name of the ``PUTER_AUTH_TOKEN`` account (also its key in ``[account_tiers]``)."""
_ATTEMPTS_KEPT = 30 * 86400.0
_EXPIRED_COOLDOWNS_KEPT = 86400.0  # long enough to remember a rate-limit escalation
_EMPTY_CATALOGUE_KEPT = 60.0  # seconds an empty model list is trusted


def puter_client(settings: Settings) -> PuterClient:
    """The Puter client the settings describe (origins and timeouts)."""
    return PuterClient(
        settings.api_origin,
        gui_origin=settings.gui_origin,
        timeouts=Timeouts(**settings.timeouts.model_dump()),
    )


def build_engine(
    settings: Settings,
    paths: Paths,
    *,
    client: PuterClient | None = None,
    accounts: AccountsStore | None = None,
    store: StateStore | None = None,
    env_token: str | None = None,
    sandbox: bool = False,
    on_warning: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> Engine:
    """Build the engine from settings, with any part given ready-made (tests inject them)."""
    try:
        # First: a mistake in the user's chains must stop us before anything is opened.
        user_chains = chains.parse_user_chains(settings.chains, source=str(paths.config_file))
    except chains.ChainConfigError as exc:
        raise BackendError(str(exc)) from exc
    if store is None:
        store = _open_store(settings, paths, on_warning, clock)
    return Engine(
        settings,
        paths,
        client=client or puter_client(settings),
        accounts=accounts or AccountsStore(paths.accounts_file),
        store=store,
        virtual_models=chains.merge_chains(user_chains),
        env_token=env_token,
        sandbox=sandbox,
        clock=clock,
    )


def _open_store(
    settings: Settings, paths: Paths, on_warning: Callable[[str], None] | None, clock: Callable[[], float]
) -> StateStore:
    """The shared state, keyed by the Puter this engine talks to (docs/state.md)."""
    store = open_state_store(
        paths.state_db, origin=settings.api_origin, on_warning=on_warning or logger.warning
    )
    # Attempt records are for status and benchmarks, not an archive: keep a month.
    store.prune(now=clock(), attempts_max_age=_ATTEMPTS_KEPT, cooldowns_max_age=_EXPIRED_COOLDOWNS_KEPT)
    return store


@dataclass(frozen=True)
class _Timed:
    """A chat result with the time its first token took, for the attempt records."""

    result: ChatResult
    ttft_ms: float | None


def _account_id(account: Account) -> str:
    return account.uuid or f"user:{account.username}"


def _env_account_id(token: str) -> str:
    # A digest, never the token: the id is stored in the shared state database.
    return "env:" + hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass
class _Flight:
    done: anyio.Event
    value: object = None
    error: PuterError | None = None


class _SharedChecks:
    """Concurrent callers asking Puter the same question about an account share one request
    (a burst of 402s on one account reads ``/metering/usage`` once, not once per call)."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, str], _Flight] = {}

    async def run(self, key: tuple[str, str], ask: Callable[[], Awaitable[T]]) -> T:
        flight = self._running.get(key)
        if flight is None:
            flight = self._running[key] = _Flight(anyio.Event())
            try:
                flight.value = await ask()
            except PuterError as exc:
                flight.error = exc
                raise
            finally:
                if flight.error is None and flight.value is None:
                    flight.error = PuterError(FailureKind.TRANSPORT, "the check was cut off")
                del self._running[key]
                flight.done.set()
        else:
            await flight.done.wait()
            if flight.error is not None:
                raise PuterError(
                    flight.error.kind,
                    flight.error.message,
                    status=flight.error.status,
                    code=flight.error.code,
                )
        return flight.value  # type: ignore[return-value]


@dataclass
class _CatalogueCache:
    catalogue: Catalogue
    fetched_at: float
    stale: bool = False


class Engine:
    """Everything behind the `Backend` facade: the Puter client, accounts, routing, catalogue."""

    def __init__(
        self,
        settings: Settings,
        paths: Paths,
        *,
        client: PuterClient,
        accounts: AccountsStore,
        store: StateStore,
        virtual_models: Mapping[str, chains.VirtualModel] = chains.BUILTIN_CHAINS,
        env_token: str | None = None,
        sandbox: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.client = client
        self.accounts = accounts
        self.store = store
        self.sandbox = sandbox
        self._env_token = env_token or None
        register_secret(self._env_token)
        self._clock = clock
        self.chains = dict(virtual_models)  # the built-in chains merged with the user's
        self.book = CooldownBook(store, policy=_policy(settings), clock=clock)
        self.pacer = Pacer(store, clock=clock)
        self.router = Router(
            book=self.book,
            pacer=self.pacer,
            store=store,
            strategy=settings.routing.strategy,
            max_attempts=settings.routing.max_attempts,
            deadline=settings.routing.deadline,
            max_wait=settings.routing.max_wait,
            clock=clock,
        )
        self._catalogue: _CatalogueCache | None = None
        self._catalogue_lock = anyio.Lock()
        self._tiers: dict[str, Tier] = {}  # learned from /whoami, by account id
        self._tier_asked: set[str] = set()  # accounts whose tier /whoami was asked for once
        self._unknown_tiers: set[str] = set()  # routable accounts paced at the cautious tier
        self._checks = _SharedChecks()
        self._accounts_cache: tuple[tuple[int, int, int] | None, AccountsSnapshot] | None = None
        self._routable: (
            tuple[list[Account], str | None, tuple[tuple[str, Tier], ...], list[AccountRef]] | None
        ) = None

    async def aclose(self) -> None:
        await self.client.aclose()
        self.store.close()

    # -- accounts --------------------------------------------------------------------------

    def _saved_accounts(self) -> tuple[list[Account], str | None, str | None]:
        # Read the file again only when it changed (another process may sign in or out at any
        # time); a stat per call is much cheaper than parsing and validating it.
        try:
            info = self.accounts.path.stat()
            version: tuple[int, int, int] | None = (info.st_mtime_ns, info.st_size, info.st_ino)
        except OSError:
            version = None
        cached = self._accounts_cache
        # No file (version None) is a state like any other: it lasts until a file appears.
        if cached is not None and cached[0] == version:
            snapshot = cached[1]
        else:
            snapshot = self.accounts.load()
            self._accounts_cache = (version, snapshot) if snapshot.problem is None else None
            for account in snapshot.accounts:
                register_secret(account.token)  # whatever happens next, no log line shows it
        return snapshot.accounts, snapshot.default, snapshot.problem

    def routable_accounts(self) -> list[AccountRef]:
        """The accounts a request may use: the environment's token first, then saved ones.

        Worked out again only when the accounts file or a learned tier changed: this runs on
        every call.
        """
        saved, default, _problem = self._saved_accounts()
        tiers = tuple(self._tiers.items())
        cached = self._routable
        if cached is None or cached[0] is not saved or cached[1:3] != (default, tiers):
            cached = self._routable = (saved, default, tiers, self._routable_accounts(saved, default))
        return list(cached[3])

    def _routable_accounts(self, saved: list[Account], default: str | None) -> list[AccountRef]:
        refs: list[AccountRef] = []
        self._unknown_tiers = set()
        if self._env_token:
            account_id = _env_account_id(self._env_token)
            refs.append(
                AccountRef(
                    account_id,
                    _ENV_ACCOUNT,
                    self._env_token,
                    limits_for(
                        env_tier := self._tier_of(account_id, self.settings.account_tiers.get(_ENV_ACCOUNT))
                    ),
                    env_tier,
                )
            )
        ordered = sorted(saved, key=lambda account: account.name != default)  # default first
        for account in ordered:
            if not account.enabled:
                continue
            account_id = _account_id(account)
            tier = self._known_tier(account)
            refs.append(
                AccountRef(
                    account_id,
                    account.name,
                    account.token.get_secret_value(),
                    limits_for(known := self._tier_of(account_id, tier)),
                    known,
                )
            )
        return refs

    def _known_tier(self, account: Account) -> str | None:
        """The tier the user set (config, then the account's override), else what sign-in learned."""
        return self.settings.account_tiers.get(account.name) or account.effective_tier

    def _tier_of(self, account_id: str, tier: str | None) -> Tier:
        if tier in ("paid", "free", "temp"):
            return Tier(tier)
        learned = self._tiers.get(account_id)
        if learned is None:
            self._unknown_tiers.add(account_id)
            return Tier.UNKNOWN
        return learned

    # -- models ----------------------------------------------------------------------------

    async def catalogue(self) -> Catalogue:
        """The model catalogue: memory, then the disk cache, then Puter (stale-while-revalidate)."""
        return (await self._catalogue_entry()).catalogue

    def _fresh(self, entry: _CatalogueCache | None, now: float) -> bool:
        if entry is None:
            return False
        ttl = self.settings.models_cache_ttl
        if not len(entry.catalogue):
            # An empty list is more likely a Puter being set up (or a hiccup) than the truth
            # for hours: look again soon.
            ttl = min(ttl, _EMPTY_CATALOGUE_KEPT)
        return now - entry.fetched_at < ttl

    async def _catalogue_entry(self) -> _CatalogueCache:
        now = self._clock()
        cached = self._catalogue
        if cached and self._fresh(cached, now) and not cached.stale:
            return cached
        async with self._catalogue_lock:
            cached = self._catalogue
            if cached and self._fresh(cached, now) and not cached.stale:
                return cached
            if cached is None:
                cached = self._read_disk_catalogue()
                if cached and self._fresh(cached, now):
                    self._catalogue = cached
                    return cached
            accounts = self.routable_accounts()
            try:
                # Signed in, the chat driver also names the models the list leaves out.
                catalogue = await self.client.models(token=accounts[0].token if accounts else None)
            except PuterError as exc:
                if cached is not None:
                    logger.warning(
                        "could not refresh the model catalogue (%s); using the cached one", exc.message
                    )
                    cached.stale = True
                    self._catalogue = cached
                    return cached
                raise BackendError(
                    f"cannot reach Puter to list its models ({exc.message}) and nothing is cached yet. "
                    f"Check your connection and {self.settings.api_origin}, then try again."
                ) from exc
            entry = _CatalogueCache(catalogue, self._clock())
            self._catalogue = entry
            self._write_disk_catalogue(entry)
            return entry

    def _read_disk_catalogue(self) -> _CatalogueCache | None:
        path = self.paths.models_cache
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("api_origin") != self.settings.api_origin:
                return None
            return _CatalogueCache(Catalogue.from_json(raw["catalogue"]), float(raw["fetched_at"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring the unreadable model cache %s (%s); it will be rebuilt", path, exc)
            return None

    def _write_disk_catalogue(self, entry: _CatalogueCache) -> None:
        path = self.paths.models_cache
        payload = {
            "api_origin": self.settings.api_origin,
            "fetched_at": entry.fetched_at,
            "catalogue": entry.catalogue.to_json(),
        }
        try:
            ensure_private_dir(path.parent)
            write_private_atomic(path, json.dumps(payload).encode("utf-8"))
        except OSError as exc:
            logger.warning("could not write the model cache %s: %s", path, exc)

    async def list_models(self, query: ModelsQuery) -> ModelsPage:
        entry = await self._catalogue_entry()
        catalogue = entry.catalogue
        if query.virtual:
            return ModelsPage(
                total=len(self.chains),
                offset=0,
                limit=query.limit,
                virtual_models=self.virtual_models(catalogue),
                stale=entry.stale,
            )
        found = catalogue.search(
            query.query,
            provider=query.provider,
            tool_call=query.tool_calling,
            image_input=query.image_input,
            free=query.free,
        )
        page = found[query.offset : query.offset + query.limit]
        return ModelsPage(
            total=len(found),
            offset=query.offset,
            limit=query.limit,
            models=[_model_record(model) for model in page],
            stale=entry.stale,
        )

    def virtual_models(self, catalogue: Catalogue) -> list[VirtualModelRecord]:
        records = []
        every = self.chains
        resolved_all = chains.resolve_all(
            catalogue, chains=every, fallback_to_free=self.settings.fallback_to_free
        )
        for name, chain in every.items():
            resolved = resolved_all[name]
            records.append(
                VirtualModelRecord(
                    name=name,
                    description=chain.description,
                    members=[model.id for model in resolved.models],
                    skipped=list(resolved.skipped),
                    free_fallback=chain.free_fallback and self.settings.fallback_to_free,
                )
            )
        return records

    # -- chat ------------------------------------------------------------------------------

    async def chat(
        self, call: ChatCall, on_progress: Callable[[StreamProgress], None] | None = None
    ) -> ChatOutcome:
        """Answer a chat call, falling back over models and rotating accounts as needed."""
        accounts = self.routable_accounts()
        if not accounts:
            _saved, _default, problem = self._saved_accounts()
            hint = f" ({problem})" if problem else ""
            raise BackendError(f"not signed in: {SIGN_IN_HINT}{hint}", kind=FailureKind.AUTH)
        if await self._learn_tiers(accounts):
            accounts = self.routable_accounts()
        catalogue = await self.catalogue()
        requested = call.model or self.settings.default_model
        auto: AutoInfo | None = None
        target = requested
        fallback_to_free = self.settings.fallback_to_free if call.fallback is None else call.fallback
        every = self.chains
        try:
            if requested.casefold() == chains.AUTO:
                choice, resolved = chains.resolve_auto(
                    call.last_user_message(), catalogue, chains=every, fallback_to_free=fallback_to_free
                )
                auto = AutoInfo(category=choice.category, chain=choice.chain, reason=choice.reason)
                target = choice.chain
                if call.reasoning_effort is None and choice.reasoning_effort:
                    call = call.model_copy(update={"reasoning_effort": choice.reasoning_effort})
            else:
                resolved = chains.resolve(
                    target,
                    catalogue,
                    chains=every,
                    fallback_to_free=fallback_to_free,
                    closest=catalogue.closest,
                )
        except chains.UnknownModelError as exc:
            closest = f"; closest: {', '.join(exc.closest)}" if exc.closest else ""
            raise BackendError(
                f"model {requested!r} not found{closest}. `puter-models` lists the available models.",
                kind=FailureKind.MODEL_UNKNOWN,
            ) from exc
        if not resolved.models:
            raise BackendError(
                f"none of the models of {target!r} is in Puter's catalogue today"
                + (f" (skipped: {', '.join(resolved.skipped)})" if resolved.skipped else "")
                + ". `puter-models` lists what is available.",
                kind=FailureKind.MODEL_UNKNOWN,
            )
        model_ids = [model.id for model in resolved.models]
        request_id = uuid.uuid4().hex[:12]
        attempts = 0
        last_failure = ""
        # The text of the attempt in progress: when the call's deadline cuts it, the router
        # gets no error to carry it, and it must not be lost.
        received: list[str] = []

        async def send(model: str, account: AccountRef) -> _Timed:
            nonlocal attempts, last_failure
            attempts += 1
            received.clear()
            if on_progress:
                on_progress(StreamProgress(model=model, attempt=attempts, previous_failure=last_failure))
            try:
                return await self._stream_one(call, model, account, attempts, on_progress, received)
            except PuterError as exc:
                last_failure = exc.kind.value
                raise

        try:
            routed = await self.router.route(
                model_ids,
                accounts,
                send,
                check_credit=self._has_credit,
                check_account=self._account_refusal,
                replay_after_output=True,
                subscriber_only={model.id for model in resolved.models if model.subscriber_only},
                on_success=lambda timed: {
                    "ttft_ms": timed.ttft_ms,
                    "input_tokens": timed.result.usage.input_tokens,
                    "output_tokens": timed.result.usage.output_tokens,
                    "cost_usd": timed.result.cost_usd,
                },
                request_id=request_id,
            )
        except RoutingFailed as failure:
            if not failure.partial_text and received:
                failure.partial_text = "".join(received)
            raise BackendError(
                self._explain_failure(requested, failure, accounts),
                kind=failure.kind,
                partial_text=failure.partial_text,
            ) from failure
        result = routed.value.result
        answered = result.model or routed.model
        first = resolved.models[0]
        fallback = _fallback_note(
            requested,
            resolved.chain,
            first,
            routed.model,
            answered,
            routed.attempts,
            catalogue,
            passed_over=routed.passed_over,
        )
        return ChatOutcome(
            text=result.text,
            model_requested=requested,
            model=answered,
            chain=resolved.chain,
            auto=auto,
            account=routed.account.name,
            finish_reason=result.finish_reason,
            usage=UsageInfo(
                input_tokens=result.usage.input_tokens,
                output_tokens=result.usage.output_tokens,
                total_tokens=result.usage.total_tokens,
            ),
            cost_usd=result.cost_usd,
            reasoning=result.reasoning,
            fallback=fallback,
            attempts=[
                AttemptRecord(
                    model=a.model, account=a.account, outcome=a.outcome, ms=round(a.ms, 1), message=a.message
                )
                for a in routed.attempts
            ],
            waited_s=round(routed.waited_s, 3),
            sandbox=self.sandbox,
        )

    async def _stream_one(
        self,
        call: ChatCall,
        model: str,
        account: AccountRef,
        attempt: int,
        on_progress: Callable[[StreamProgress], None] | None,
        received: list[str] | None = None,
    ) -> _Timed:
        request = ChatRequest(
            messages=[ChatMessage(role=turn.role, content=turn.content) for turn in call.messages],
            model=model,
            temperature=call.temperature,
            max_tokens=call.max_tokens,
            reasoning_effort=call.reasoning_effort,
        )
        started = time.monotonic()
        if not call.stream:
            result = await self.client.chat(request, token=account.token)
            if on_progress:
                on_progress(StreamProgress(model, result.usage.output_tokens, attempt, result.text))
            return _Timed(result, (time.monotonic() - started) * 1000)
        accumulator = ChatAccumulator(max_tokens=request.max_tokens)
        ttft: float | None = None
        tokens = 0
        try:
            # `aclosing`: if the consumer fails (a progress callback writing to a closed pipe),
            # the response is released now, not whenever the generator is collected.
            async with aclosing(self.client.chat_stream(request, token=account.token)) as events:
                async for event in events:
                    accumulator.feed(event)
                    if isinstance(event, TextDelta):
                        if received is not None:
                            received.append(event.text)
                        if ttft is None:
                            ttft = (time.monotonic() - started) * 1000
                        # A token is ~4 characters: close enough for a progress count.
                        tokens += max(1, len(event.text) // 4)
                        if on_progress:
                            on_progress(StreamProgress(model, tokens, attempt, event.text))
        except PuterError as exc:
            if not exc.partial_text and accumulator.text:
                exc.partial_text = accumulator.text
            raise
        return _Timed(accumulator.result(model=model), ttft)

    async def _has_credit(self, account: AccountRef) -> bool:
        usage = await self._checks.run(("usage", account.id), lambda: self.client.usage(account.token))
        return usage.remaining_usd > 0

    async def _account_refusal(self, account: AccountRef) -> FailureKind | None:
        """What ``/whoami`` says of the account: None (it may call), AUTH or EMAIL_UNCONFIRMED.

        Raises:
            PuterError: the check itself failed (a refusal it cannot confirm either way).
        """
        try:
            who = await self._checks.run(("whoami", account.id), lambda: self.client.whoami(account.token))
        except PuterError as exc:
            if exc.kind in (FailureKind.AUTH, FailureKind.EMAIL_UNCONFIRMED):
                return exc.kind
            raise
        self._learn(account.id, who)
        return None if who.email_confirmed else FailureKind.EMAIL_UNCONFIRMED

    def _learn(self, account_id: str, who: WhoAmI) -> None:
        """Keep what ``/whoami`` said about an account: its tier paces its requests."""
        self._tiers[account_id] = Tier(who.tier)

    async def _learn_tiers(self, accounts: Sequence[AccountRef]) -> bool:
        """Ask ``/whoami`` (once per process) the tier of every account whose tier nobody set
        or learned, whatever its source: an account paced as the lowest tier by mistake wastes
        a paid subscription. Returns whether a tier was learned."""
        unknown = [a for a in accounts if a.id in self._unknown_tiers and a.id not in self._tier_asked]
        if not unknown:
            return False

        async def ask(account: AccountRef) -> None:
            self._tier_asked.add(account.id)
            try:
                with anyio.fail_after(_TIER_WAIT):
                    await self._account_refusal(account)
            except TimeoutError:
                # A slow /whoami must not hold the call up: this call is paced at the cautious
                # tier, and the next one asks again.
                self._tier_asked.discard(account.id)
                logger.info("no tier for %s within %.0f s; asking again next call", account.name, _TIER_WAIT)
            except PuterError as exc:
                # The calls themselves will say what is wrong; until then, the cautious tier.
                logger.info("could not read the tier of %s: %s", account.name, exc)

        async with anyio.create_task_group() as group:
            for account in unknown:
                group.start_soon(ask, account)
        return any(account.id in self._tiers for account in unknown)

    def _explain_failure(self, requested: str, failure: RoutingFailed, accounts: Sequence[AccountRef]) -> str:
        tokens = [account.token for account in accounts]
        lines = [f"puter-chat could not get an answer for {requested!r}: {failure.message.rstrip('.')}."]
        if failure.kind is FailureKind.OUT_OF_CREDITS:
            _state, advice = account_state(failure.kind, self.settings.gui_origin)
            lines.append(f"Out of credits on every usable account: {advice.split(': ', 1)[-1]}.")
        elif failure.kind is FailureKind.AUTH:
            lines.append("An account's sign-in is no longer valid: run `puter-mcp login` again.")
        elif failure.kind is FailureKind.EMAIL_UNCONFIRMED:
            _state, advice = account_state(failure.kind, self.settings.gui_origin)
            lines.append(f"{advice[0].upper()}{advice[1:]}.")
        if failure.retry_at is not None:
            seconds = max(0.0, failure.retry_at - self._clock())
            lines.append(f"Try again in {seconds:.0f} s.")
        tried = [a for a in failure.attempts if a.outcome not in NOT_FAILURES]
        if tried:
            lines.append(
                "Tried: "
                + "; ".join(
                    f"{a.model} on {a.account}: {a.outcome}" + (f" ({a.message})" if a.message else "")
                    for a in tried[:8]
                )
            )
        if failure.partial_text:
            lines.append("Partial answer received before the failure:\n" + failure.partial_text)
        return redact("\n".join(lines), tokens)

    # -- accounts overview -----------------------------------------------------------------

    async def accounts_overview(self) -> AccountsOverview:
        saved, default, problem = self._saved_accounts()
        statuses: list[AccountStatus] = []
        refs: list[tuple[AccountStatus, str, str]] = []
        if self._env_token:
            status = AccountStatus(
                name=_ENV_ACCOUNT, token=mask_token(self._env_token), source="environment", default=not saved
            )
            statuses.append(status)
            refs.append((status, _env_account_id(self._env_token), self._env_token))
        for account in saved:
            status = AccountStatus(
                name=account.name,
                username=account.username,
                token=account.masked_token,
                source="sandbox" if self.sandbox else "saved",
                default=account.name == default,
                is_temp=account.is_temp,
                tier=self._known_tier(account),
                state="active" if account.enabled else "disabled",
            )
            statuses.append(status)
            refs.append((status, _account_id(account), account.token.get_secret_value()))

        async def fill(status: AccountStatus, account_id: str, token: str) -> None:
            # What Puter says now is news for the router too: the cooldown book is the one
            # record of an account's state, and the lines below are read from it.
            try:
                who = await self.client.whoami(token)
            except PuterError as exc:
                status.error = redact(exc.message, [token])
                if exc.kind in (FailureKind.AUTH, FailureKind.EMAIL_UNCONFIRMED):
                    self.book.account_checked(account_id, exc.kind, reason=exc.message)
                return
            status.username = status.username or who.username
            status.is_temp = who.is_temp
            status.tier = status.tier or who.tier
            self._learn(account_id, who)
            self.book.account_checked(
                account_id, None if who.email_confirmed else FailureKind.EMAIL_UNCONFIRMED
            )
            try:
                usage = await self.client.usage(token)
            except PuterError as exc:
                status.error = redact(exc.message, [token])
                return
            status.credits = Credits(
                remaining_usd=usage.remaining_usd,
                allowance_usd=usage.allowance_usd,
                used_usd=usage.used_usd,
            )
            self.book.credit_checked(account_id, usage.remaining_usd > 0)

        async with anyio.create_task_group() as group:
            for status, account_id, token in refs:
                group.start_soon(fill, status, account_id, token)

        cooldowns = self.book.snapshot()
        names = {account_id: status.name for status, account_id, _ in refs}
        model_cooldowns: list[CooldownInfo] = []
        for cooldown in cooldowns:
            info = CooldownInfo(
                scope=cooldown.scope.value,
                account=names.get(cooldown.account, cooldown.account) if cooldown.account else None,
                model=cooldown.model or None,
                kind=cooldown.kind.value,
                until=None if cooldown.until == float("inf") else cooldown.until,
                reason=cooldown.reason,
            )
            if cooldown.scope is Scope.ACCOUNT:
                for status, account_id, _ in refs:
                    if account_id == cooldown.account and status.state in ("active", "cooling"):
                        state, advice = account_state(cooldown.kind, self.settings.gui_origin)
                        status.state = state  # type: ignore[assignment]
                        reason = f" ({cooldown.reason})" if advice and cooldown.reason else ""
                        status.detail = advice + reason if advice else info.describe().split(": ", 1)[-1]
            else:
                model_cooldowns.append(info)
        for status, account_id, _ in refs:
            status.requests_in_window, status.in_flight = self.pacer.usage(account_id)
        return AccountsOverview(
            accounts=statuses,
            model_cooldowns=model_cooldowns,
            sandbox=self.sandbox,
            problems=[problem] if problem else [],
        )


def _policy(settings: Settings) -> CooldownPolicy:
    cool = settings.cooldowns
    return CooldownPolicy(
        rate_limited_steps=tuple(cool.rate_limited),
        model_down=cool.model_down,
        model_forbidden=cool.model_forbidden,
        transport=cool.transport,
        credit_recheck=cool.credit_recheck,
    )


def _model_record(model: ModelInfo) -> ModelRecord:
    return ModelRecord(
        id=model.id,
        provider=model.provider,
        name=model.name,
        context=model.context,
        max_output=model.max_output,
        input_usd_per_mtok=model.input_usd_per_mtok,
        output_usd_per_mtok=model.output_usd_per_mtok,
        free=model.free,
        input_modalities=list(model.input_modalities),
        output_modalities=list(model.output_modalities),
        tool_calling=model.tool_call,
        subscriber_only=model.subscriber_only,
        aliases=list(model.aliases)[:6],
    )


def _same_model(catalogue: Catalogue, asked: str, answered: str) -> bool:
    """Puter reports canonical ids (``gpt-5-nano-2025-08-07`` for ``gpt-5-nano``): match them back."""
    if asked.lower() == answered.lower():
        return True
    found_asked = catalogue.find(asked)
    found_answered = catalogue.find(answered)
    if found_asked is not None and found_answered is not None:
        return found_asked.id == found_answered.id
    return answered.lower().startswith(asked.lower())


def _fallback_note(
    requested: str,
    chain: str | None,
    first: ModelInfo,
    routed_model: str,
    answered: str,
    attempts: Sequence[AttemptLog],
    catalogue: Catalogue,
    *,
    passed_over: Mapping[str, Sequence[str]] | None = None,
) -> str | None:
    """The first line of an answer that did not come from the model the caller named.

    It says why the named model did not answer: it failed during this call, or an earlier
    call left it cooling down (or unknown to Puter) so that this one did not ask it at all.
    """
    failures = [a for a in attempts if a.outcome not in NOT_FAILURES]
    why = ""
    first_failures = [a for a in failures if a.model == first.id]
    skipped = (passed_over or {}).get(first.id)
    if first_failures:
        why = f" because {first.id} failed ({', '.join(sorted({a.outcome for a in first_failures}))})"
    elif skipped:
        state = (
            "is unknown to Puter" if list(skipped) == [FailureKind.MODEL_UNKNOWN.value] else "is cooling down"
        )
        why = f" because {first.id} {state} ({', '.join(skipped)})"
    if chain is not None:
        # A virtual model never names the model that answers, so the line is always there.
        label = requested if requested == chain else f"{requested} ({chain})"
        if routed_model == first.id:
            return f"{label} answered with {answered}"
        return f"{label} answered with {answered}, not its first choice {first.id}{why}"
    if _same_model(catalogue, routed_model, answered) and routed_model == first.id:
        return None
    return f"answered by {answered}, not {requested}{why}"
