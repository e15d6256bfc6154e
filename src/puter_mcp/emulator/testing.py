"""Small helpers for tests that drive the emulator (a manual clock, request bodies)."""

from __future__ import annotations

from typing import Any

__all__ = ["ManualClock", "chat_body", "driver_body"]


class ManualClock:
    """A clock that only moves when told to: `EmulatorState(clock=ManualClock())`."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def driver_body(method: str, args: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A `/drivers/call` body for the chat interface (`extra` overrides interface/driver)."""
    body: dict[str, Any] = {"interface": "puter-chat-completion", "driver": "ai-chat", "method": method}
    if args is not None:
        body["args"] = args
    body.update(extra)
    return body


def chat_body(
    model: str, content: str = "hello emulator", *, stream: bool = False, **args: Any
) -> dict[str, Any]:
    """A `complete` call with one user message; `args` are added to the call's args."""
    return driver_body(
        "complete",
        {"messages": [{"role": "user", "content": content}], "model": model, "stream": stream, **args},
    )
