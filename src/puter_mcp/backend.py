"""The facade every front end uses: the MCP tools today, the HTTP gateway tomorrow.

`Backend` offers the operations behind the three tools (`chat`, `list_models`,
`accounts_overview`) over one Puter client, the saved accounts, the shared routing state and
the model catalogue. It knows nothing of MCP: failures a person can act on come out as
`BackendError`, with a sentence that says what happened and what to do next.

Creating a `Backend` costs nothing: the machinery (`puter_mcp.engine`) is imported and built on
the first call, so a server answers `tools/list` as fast as a bare one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio
from pydantic import BaseModel, Field, ValidationError

from puter_mcp.models import AccountsOverview, ChatOutcome, ModelsPage, StreamProgress
from puter_mcp.puter.errors import FailureKind
from puter_mcp.settings import Paths, Settings

if TYPE_CHECKING:
    from puter_mcp.accounts.store import AccountsStore
    from puter_mcp.engine import Engine
    from puter_mcp.models import VirtualModelRecord
    from puter_mcp.puter.catalogue import Catalogue
    from puter_mcp.puter.client import PuterClient
    from puter_mcp.routing.cooldowns import CooldownBook
    from puter_mcp.routing.pacing import Pacer
    from puter_mcp.routing.router import AccountRef, Router
    from puter_mcp.routing.state import StateStore

__all__ = [
    "AccountsOverview",
    "Backend",
    "BackendError",
    "ChatCall",
    "ChatOutcome",
    "ModelsPage",
    "ModelsQuery",
    "StreamProgress",
    "Turn",
]


class BackendError(Exception):
    """A failure the caller can act on; the message says what to do."""

    def __init__(self, message: str, *, kind: FailureKind | None = None, partial_text: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.partial_text = partial_text


class Turn(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str


class ChatCall(BaseModel):
    """One chat request as the front ends give it."""

    messages: list[Turn] = Field(min_length=1)
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    # Strict: `true` or `12.0` is a mistake in the caller, not a number of tokens (pydantic would
    # otherwise turn them into 1 and 12). Every front end builds its call here.
    max_tokens: int | None = Field(default=None, ge=1, strict=True)
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    fallback: bool | None = None
    stream: bool = True
    """Stream from Puter (stalls are noticed sooner, progress can be reported); a
    non-streamed request is answered whole and names the model that answered."""

    @classmethod
    def build(
        cls,
        *,
        message: str | None = None,
        messages: Sequence[Turn] | None = None,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        reasoning_effort: str | None = None,
        thinking_budget: int | None = None,
        fallback: bool | None = None,
        stream: bool = True,
    ) -> ChatCall:
        """Check the arguments together, with messages that say how to fix them."""
        if message is not None and messages:
            raise BackendError("give either `message` or `messages`, not both")
        if message is None and not messages:
            raise BackendError("nothing to ask: give `message` (a string) or `messages` (a conversation)")
        turns = [Turn(role="user", content=message)] if message is not None else list(messages or [])
        if message is not None and not message.strip():
            raise BackendError("`message` is empty (or only blanks): write the question to ask")
        if not any(turn.role == "user" for turn in turns):
            raise BackendError("`messages` needs at least one message with role `user`")
        if system:
            turns = [Turn(role="system", content=system), *turns]
        from puter_mcp.routing.chains import reasoning_effort as effort_of

        try:
            effort = effort_of(reasoning_effort, thinking_budget)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
        try:
            return cls(
                messages=turns,
                model=model.strip() if model else None,
                temperature=temperature,
                max_tokens=max_tokens,
                reasoning_effort=effort,  # type: ignore[arg-type]
                fallback=fallback,
                stream=stream,
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise BackendError(f"bad chat argument `{where}`: {error['msg']}") from exc

    def last_user_message(self) -> str:
        for turn in reversed(self.messages):
            if turn.role == "user":
                return turn.content
        return ""


class ModelsQuery(BaseModel):
    query: str | None = None
    provider: str | None = None
    tool_calling: bool | None = None
    image_input: bool | None = None
    free: bool | None = None
    virtual: bool = False
    limit: int = 10
    offset: int = 0


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
        """A backend for these settings; the token of ``PUTER_AUTH_TOKEN`` comes from `env`."""
        env = os.environ if env is None else env
        return cls(
            settings,
            paths,
            env_token=env.get("PUTER_AUTH_TOKEN"),
            sandbox=sandbox,
            on_warning=on_warning,
            clock=clock,
        )

    @property
    def engine(self) -> Engine:
        """The machinery, built (and imported) on first use."""
        if self._engine is None:
            from puter_mcp.engine import build_engine

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
        return self._engine

    # The engine's parts, for status displays, tests and benchmarks.
    @property
    def client(self) -> PuterClient:
        return self.engine.client

    @property
    def store(self) -> StateStore:
        return self.engine.store

    @property
    def book(self) -> CooldownBook:
        return self.engine.book

    @property
    def pacer(self) -> Pacer:
        return self.engine.pacer

    @property
    def router(self) -> Router:
        return self.engine.router

    async def chat(
        self, call: ChatCall, on_progress: Callable[[StreamProgress], None] | None = None
    ) -> ChatOutcome:
        """Answer a chat call, falling back over models and rotating accounts as needed."""
        return await self.engine.chat(call, on_progress)

    async def list_models(self, query: ModelsQuery) -> ModelsPage:
        """One page of the catalogue, or the virtual models with their members."""
        return await self.engine.list_models(query)

    async def accounts_overview(self) -> AccountsOverview:
        """Every account with its credit, tier and state, and the models' cooldowns."""
        return await self.engine.accounts_overview()

    async def catalogue(self) -> Catalogue:
        """Puter's model catalogue (cached in memory and on disk)."""
        return await self.engine.catalogue()

    def virtual_models(self, catalogue: Catalogue) -> list[VirtualModelRecord]:
        return self.engine.virtual_models(catalogue)

    def routable_accounts(self) -> list[AccountRef]:
        return self.engine.routable_accounts()

    async def aclose(self) -> None:
        if self._engine is not None:
            await self._engine.aclose()

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()


def sandbox_home() -> Path:
    """A fresh private directory for the sandbox's files, so it never touches real accounts."""
    import tempfile

    return Path(tempfile.mkdtemp(prefix="puter-mcp-sandbox-"))
