"""Puter's model catalogue, kept in memory and on disk (stale-while-revalidate).

The catalogue changes a few times a day, and listing it costs a round trip or two, so a
process reads it from memory, then from the disk cache another process may have written, and
asks Puter only when both are older than ``models_cache_ttl``. When Puter cannot be reached, a
stale copy is better than no answer: it is used, and marked stale.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from puter_mcp.core.accounts_view import AccountsView
from puter_mcp.core.errors import BackendError
from puter_mcp.files import ensure_private_dir, write_private_atomic
from puter_mcp.puter.catalogue import Catalogue
from puter_mcp.puter.client import PuterClient
from puter_mcp.puter.errors import PuterError
from puter_mcp.settings import Paths, Settings

__all__ = ["CatalogueCache", "CatalogueEntry"]

logger = logging.getLogger(__name__)

_EMPTY_CATALOGUE_KEPT = 60.0  # seconds an empty model list is trusted


@dataclass
class CatalogueEntry:
    catalogue: Catalogue
    fetched_at: float
    stale: bool = False


class CatalogueCache:
    """The catalogue of the Puter at ``settings.api_origin``, fetched at most once per TTL."""

    def __init__(
        self,
        settings: Settings,
        paths: Paths,
        client: PuterClient,
        accounts: AccountsView,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.client = client
        self.accounts = accounts
        self._clock = clock
        self._entry: CatalogueEntry | None = None
        self._lock = anyio.Lock()

    async def catalogue(self) -> Catalogue:
        return (await self.entry()).catalogue

    def _fresh(self, entry: CatalogueEntry | None, now: float) -> bool:
        if entry is None:
            return False
        ttl = self.settings.models_cache_ttl
        if not len(entry.catalogue):
            # An empty list is more likely a Puter being set up (or a hiccup) than the truth
            # for hours: look again soon.
            ttl = min(ttl, _EMPTY_CATALOGUE_KEPT)
        return now - entry.fetched_at < ttl

    async def entry(self) -> CatalogueEntry:
        """The catalogue and whether it is stale: memory, then disk, then Puter."""
        now = self._clock()
        cached = self._entry
        if cached and self._fresh(cached, now) and not cached.stale:
            return cached
        async with self._lock:
            cached = self._entry
            if cached and self._fresh(cached, now) and not cached.stale:
                return cached
            if cached is None:
                cached = self._read_disk()
                if cached and self._fresh(cached, now):
                    self._entry = cached
                    return cached
            accounts = self.accounts.routable()
            try:
                # Signed in, the chat driver also names the models the list leaves out.
                catalogue = await self.client.models(token=accounts[0].token if accounts else None)
            except PuterError as exc:
                if cached is not None:
                    logger.warning(
                        "could not refresh the model catalogue (%s); using the cached one", exc.message
                    )
                    cached.stale = True
                    self._entry = cached
                    return cached
                raise BackendError(
                    f"cannot reach Puter to list its models ({exc.message}) and nothing is cached yet. "
                    f"Check your connection and {self.settings.api_origin}, then try again."
                ) from exc
            entry = CatalogueEntry(catalogue, self._clock())
            self._entry = entry
            self._write_disk(entry)
            return entry

    def _read_disk(self) -> CatalogueEntry | None:
        path = self.paths.models_cache
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("api_origin") != self.settings.api_origin:
                return None
            return CatalogueEntry(Catalogue.from_json(raw["catalogue"]), float(raw["fetched_at"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring the unreadable model cache %s (%s); it will be rebuilt", path, exc)
            return None

    def _write_disk(self, entry: CatalogueEntry) -> None:
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
