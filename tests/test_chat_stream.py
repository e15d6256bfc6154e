"""`Backend.chat_stream`: failover until the first content event, never after.

Against the emulator on a real loopback port; "no request to another candidate" is read from the
emulator's own request log.
"""

from __future__ import annotations

from contextlib import aclosing
from pathlib import Path

import pytest

from puter_mcp.core import Backend, ChatCall, NoCandidateLeft, NotSignedIn
from puter_mcp.core.events import (
    CONTENT_EVENTS,
    Answering,
    AttemptStarted,
    ChatEvent,
    Finished,
    StreamFailed,
    TextDelta,
    UsageUpdate,
)
from puter_mcp.emulator import Fault
from puter_mcp.puter.errors import FailureKind
from puter_mcp.settings import RoutingSettings
from tests.helpers import Emulator, backend_for

pytestmark = pytest.mark.anyio

MODEL = "gpt-5-nano"
CANONICAL = "gpt-5-nano-2025-08-07"  # the id the emulator's catalogue resolves MODEL to
FILL_FIRST = RoutingSettings(strategy="fill-first")


def ask(**extra: object) -> ChatCall:
    return ChatCall.build(message="hello", model=MODEL, **extra)  # type: ignore[arg-type]


async def collect(backend: Backend, call: ChatCall, **options: bool) -> list[ChatEvent]:
    async with aclosing(backend.chat_stream(call, **options)) as events:
        return [event async for event in events]


async def collect_into(seen: list[ChatEvent], backend: Backend, call: ChatCall) -> None:
    """Like `collect`, keeping what arrived before an error."""
    async with aclosing(backend.chat_stream(call)) as events:
        async for event in events:
            seen.append(event)


def text_of(events: list[ChatEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


async def test_a_stream_names_its_answerer_before_the_content_and_ends_with_the_outcome(
    emulator: Emulator, home: Path
) -> None:
    async with backend_for(emulator, home, emulator.paid) as (backend, _):
        events = await collect(backend, ask())
    kinds = [type(event) for event in events]
    assert kinds[0] is AttemptStarted
    assert kinds[1] is Answering
    assert kinds[2] in CONTENT_EVENTS
    assert kinds[-1] is Finished
    assert UsageUpdate in kinds
    finished = events[-1]
    assert isinstance(finished, Finished)
    answering = events[1]
    assert isinstance(answering, Answering)
    assert (answering.model, answering.account) == (CANONICAL, emulator.paid.username)
    # The outcome is the streamed text, whole, with the routing metadata.
    assert finished.outcome.text == text_of(events)
    assert finished.outcome.account == emulator.paid.username


async def test_a_failure_before_any_content_moves_on_with_exactly_one_start_of_content(
    emulator: Emulator, home: Path
) -> None:
    async with backend_for(emulator, home, emulator.paid, emulator.free) as (backend, _):
        emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, model=MODEL, account=emulator.paid.username)
        emulator.state.clear_requests()
        events = await collect(backend, ask())
    attempts = [event for event in events if isinstance(event, AttemptStarted)]
    assert [(a.account, a.previous_failure) for a in attempts] == [
        (emulator.paid.username, ""),
        (emulator.free.username, FailureKind.RATE_LIMITED.value),
    ]
    answering = [event for event in events if isinstance(event, Answering)]
    assert answering == [Answering(CANONICAL, emulator.free.username)]
    # Nothing of the refused attempt reached the caller: content starts once, after Answering.
    first_content = next(i for i, event in enumerate(events) if isinstance(event, CONTENT_EVENTS))
    assert isinstance(events[first_content - 1], Answering)
    assert not any(isinstance(event, StreamFailed) for event in events)
    assert [(r.username, r.model) for r in emulator.chat_requests()] == [
        (emulator.paid.username, CANONICAL),
        (emulator.free.username, CANONICAL),
    ]


async def test_a_failure_after_content_ends_the_stream_with_the_partial_text_and_no_other_request(
    emulator: Emulator, home: Path
) -> None:
    async with backend_for(emulator, home, emulator.paid, emulator.free) as (backend, _):
        emulator.state.add_fault(
            Fault.STREAM_ERROR_AFTER_TEXT, model=MODEL, times=None, text_lines=2, message="reset by peer"
        )
        emulator.state.clear_requests()
        events = await collect(backend, ask())
    last = events[-1]
    assert isinstance(last, StreamFailed)
    assert isinstance(last.error, NoCandidateLeft)
    assert last.kind is FailureKind.TRANSPORT
    streamed = text_of(events)
    assert streamed and last.partial_text == streamed
    assert not any(isinstance(event, Finished) for event in events)
    # One request: the free account was not asked to start the answer again.
    assert [(r.username, r.model) for r in emulator.chat_requests()] == [(emulator.paid.username, CANONICAL)]


async def test_with_restart_a_broken_answer_starts_again_on_the_next_candidate(
    emulator: Emulator, home: Path
) -> None:
    async with backend_for(emulator, home, emulator.paid, emulator.free) as (backend, _):
        emulator.state.add_fault(
            Fault.STREAM_ERROR_AFTER_TEXT,
            model=MODEL,
            account=emulator.paid.username,
            text_lines=2,
            message="reset by peer",
        )
        events = await collect(backend, ask(), restart_after_output=True)
    attempts = [event for event in events if isinstance(event, AttemptStarted)]
    assert [a.account for a in attempts] == [emulator.paid.username, emulator.free.username]
    assert attempts[1].previous_failure == FailureKind.TRANSPORT.value
    assert [a.account for a in events if isinstance(a, Answering)] == [
        emulator.paid.username,
        emulator.free.username,
    ]
    finished = events[-1]
    assert isinstance(finished, Finished)
    # The outcome is the second answer alone; what came before the restart is void.
    restart = events.index(attempts[1])
    assert finished.outcome.text == text_of(events[restart:])


async def test_nobody_to_answer_is_raised_before_any_event(emulator: Emulator, home: Path) -> None:
    async with backend_for(emulator, home) as (backend, _):
        seen: list[ChatEvent] = []
        with pytest.raises(NotSignedIn) as caught:
            await collect_into(seen, backend, ask())
    assert seen == []
    assert caught.value.action == "sign_in"
    assert "puter-mcp" not in str(caught.value)  # the core names no command


async def test_every_candidate_failing_before_content_is_raised_not_streamed(
    emulator: Emulator, home: Path
) -> None:
    async with backend_for(emulator, home, emulator.paid, routing=FILL_FIRST) as (backend, _):
        emulator.state.add_fault(Fault.UPSTREAM_PROVIDER_UNAVAILABLE, model=MODEL, times=None)
        seen: list[ChatEvent] = []
        with pytest.raises(NoCandidateLeft) as caught:
            await collect_into(seen, backend, ask(fallback=False))
    assert caught.value.kind is FailureKind.MODEL_DOWN
    assert not any(isinstance(event, CONTENT_EVENTS) for event in seen)
    assert all(isinstance(event, AttemptStarted) for event in seen)


async def test_stopping_early_releases_the_pacing_slot(emulator: Emulator, home: Path) -> None:
    from puter_mcp.core.wiring import engine_of

    async with backend_for(emulator, home, emulator.paid) as (backend, _):
        account = engine_of(backend).routable_accounts()[0]
        async with aclosing(backend.chat_stream(ask())) as events:
            async for event in events:
                if isinstance(event, CONTENT_EVENTS):
                    break
        assert (await engine_of(backend).pacer.usage(account.id)).in_flight == 0
        # And the backend answers the next call as usual.
        outcome = await backend.chat(ask())
    assert outcome.text
