"""`ChatPipeline.deliver` (what `Backend.chat` uses) and `Backend.chat_into` (the gateway's
streamed answers) hand over exactly the events of `stream`, in the caller's task, and a sink
that raises ends the request.

Each way runs the same scenario against the emulator, each on a fresh backend, and their event
sequences are compared whole (types and the fields that do not depend on timing).
"""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import pytest

from puter_mcp.core import Backend, ChatCall, NoCandidateLeft
from puter_mcp.core.events import (
    Answering,
    AttemptStarted,
    ChatEvent,
    Finished,
    StreamFailed,
    TextDelta,
    UsageUpdate,
)
from puter_mcp.core.wiring import engine_of
from puter_mcp.emulator import Fault
from tests.helpers import Emulator, backend_for

pytestmark = pytest.mark.anyio

MODEL = "gpt-5-nano"


class Recorder:
    """A sink that keeps every event it is handed; with `stop_at`, raises on that event."""

    def __init__(self, stop_at: type[ChatEvent] | None = None) -> None:
        self.events: list[ChatEvent] = []
        self.stop_at = stop_at

    async def send(self, item: ChatEvent, /) -> None:
        self.events.append(item)
        if self.stop_at is not None and isinstance(item, self.stop_at):
            raise LookupError("the client went away")


def _comparable(event: ChatEvent) -> tuple[Any, ...]:
    """The parts of an event that two runs of one scenario share (no timings, no errors' identity)."""
    match event:
        case AttemptStarted():
            return ("attempt", event.model, event.account, event.attempt, event.previous_failure)
        case Answering():
            return ("answering", event.model, event.account)
        case TextDelta():
            return ("text", event.text)
        case UsageUpdate():
            return ("usage", event.input_tokens, event.output_tokens, event.cost_usd)
        case Finished():
            return ("finished", event.outcome.text, event.outcome.model, event.outcome.account)
        case StreamFailed():
            return ("failed", event.kind, event.partial_text)
        case _:
            return (type(event).__name__,)


async def _both(
    emulator: Emulator, home: Path, fault: dict[str, Any] | None, *, restart: bool, via: str
) -> tuple[list[ChatEvent], list[ChatEvent]]:
    """The events of one call through `stream`, then through `via`, each on a fresh backend."""
    call = ChatCall.build(message="hello", model=MODEL)
    runs: list[list[ChatEvent]] = []
    for how in ("stream", via):
        emulator.state.clear_faults()
        if fault:
            emulator.state.add_fault(**fault)
        async with backend_for(emulator, home / how, emulator.paid, emulator.free) as (backend, _):
            runs.append(await _run(backend, call, how, restart=restart))
    return runs[0], runs[1]


async def _run(backend: Backend, call: ChatCall, how: str, *, restart: bool) -> list[ChatEvent]:
    if how == "stream":
        async with aclosing(backend.chat_stream(call, restart_after_output=restart)) as events:
            return [event async for event in events]
    recorder = Recorder()
    if how == "chat_into":
        await backend.chat_into(call, recorder)
    else:
        await engine_of(backend).pipeline.deliver(call, recorder, restart_after_output=restart)
    return recorder.events


def _fault(scenario: str, emulator: Emulator) -> dict[str, Any] | None:
    broken = {"fault": Fault.STREAM_ERROR_AFTER_TEXT, "model": MODEL, "text_lines": 2, "message": "reset"}
    return {
        "plain": None,
        "failover-before-content": {
            "fault": Fault.TOO_MANY_REQUESTS,
            "model": MODEL,
            "account": emulator.paid.username,
        },
        "restart-after-content": {**broken, "account": emulator.paid.username},
        "failure-after-content": {**broken, "times": None},
    }[scenario]


@pytest.mark.parametrize(
    ("via", "scenario", "restart"),
    [
        ("deliver", "plain", False),
        ("deliver", "failover-before-content", False),
        ("deliver", "restart-after-content", True),
        ("deliver", "failure-after-content", False),
        ("chat_into", "failover-before-content", False),
        ("chat_into", "failure-after-content", False),
    ],
)
async def test_deliver_hands_over_the_events_of_stream(
    emulator: Emulator, home: Path, via: str, scenario: str, restart: bool
) -> None:
    streamed, delivered = await _both(emulator, home, _fault(scenario, emulator), restart=restart, via=via)
    assert [_comparable(e) for e in delivered] == [_comparable(e) for e in streamed]
    attempts = [e for e in delivered if isinstance(e, AttemptStarted)]
    assert len(attempts) == (1 if scenario in ("plain", "failure-after-content") else 2)
    last = delivered[-1]
    if scenario == "failure-after-content":
        assert isinstance(last, StreamFailed) and isinstance(last.error, NoCandidateLeft)
    else:
        assert isinstance(last, Finished)


async def test_a_sink_that_raises_ends_the_request(emulator: Emulator, home: Path) -> None:
    # The answer stalls after its first text: only closing the request ends it upstream.
    emulator.state.add_fault(Fault.STALL_MID_STREAM, model=MODEL, times=None)
    async with backend_for(emulator, home, emulator.paid) as (backend, _):
        recorder = Recorder(stop_at=TextDelta)
        with pytest.raises(LookupError):
            await backend.chat_into(ChatCall.build(message="hello", model=MODEL), recorder)
        assert isinstance(recorder.events[-1], TextDelta)
        assert not [e for e in recorder.events if isinstance(e, Finished | StreamFailed)]
        # The upstream request was closed when the sink raised, not left to run on (the
        # emulator, in a thread, counts it out once it sees the connection close).
        for _ in range(200):
            if emulator.state.in_flight(emulator.paid.username) == 0:
                break
            await anyio.sleep(0.05)
        assert emulator.state.in_flight(emulator.paid.username) == 0, "the upstream request is still open"
