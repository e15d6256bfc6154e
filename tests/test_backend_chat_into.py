"""`Backend.chat_into` (the gateway's streamed answers) hands over exactly the events of
`Backend.chat_stream`, in the caller's task, and a sink that raises ends the request."""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import pytest

from puter_mcp.core import (
    Answering,
    AttemptStarted,
    Backend,
    ChatCall,
    ChatEvent,
    Finished,
    NoCandidateLeft,
    StreamFailed,
    TextDelta,
    UsageUpdate,
)
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
    match event:
        case AttemptStarted():
            return ("attempt", event.model, event.account, event.attempt, event.previous_failure)
        case Answering():
            return ("answering", event.model, event.account)
        case TextDelta():
            return ("text", event.text)
        case UsageUpdate():
            return ("usage", event.input_tokens, event.output_tokens)
        case Finished():
            return ("finished", event.outcome.text, event.outcome.model, event.outcome.account)
        case StreamFailed():
            return ("failed", event.kind, event.partial_text)
        case _:
            return (type(event).__name__,)


async def _events(backend: Backend, how: str) -> list[ChatEvent]:
    call = ChatCall.build(message="hello", model=MODEL)
    if how == "chat_stream":
        async with aclosing(backend.chat_stream(call)) as events:
            return [event async for event in events]
    recorder = Recorder()
    await backend.chat_into(call, recorder)
    return recorder.events


@pytest.mark.parametrize("scenario", ["failover-before-content", "failure-after-content"])
async def test_chat_into_hands_over_the_events_of_chat_stream(
    emulator: Emulator, home: Path, scenario: str
) -> None:
    runs: dict[str, list[ChatEvent]] = {}
    for how in ("chat_stream", "chat_into"):
        emulator.state.clear_faults()
        if scenario == "failover-before-content":
            emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, model=MODEL, account=emulator.paid.username)
        else:
            emulator.state.add_fault(
                Fault.STREAM_ERROR_AFTER_TEXT, model=MODEL, times=None, text_lines=2, message="reset"
            )
        async with backend_for(emulator, home / how, emulator.paid, emulator.free) as (backend, _):
            runs[how] = await _events(backend, how)
    assert [_comparable(e) for e in runs["chat_into"]] == [_comparable(e) for e in runs["chat_stream"]]
    last = runs["chat_into"][-1]
    if scenario == "failover-before-content":
        assert isinstance(last, Finished)
        assert len([e for e in runs["chat_into"] if isinstance(e, AttemptStarted)]) == 2
    else:
        assert isinstance(last, StreamFailed) and isinstance(last.error, NoCandidateLeft)


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
