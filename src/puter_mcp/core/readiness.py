"""Whether the backend can answer now, cheaply: for a gateway's ``/health`` and a doctor.

Ready means at least one account can be used (signed in, and not blocked as a whole by an
account-wide cooldown: out of credit, signed out, e-mail unconfirmed, throttled) and Puter's
model catalogue is known (from memory, the disk cache, or one fetch). Nothing else is sent to
Puter: a health probe every few seconds must not cost requests.

Degraded means ready, but with the shared state store (Redis) not answering: this process goes
on from its own memory, so other replicas do not see what it learns (docs/state.md, "Redis").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from puter_mcp.core.errors import BackendError
from puter_mcp.puter.errors import PuterError

if TYPE_CHECKING:
    from puter_mcp.core.engine import Engine

__all__ = ["Readiness", "readiness"]


class Readiness(BaseModel):
    """Whether the backend can answer now, and if not, why."""

    ready: bool
    accounts: int = Field(description="Accounts signed in.")
    usable_accounts: int = Field(description="Of those, the ones no account-wide cooldown blocks now.")
    models: int = Field(description="Models in the catalogue (0 when it is unknown).")
    stale_catalogue: bool = False
    problems: list[str] = Field(default_factory=list, description="Why it is not ready (empty when ready).")
    sandbox: bool = False
    degraded: bool = Field(
        default=False,
        description="The shared state store (Redis) does not answer: this process keeps cooldowns "
        "and pacing in its own memory until it does (it still answers requests).",
    )
    degraded_reason: str | None = Field(default=None, description="Why it is degraded (None when not).")


async def readiness(engine: Engine, *, now: float) -> Readiness:
    # Imported here: the record above is part of the core's face, which a starting server
    # imports; the state package is not needed until the first question.
    from puter_mcp.routing.state import Scope

    problems: list[str] = []
    accounts = engine.routable_accounts()
    if not accounts:
        _saved, _default, problem = engine.accounts.saved()
        problems.append("no Puter account can be used" + (f" ({problem})" if problem else ""))
    blocked = {
        cooldown.account
        for cooldown in await engine.book.snapshot()
        if cooldown.scope is Scope.ACCOUNT and cooldown.until > now
    }
    usable = [account for account in accounts if account.id not in blocked]
    if accounts and not usable:
        problems.append(
            f"every account is blocked for now ({len(accounts)} signed in: throttled, out of credit "
            "or refused)"
        )
    models, stale = 0, False
    try:
        entry = await engine.catalogue_cache.entry()
        models, stale = len(entry.catalogue), entry.stale
    except (BackendError, PuterError) as exc:
        problems.append(f"Puter's model catalogue cannot be read: {exc}")
    # Asked after the cooldowns were read: that read is what finds a store gone, or back.
    degraded = bool(getattr(engine.store, "degraded", False))
    return Readiness(
        ready=not problems,
        degraded=degraded,
        degraded_reason=(
            f"the shared state store does not answer; cooldowns and pacing are kept in this "
            f"process's memory until it does: {engine.store.describe()}"
            if degraded
            else None
        ),
        accounts=len(accounts),
        usable_accounts=len(usable),
        models=models,
        stale_catalogue=stale,
        problems=problems,
        sandbox=engine.sandbox,
    )
