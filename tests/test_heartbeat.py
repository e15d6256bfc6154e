"""The progress heartbeat of `puter-chat`: it fires while a call runs and never after it.

The heartbeat is a timer until its first interval passes (see `server._with_heartbeat`). These
tests use a zero interval and let the chat wait for the heartbeat's notification, so they
depend on the order of events, not on timing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import anyio
import pytest

from puter_mcp.core import BackendError, ChatCall, ChatOutcome, StreamProgress
from puter_mcp.server import _beside, _with_heartbeat  # pyright: ignore[reportPrivateUsage]


class RecordingContext:
    """Stands in for the SDK's `Context`: records each progress notification."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str | None]] = []
        self.first = anyio.Event()

    async def report_progress(self, progress: float, total: float | None, message: str | None) -> None:
        self.sent.append((progress, message))
        self.first.set()


def _outcome() -> ChatOutcome:
    return ChatOutcome(text="hi", model_requested="m", model="m", account="a")


@pytest.mark.anyio
async def test_the_heartbeat_reports_the_latest_progress_while_the_chat_runs() -> None:
    ctx = RecordingContext()

    async def chat(call: ChatCall, on_progress: Callable[[StreamProgress], None]) -> ChatOutcome:
        on_progress(StreamProgress(model="m", tokens=3, attempt=1))
        await ctx.first.wait()  # ends only once the heartbeat has spoken
        return _outcome()

    outcome = await _with_heartbeat(cast(Any, ctx), 0, chat, ChatCall.build(message="hi"))
    assert outcome.text == "hi"
    assert ctx.sent and ctx.sent[0][0] == 3
    assert "3 tokens received" in (ctx.sent[0][1] or "")
    count = len(ctx.sent)
    await anyio.sleep(0.01)  # several turns of the event loop: a leftover heartbeat would speak
    assert len(ctx.sent) == count


@pytest.mark.anyio
async def test_a_backend_error_passes_through_the_heartbeat_unwrapped() -> None:
    ctx = RecordingContext()

    async def chat(call: ChatCall, on_progress: Callable[[StreamProgress], None]) -> ChatOutcome:
        await ctx.first.wait()
        raise BackendError("nobody answered")

    with pytest.raises(BackendError, match="nobody answered"):
        await _with_heartbeat(cast(Any, ctx), 0, chat, ChatCall.build(message="hi"))


@pytest.mark.anyio
async def test_the_task_heartbeat_of_other_event_loops_starts_after_its_interval() -> None:
    beats = anyio.Event()

    async def heartbeat() -> None:
        beats.set()
        await anyio.sleep_forever()

    async def answer() -> ChatOutcome:
        await beats.wait()
        return _outcome()

    async def failing() -> ChatOutcome:
        await beats.wait()
        raise BackendError("nobody answered")

    assert (await _beside(heartbeat, 0, answer())).text == "hi"
    beats = anyio.Event()
    with pytest.raises(BackendError, match="nobody answered"):
        await _beside(heartbeat, 0, failing())
