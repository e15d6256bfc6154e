"""The backend's machinery, built on the first call, so that a server starts fast.

`puter_mcp.core.backend.Backend` is the facade every front end holds; it has `puter_mcp.core.wiring`
build an `Engine` the first time it is asked to do something. Importing this module pulls in
the Puter client (with its TLS set-up), the routing state (SQLite) and the pydantic wire models:
together most of a server's start-up time, which a client waiting for `tools/list` should not pay.

The engine only holds the parts and hands each operation to the module whose job it is:
`chat` (the chat pipeline), `accounts_view`, `catalogue_cache`, `models_view`, `overview`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Mapping

from puter_mcp.accounts.store import AccountsStore
from puter_mcp.core import models_view, overview, stats_view
from puter_mcp.core.accounts_view import AccountsView
from puter_mcp.core.calls import ChatCall, ModelsQuery
from puter_mcp.core.catalogue_cache import CatalogueCache
from puter_mcp.core.chat import ChatPipeline
from puter_mcp.core.events import ChatEvent
from puter_mcp.core.results import AccountsOverview, CooldownInfo, ModelsPage, VirtualModelRecord
from puter_mcp.core.stats_view import AttemptNames, UpstreamAttempt, UsageReport
from puter_mcp.puter.catalogue import Catalogue
from puter_mcp.puter.client import PuterClient
from puter_mcp.routing import chains
from puter_mcp.routing.cooldowns import CooldownBook, CooldownPolicy
from puter_mcp.routing.pacing import Pacer
from puter_mcp.routing.router import AccountRef, Router
from puter_mcp.routing.state import StateStore
from puter_mcp.settings import Paths, Settings

__all__ = ["Engine"]


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
        self.store = store
        self.sandbox = sandbox
        self.chains = dict(virtual_models)  # the built-in chains merged with the user's
        self.accounts = AccountsView(settings, accounts, client, env_token=env_token)
        self.book = CooldownBook(store, policy=_policy(settings), clock=clock)
        self.pacer = Pacer(store, clock=clock, lease_ttl=settings.routing.slot_lease)
        self.router = Router(
            book=self.book,
            pacer=self.pacer,
            store=store,
            strategy=settings.routing.strategy,
            max_attempts=settings.routing.max_attempts,
            deadline=settings.routing.deadline,
            max_wait=settings.routing.max_wait,
            clock=clock,
            # The store's attempt log is one of the router's hooks; it writes each record with
            # the release of the attempt's slot, in the same transaction.
            hooks=[store.log_attempt],
        )
        self.attempt_names = AttemptNames(self.accounts)
        self.catalogue_cache = CatalogueCache(settings, paths, client, self.accounts, clock=clock)
        self.pipeline = ChatPipeline(
            settings,
            client,
            self.router,
            self.accounts,
            self.catalogue_cache,
            self.chains,
            sandbox=sandbox,
            clock=clock,
        )

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.store.aclose()

    def chat_stream(
        self, call: ChatCall, *, restart_after_output: bool = False
    ) -> AsyncGenerator[ChatEvent, None]:
        return self.pipeline.stream(call, restart_after_output=restart_after_output)

    async def list_models(self, query: ModelsQuery) -> ModelsPage:
        return await models_view.list_models(
            query,
            self.catalogue_cache,
            self.chains,
            fallback_to_free=self.settings.fallback_to_free,
            sandbox=self.sandbox,
        )

    async def accounts_overview(self) -> AccountsOverview:
        return await overview.accounts_overview(
            self.accounts, self.book, self.pacer, gui_origin=self.settings.gui_origin, sandbox=self.sandbox
        )

    def add_attempt_hook(self, hook: Callable[[UpstreamAttempt], None]) -> None:
        self.router.add_hook(stats_view.attempt_hook(hook, self.attempt_names))

    async def active_cooldowns(self) -> list[CooldownInfo]:
        return await stats_view.active_cooldowns(self.book, self.attempt_names)

    async def usage_stats(self, since: float, until: float) -> UsageReport:
        return await stats_view.usage_stats(
            self.store, self.attempt_names, since=since, until=until, sandbox=self.sandbox
        )

    async def catalogue(self) -> Catalogue:
        """Puter's model catalogue (cached in memory and on disk)."""
        return await self.catalogue_cache.catalogue()

    def virtual_models(self, catalogue: Catalogue) -> list[VirtualModelRecord]:
        return models_view.virtual_models(
            catalogue, self.chains, fallback_to_free=self.settings.fallback_to_free
        )

    def routable_accounts(self) -> list[AccountRef]:
        return self.accounts.routable()


def _policy(settings: Settings) -> CooldownPolicy:
    cool = settings.cooldowns
    return CooldownPolicy(
        rate_limited_steps=tuple(cool.rate_limited),
        model_down=cool.model_down,
        model_forbidden=cool.model_forbidden,
        transport=cool.transport,
        credit_recheck=cool.credit_recheck,
    )
