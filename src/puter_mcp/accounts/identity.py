"""How the rest of puter-mcp knows an account: the id its shared state is kept under, and the
tier it is paced by. The one home of both rules: the backend, sign-in, the overview and the
health check all ask here.

- **State id.** Cooldowns, pacing slots and attempt records (docs/state.md) are shared by every
  puter-mcp process of the user, keyed by an id that must be the same in each of them and must
  not change when the token does: the account's Puter uuid, or ``user:<username>`` while the
  uuid is unknown. The ``PUTER_AUTH_TOKEN`` account has neither, so it is keyed by a digest of
  its token (never the token: the id is stored).
- **Tier.** Several voices may say which tier an account has; the first of these that speaks
  wins: ``[account_tiers]`` in the config, the account's override (the user's word, kept
  across sign-ins), the tier saved at sign-in, what ``/whoami`` said to this process. With none,
  the account is paced as `Tier.UNKNOWN`, the most cautious. The saved tier wins over the
  learned one so that pacing does not change under a running process; the health check says
  when they differ.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from puter_mcp.puter.tiers import Tier

if TYPE_CHECKING:
    from puter_mcp.accounts.store import Account

__all__ = [
    "ENV_ACCOUNT",
    "TierChoice",
    "TierSource",
    "account_id",
    "choose_tier",
    "env_account_id",
    "every_account_id",
]

ENV_ACCOUNT = "env"
"""The name of the ``PUTER_AUTH_TOKEN`` account (also its key in ``[account_tiers]``)."""


def _by_username(username: str) -> str:
    return f"user:{username}"


def account_id(account: Account) -> str:
    """The id an account's shared state (cooldowns, slots, attempts) is kept under."""
    return account.uuid or _by_username(account.username)


def every_account_id(account: Account) -> tuple[str, ...]:
    """Every id the account's shared state may be kept under: today's, and the one by username
    it had while its uuid was unknown (an account stored before Puter told its uuid)."""
    return tuple(dict.fromkeys((account_id(account), _by_username(account.username))))


def env_account_id(token: str) -> str:
    """The state id of the ``PUTER_AUTH_TOKEN`` account: a digest, never the token, since the
    id is stored in the shared state database."""
    return "env:" + hashlib.sha256(token.encode()).hexdigest()[:16]


TierSource = Literal["config", "override", "sign-in", "puter", "none"]
"""Who said the tier: ``[account_tiers]``, the account's override, the tier saved at sign-in,
``/whoami`` in this process, or nobody."""


@dataclass(frozen=True)
class TierChoice:
    """The tier an account is paced by, and who said it."""

    tier: Tier
    source: TierSource

    @property
    def set_by_user(self) -> bool:
        """The user stated it (config or override): it stands even when Puter says otherwise."""
        return self.source in ("config", "override")

    @property
    def known(self) -> Tier | None:
        """The tier, or None when nobody has said it yet."""
        return None if self.source == "none" else self.tier


def choose_tier(
    *, configured: Tier | None = None, account: Account | None = None, learned: Tier | None = None
) -> TierChoice:
    """Which tier wins (the module docstring gives the order and why).

    Args:
        configured: the account's entry in ``[account_tiers]``.
        account: the saved account (its override and the tier saved at sign-in); None for the
            ``PUTER_AUTH_TOKEN`` account.
        learned: what ``/whoami`` said to this process.
    """
    if configured is not None:
        return TierChoice(Tier(configured), "config")
    if account is not None and account.tier_override is not None:
        return TierChoice(account.tier_override, "override")
    if account is not None and account.tier is not None:
        return TierChoice(account.tier, "sign-in")
    if learned is not None and learned is not Tier.UNKNOWN:
        return TierChoice(learned, "puter")
    return TierChoice(Tier.UNKNOWN, "none")
