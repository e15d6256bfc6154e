"""A faithful local Puter (Starlette) with scripted faults, for tests and `--sandbox` mode.

Typical use::

    state = EmulatorState(clock=fake_clock, seed=1)
    paid, free, temp = state.seed_default_accounts()
    state.add_fault(Fault.INSUFFICIENT_FUNDS, model="gpt-5-nano", times=1)
    async with serve_emulator(state) as base_url:
        ...  # point both PUTER_API_ORIGIN and PUTER_GUI_ORIGIN at base_url
    assert [r.status for r in state.requests] == [...]

Nothing here imports `mcp`.
"""

from .app import create_app
from .catalogue import Catalogue, ModelSpec, default_catalogue
from .faults import STREAM_ONLY_FAULTS, Fault, FaultRule
from .runner import EmulatorThread, main, serve_emulator
from .state import (
    DEFAULT_CREDITS_USD,
    MICROCENTS_PER_USD,
    RATE_WINDOW_SECONDS,
    TIER_LIMITS,
    Account,
    EmulatorState,
    RequestRecord,
    Tier,
    TierLimits,
)

__all__ = [
    "DEFAULT_CREDITS_USD",
    "MICROCENTS_PER_USD",
    "RATE_WINDOW_SECONDS",
    "STREAM_ONLY_FAULTS",
    "TIER_LIMITS",
    "Account",
    "Catalogue",
    "EmulatorState",
    "EmulatorThread",
    "Fault",
    "FaultRule",
    "ModelSpec",
    "RequestRecord",
    "Tier",
    "TierLimits",
    "create_app",
    "default_catalogue",
    "main",
    "serve_emulator",
]
