"""Account tiers: the plans whose request limits Puter sets apart (docs/puter-protocol.md,
"Limits per tier").

The one definition of the tier names. ``/whoami`` tells an account's tier (`WhoAmI.tier`), the
user may state it (``[account_tiers]`` in the config, an account's override), the accounts file
keeps what sign-in learned, and pacing looks Puter's limits up by it. `Tier.UNKNOWN` is no plan
of Puter's: it is what an account is paced as until one of those has spoken, so nobody may
state it (`StatedTier` refuses it).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["STATED_TIERS", "StatedTier", "Tier"]


class Tier(enum.StrEnum):
    """An account's tier, as far as Puter's limits are concerned."""

    PAID = "paid"
    FREE = "free"
    TEMP = "temp"
    UNKNOWN = "unknown"


STATED_TIERS: tuple[Tier, ...] = (Tier.PAID, Tier.FREE, Tier.TEMP)
"""The tiers Puter, sign-in or the user may state: every tier but `Tier.UNKNOWN`."""


def _stated_tier(value: Any) -> Tier:
    # The message never repeats the value: a misplaced token could stand in its place.
    if isinstance(value, str) and value in STATED_TIERS:
        return Tier(value)
    raise ValueError(f"must be one of {', '.join(STATED_TIERS)}")


StatedTier = Annotated[Tier, BeforeValidator(_stated_tier)]
"""A `Tier` field of a pydantic model that accepts only `STATED_TIERS` (given as strings)."""
