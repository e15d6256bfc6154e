"""The facade every front end uses: the MCP tools today, the HTTP gateway tomorrow.

`Backend` offers these operations: `chat_stream` (the one way a chat runs), `chat_into` (its
events handed to a callback), `chat` (its events, folded into the whole answer), `list_models`,
`accounts_overview` and `readiness`, and three for statistics (`usage_stats`,
`active_cooldowns`, `add_attempt_hook`), over one Puter client, the saved accounts, the shared
routing state and the model catalogue. It knows no front end: failures come out as the errors
of `puter_mcp.core.errors`, which each front end words for its users.

Creating a `Backend` costs nothing: the machinery (`puter_mcp.core.engine`) is imported and
built on the first call, so a server answers `tools/list` as fast as a bare one.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from puter_mcp.core.calls import ChatCall, ModelsQuery
from puter_mcp.core.errors import BackendError
from puter_mcp.core.events import AttemptStarted, ChatEvent, Finished, StreamFailed, TextDelta
from puter_mcp.core.results import (
    AccountsOverview,
    ChatOutcome,
    CooldownInfo,
    ModelsPage,
    StreamProgress,
)
from puter_mcp.settings import Paths, Settings

if TYPE_CHECKING:
    from puter_mcp.accounts.store import AccountsStore
    from puter_mcp.core.chat import EventSink
    from puter_mcp.core.engine import Engine
    from puter_mcp.core.readiness import Readiness
    from puter_mcp.core.stats_view import UpstreamAttempt, UsageReport
    from puter_mcp.puter.client import PuterClient
    from puter_mcp.routing.state import StateStore

__all__ = ["Backend", "sandbox_home"]


class Backend:
    """The shared backend of one process. Use it as an async context manager, or `aclose` it.

    Args:
        settings, paths: what `puter_mcp.settings.load_settings` gives.
        client, accounts, store: ready-made parts (tests inject them); by default built from
            the settings on first use.
        env_token: the ``PUTER_AUTH_TOKEN`` account, used first and never saved.
        sandbox: answers come from the built-in emulator (said in every answer).
        on_warning: where a degraded state database is reported (default: the log).
        clock: wall-clock seconds, shared with other processes through the state database.
    """

    def __init__(
        self,
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
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.sandbox = sandbox
        self._client, self._accounts, self._store = client, accounts, store
        self._env_token = env_token or None
        self._on_warning = on_warning
        self._clock = clock
        self._engine: Engine | None = None
        self._attempt_hooks: list[Callable[[UpstreamAttempt], None]] = []
        if settings.chains:
            # A mistake in the user's chains must stop start-up, not the first call; checking
            # them needs only the chains module, not the whole engine.
            from puter_mcp.routing.chains import ChainConfigError, parse_user_chains

            try:
                parse_user_chains(settings.chains, source=str(paths.config_file))
            except ChainConfigError as exc:
                raise BackendError(str(exc)) from exc

    @classmethod
    def create(
        cls,
        settings: Settings,
        paths: Paths,
        *,
        env: Mapping[str, str] | None = None,
        sandbox: bool = False,
        on_warning: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Backend:
        """A backend for these settings; the token of ``PUTER_AUTH_TOKEN`` comes from `env`.

        The accounts are the home's saved ones, unless `[accounts] file` names a read-only file
        or ``PUTER_MCP_ACCOUNTS`` (in `env`) holds them (docs/configuration.md, "Accounts").

        Raises:
            BackendError: that file or variable is missing or malformed, or both are given.
        """
        env = os.environ if env is None else env
        accounts: AccountsStore | None = None
        # The sandbox has accounts of its own, never the real ones. The accounts module is
        # imported only when a fleet's accounts are given: a server's start-up is measured.
        if not sandbox and (settings.accounts.file or env.get("PUTER_MCP_ACCOUNTS")):
            from puter_mcp.accounts.store import AccountsError, fixed_accounts

            try:
                accounts = fixed_accounts(settings.accounts.file, env)
            except AccountsError as exc:
                raise BackendError(str(exc)) from exc
        return cls(
            settings,
            paths,
            accounts=accounts,
            env_token=env.get("PUTER_AUTH_TOKEN"),
            sandbox=sandbox,
            on_warning=on_warning,
            clock=clock,
        )

    def _engine_now(self) -> Engine:
        """The machinery, built (and imported) on first use."""
        if self._engine is None:
            from puter_mcp.core.wiring import build_engine

            self._engine = build_engine(
                self.settings,
                self.paths,
                client=self._client,
                accounts=self._accounts,
                store=self._store,
                env_token=self._env_token,
                sandbox=self.sandbox,
                on_warning=self._on_warning,
                clock=self._clock,
            )
            for hook in self._attempt_hooks:
                self._engine.add_attempt_hook(hook)
        return self._engine

    def chat_stream(
        self, call: ChatCall, *, restart_after_output: bool = False
    ) -> AsyncGenerator[ChatEvent, None]:
        """Answer a chat call as a stream of events (`puter_mcp.core.events`).

        Candidates are tried in turn (other models, other accounts) until one answers; that
        stops at the first content event: a failure after it ends the stream with
        `StreamFailed`. With `restart_after_output`, for callers that can take back what they
        showed, the next candidate starts the answer again instead (its `AttemptStarted`
        names the previous failure).

        Close the iterator when you stop early (``contextlib.aclosing``): that releases the
        upstream request at once.

        Raises:
            BackendError: before any content, when no candidate can answer.
        """
        # The pipeline's own generator, not one wrapped around it: a layer more would cost a
        # resumption per event.
        return self._engine_now().chat_stream(call, restart_after_output=restart_after_output)

    async def chat_into(self, call: ChatCall, out: EventSink) -> None:
        """Answer a chat call, handing each event of `chat_stream` to ``await out.send(event)``,
        in the same order and by the same rules, in the caller's own task.

        For a caller that acts on each event as it comes (the gateway sends it to its client):
        no task and no channel stand between the router and `out`, which `chat_stream` needs
        to be an iterator (each event handed across costs a few turns of the event loop). An
        event counts as delivered once `out.send` returns, so the rule of
        `puter_mcp.core.events` holds as exactly.

        Raises:
            BackendError: before any content, when no candidate can answer.
            Exception: whatever `out.send` raises; the upstream request is ended at once.
        """
        await self._engine_now().pipeline.deliver(call, out)

    async def chat(
        self, call: ChatCall, on_progress: Callable[[StreamProgress], None] | None = None
    ) -> ChatOutcome:
        """Answer a chat call whole, falling back over models and rotating accounts as needed.

        The events of `chat_stream`, folded into the answer; since it delivers the result
        whole, an answer that breaks off is started again on the next candidate. `on_progress`
        hears of each attempt and each piece of text as it arrives.
        """
        answer = _WholeAnswer(on_progress)
        # The pipeline hands the events straight to the fold, in this task: the same events
        # as `chat_stream`'s, without a task and a channel between them.
        await self._engine_now().pipeline.deliver(call, answer, restart_after_output=True)
        return answer.outcome()

    async def list_models(self, query: ModelsQuery) -> ModelsPage:
        """One page of the catalogue, or the virtual models with their members."""
        return await self._engine_now().list_models(query)

    async def accounts_overview(self) -> AccountsOverview:
        """Every account with its credit, tier and state, and the models' cooldowns."""
        return await self._engine_now().accounts_overview()

    async def readiness(self) -> Readiness:
        """Whether it can answer now (an account usable, the catalogue known), without asking
        Puter anything but the catalogue when it is not known yet: cheap enough for a health
        probe every few seconds."""
        from puter_mcp.core.readiness import readiness

        return await readiness(self._engine_now(), now=self._clock())

    async def usage_stats(self, since: float) -> UsageReport:
        """Usage from `since` (epoch seconds) until now, per model and per account.

        Computed from the attempt log of the state store, so it counts the upstream requests of
        every process that shares this backend's state database (the report's `covers` says
        which); see `puter_mcp.core.stats_view` for what each figure counts.
        """
        return await self._engine_now().usage_stats(since, self._clock())

    async def active_cooldowns(self) -> list[CooldownInfo]:
        """The cooldowns in force now (accounts, models, pairs), read from the shared state
        without a request to Puter: cheap enough to poll (metrics)."""
        return await self._engine_now().active_cooldowns()

    def add_attempt_hook(self, hook: Callable[[UpstreamAttempt], None]) -> None:
        """Tell `hook` of every upstream request this process makes, as it ends.

        `hook` runs in the router's task and must not block (queue any I/O); an exception it
        raises is logged and never costs an answer. Registering costs nothing until the first
        call builds the machinery.
        """
        self._attempt_hooks.append(hook)
        if self._engine is not None:
            self._engine.add_attempt_hook(hook)

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.aclose()

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()


