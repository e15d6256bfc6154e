"""Who may call the gateway: the `KeyGate` every request passes, and the callers it admits.

The gateway asks its gate once per request, with the key the client sent (``Authorization:
Bearer`` or ``x-api-key``) and the model it names. The gate answers with the `Caller`, or
refuses with a `puter_mcp.gateway.failures.GatewayError`: 401 (no key where one is required, an unknown, revoked or
expired key), 403 (a model the key may not use), 429 (the key is over one of its limits, with
the time until a place frees up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Caller", "KeyGate", "KeyUsage", "OpenDoor"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request comes from: the key's name (None: no key), and whether it administers keys."""

    key: str | None = None
    admin: bool = False


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """What one key did over a window: requests admitted, and those refused with 429."""

    key: str
    requests: int
    rate_limited: int


class KeyGate(Protocol):
    required: bool
    """True when every request must carry a valid key."""

    async def admit(self, secret: str | None, model: str | None, *, spend: bool = True) -> Caller:
        """The caller behind `secret`, once its limits allow this request.

        `spend`: the request counts against the key's limits (chats do; listing models,
        counting tokens and administering keys only need a valid key).

        Raises:
            GatewayError: 401, 403 or 429 (see the module docstring).
        """
        ...

    async def usage(self, since: float) -> list[KeyUsage]:
        """Each key's requests and 429s since `since` (epoch seconds)."""
        ...

    async def aclose(self) -> None: ...


class OpenDoor:
    """The gate when keys are off and no key store is open: everyone is admitted.

    A key sent anyway is ignored: the official SDKs insist on sending one (``sk-anything``),
    and a gateway with keys off must take them as it takes no key.
    """

    required = False

    async def admit(self, secret: str | None, model: str | None, *, spend: bool = True) -> Caller:
        return Caller()

    async def usage(self, since: float) -> list[KeyUsage]:
        return []

    async def aclose(self) -> None:
        return None