class _WholeAnswer:
    """Folds a call's events into its outcome, telling `on_progress` of attempts and text."""

    __slots__ = ("_attempt", "_failed", "_finished", "_model", "_on_progress", "_tokens")

    def __init__(self, on_progress: Callable[[StreamProgress], None] | None) -> None:
        self._on_progress = on_progress
        self._model, self._attempt, self._tokens = "", 0, 0
        self._finished: ChatOutcome | None = None
        self._failed: BackendError | None = None

    async def send(self, event: ChatEvent, /) -> None:
        if isinstance(event, TextDelta):
            if self._on_progress:
                # A token is ~4 characters: close enough for a progress count.
                self._tokens += max(1, len(event.text) // 4)
                self._on_progress(StreamProgress(self._model, self._tokens, self._attempt, event.text))
        elif isinstance(event, AttemptStarted):
            self._model, self._attempt, self._tokens = event.model, event.attempt, 0
            if self._on_progress:
                self._on_progress(
                    StreamProgress(
                        model=self._model, attempt=self._attempt, previous_failure=event.previous_failure
                    )
                )
        elif isinstance(event, Finished):
            self._finished = event.outcome
        elif isinstance(event, StreamFailed):
            self._failed = event.error

    def outcome(self) -> ChatOutcome:
        """The answer, or the error the events ended with."""
        if self._failed is not None:
            raise self._failed
        if self._finished is None:
            raise BackendError("the answer ended without its closing event")  # a bug, said plainly
        return self._finished


def sandbox_home() -> Path:
    """A fresh private directory for the sandbox's files, so it never touches real accounts."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="puter-mcp-sandbox-"))
