"""The fault-injection matrix: every scripted emulator fault through `Backend.chat`, streamed or not.

Set-up for every case: three saved accounts (paid, free, temporary, tried in that order: the
strategy is fill-first so that "the next candidate" is one exact pair), the concrete model
`gpt-5-nano` with the free fallback on, and the fault scripted once on (gpt-5-nano, paid).
Each case checks what issue 3 asks of the router:

- the answer arrives, whole, from the expected (model, account): the next account for an
  account-scoped failure, the next model for a model-scoped one; or, for BAD_REQUEST, a clear
  error after exactly one request;
- the exact upstream `complete` requests, from the emulator's request log;
- the cooldown left in the book (scope and key), and the attempts reported with the answer;
- the first line that says another model answered, and why.

Then the multi-call stories: out of credits everywhere (no more chat requests until the
credit re-check is due, then one `/metering/usage` per account), a down model skipped and
probed by exactly one request, partial text kept when nothing completes. Time is an injected
clock that a test moves forward; nothing sleeps through a cooldown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from puter_mcp.core import Backend, BackendError, ChatCall, ChatOutcome
from puter_mcp.core.wiring import engine_of
from puter_mcp.display import chat_text
from puter_mcp.emulator import Fault
from puter_mcp.emulator.answers import text_pieces
from puter_mcp.puter.errors import FailureKind
from puter_mcp.routing import chains
from puter_mcp.routing.cooldowns import Scope
from puter_mcp.settings import CooldownSettings, RoutingSettings, TimeoutSettings
from puter_mcp.wording import describe_error
from tests.helpers import Emulator, OffsetClock, open_backend, save_accounts, settings_for

pytestmark = pytest.mark.anyio

ASKED = "gpt-5-nano"
PROMPT = "what is the matrix"


def expected_text(model_id: str, prompt: str = PROMPT) -> str:
    """The emulator's deterministic answer (emulator/answers.py)."""
    return f'[{model_id}] You said: "{prompt}". This deterministic answer comes from the Puter emulator.'


@dataclass
class World:
    """An emulator with three saved accounts and a backend on an injected clock."""

    emulator: Emulator
    backend: Backend
    clock: OffsetClock
    model: str
    """The id `gpt-5-nano` resolves to (what the router sends)."""
    free_model: str
    """The first free model of the chain's tail (the next model after `model`)."""
    ids: dict[str, str] = field(default_factory=dict)
    """Account name -> the id the router keys its state with (the Puter uuid)."""

    def chat_log(self) -> list[tuple[str | None, str | None]]:
        """(model, account) of every upstream chat request, in order."""
        return [(r.model, r.username) for r in self.emulator.chat_requests()]

    def usage_log(self) -> list[str | None]:
        return [r.username for r in self.emulator.state.requests if r.path == "/metering/usage"]

    async def cooldowns(self) -> list[tuple[Scope, str | None, str | None, FailureKind]]:
        return sorted(
            ((c.scope, c.account, c.model, c.kind) for c in await engine_of(self.backend).book.snapshot()),
            key=repr,
        )

    async def chat(self, *, stream: bool = True, fallback: bool | None = None) -> ChatOutcome:
        return await self.backend.chat(
            ChatCall.build(message=PROMPT, model=ASKED, stream=stream, fallback=fallback)
        )


@asynccontextmanager
async def world(emulator: Emulator, home: Path, **overrides: Any) -> AsyncIterator[World]:
    settings, paths = settings_for(emulator, home, **overrides)
    save_accounts(paths, emulator.paid, emulator.free, emulator.temp)
    clock = OffsetClock()
    async with open_backend(settings, paths, clock) as backend:
        catalogue = await engine_of(backend).catalogue()
        resolved = chains.resolve(ASKED, catalogue, chains=chains.merge_chains({}), fallback_to_free=True)
        ids = {a.name: a.id for a in engine_of(backend).routable_accounts()}
        yield World(emulator, backend, clock, resolved.ids[0], resolved.ids[1], ids)


def base_overrides(**extra: Any) -> dict[str, Any]:
    return {"routing": RoutingSettings(strategy="fill-first", **extra)}


# --- the matrix --------------------------------------------------------------------------------

BOTH = (True, False)
STREAM = (True,)
WHOLE = (False,)
STALL_TIMEOUTS = TimeoutSettings(connect=5.0, first_byte=0.5, idle=0.5, total=1.5)


@dataclass(frozen=True)
class Case:
    fault: Fault
    kind: FailureKind
    streams: tuple[bool, ...] = BOTH
    params: dict[str, Any] = field(default_factory=dict)
    timeouts: TimeoutSettings | None = None
    label: str = ""


CASES = [
    Case(Fault.TOO_MANY_REQUESTS, FailureKind.RATE_LIMITED),
    Case(Fault.TOO_MANY_CONCURRENT, FailureKind.RATE_LIMITED),
    Case(Fault.INSUFFICIENT_FUNDS, FailureKind.OUT_OF_CREDITS),
    Case(Fault.V1_INSUFFICIENT_FUNDS, FailureKind.OUT_OF_CREDITS),
    Case(Fault.V1_DELEGATE_ERROR, FailureKind.OUT_OF_CREDITS),
    Case(Fault.USAGE_LIMITED_ANSWER, FailureKind.OUT_OF_CREDITS),
    Case(Fault.PERMISSION_DENIED, FailureKind.MODEL_FORBIDDEN),
    Case(Fault.UPSTREAM_RATE_LIMITED, FailureKind.MODEL_DOWN),
    Case(Fault.UPSTREAM_PROVIDER_UNAVAILABLE, FailureKind.MODEL_DOWN),
    Case(Fault.UPSTREAM_FAILED, FailureKind.MODEL_DOWN),
    Case(Fault.UPSTREAM_AUTH_FAILED, FailureKind.MODEL_DOWN),
    Case(Fault.INTERNAL_ERROR, FailureKind.MODEL_DOWN),
    Case(
        Fault.STREAM_ERROR_ONLY,
        FailureKind.MODEL_DOWN,
        STREAM,
        {"message": '503 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'},
        label="vendor-503",
    ),
    Case(Fault.STREAM_ERROR_AFTER_TEXT, FailureKind.MODEL_DOWN, STREAM, label="vendor-429-after-text"),
    Case(Fault.MODEL_NOT_FOUND, FailureKind.MODEL_UNKNOWN),
    Case(Fault.V1_MODEL_NOT_FOUND, FailureKind.MODEL_UNKNOWN),
    Case(Fault.REAUTH_REQUIRED, FailureKind.AUTH),
    Case(Fault.TOKEN_AUTH_FAILED, FailureKind.AUTH),
    Case(Fault.TOKEN_MISSING, FailureKind.AUTH),
    Case(Fault.FORBIDDEN, FailureKind.AUTH),
    Case(Fault.EMAIL_CONFIRMATION_REQUIRED, FailureKind.EMAIL_UNCONFIRMED),
    Case(Fault.BAD_REQUEST, FailureKind.BAD_REQUEST),
    Case(Fault.MODERATION_FLAGGED, FailureKind.BAD_REQUEST),
    Case(Fault.UPSTREAM_BAD_REQUEST, FailureKind.BAD_REQUEST),
    # A stream names no model, so the stand-in is only recognisable in a whole answer.
    Case(Fault.ABUSE_STANDIN, FailureKind.BAD_REQUEST, WHOLE),
    Case(Fault.HTML_502, FailureKind.TRANSPORT),
    Case(Fault.INVALID_JSON, FailureKind.TRANSPORT),
    Case(Fault.DROP_CONNECTION, FailureKind.TRANSPORT),
    Case(Fault.STREAM_CUT_MID_LINE, FailureKind.TRANSPORT, STREAM),
    Case(Fault.STREAM_NO_USAGE, FailureKind.TRANSPORT, STREAM),
    Case(
        Fault.STREAM_ERROR_AFTER_TEXT,
        FailureKind.TRANSPORT,
        STREAM,
        {"message": "upstream connection reset"},
        label="no-status-after-text",
    ),
    Case(Fault.STALL_BEFORE_HEADERS, FailureKind.TRANSPORT, BOTH, {"seconds": 30.0}, STALL_TIMEOUTS),
    Case(Fault.STALL_MID_STREAM, FailureKind.TRANSPORT, STREAM, {"seconds": 30.0}, STALL_TIMEOUTS),
]

MATRIX = [
    pytest.param(case, stream, id=f"{case.label or case.fault.value}-{'stream' if stream else 'whole'}")
    for case in CASES
    for stream in case.streams
]

ACCOUNT_SCOPED = {
    FailureKind.RATE_LIMITED: Scope.ACCOUNT,
    FailureKind.OUT_OF_CREDITS: Scope.ACCOUNT,
    FailureKind.AUTH: Scope.ACCOUNT,
    FailureKind.EMAIL_UNCONFIRMED: Scope.ACCOUNT,
    FailureKind.MODEL_FORBIDDEN: Scope.ACCOUNT_MODEL,
    FailureKind.TRANSPORT: Scope.ACCOUNT_MODEL,
}

# A one-off refusal (the fault fires once) that the check after it contradicts: the account has
# credit, /whoami accepts the token. Only the pair is set aside, with the cooldown and the check
# named here; the account stays usable for everything else.
CONTRADICTED = {
    FailureKind.OUT_OF_CREDITS: (FailureKind.OUT_OF_CREDITS, "credit-check"),
    FailureKind.AUTH: (FailureKind.TRANSPORT, "account-check"),
}


def test_the_matrix_covers_every_failure_kind() -> None:
    assert {case.kind for case in CASES} == set(FailureKind)
    streamed = {case.kind for case in CASES if True in case.streams}
    whole = {case.kind for case in CASES if False in case.streams}
    assert streamed == whole == set(FailureKind)


@pytest.mark.parametrize(("case", "stream"), MATRIX)
async def test_fault_matrix(emulator: Emulator, home: Path, case: Case, stream: bool) -> None:
    overrides = base_overrides()
    if case.timeouts is not None:
        overrides["timeouts"] = case.timeouts
    async with world(emulator, home, **overrides) as w:
        paid, free = emulator.paid.username, emulator.free.username
        emulator.state.add_fault(case.fault, model=ASKED, account=paid, times=1, **case.params)

        if case.kind is FailureKind.BAD_REQUEST:
            with pytest.raises(BackendError) as caught:
                await w.chat(stream=stream)
            assert caught.value.kind is FailureKind.BAD_REQUEST
            assert w.chat_log() == [(w.model, paid)]  # nobody else would answer differently
            assert await w.cooldowns() == []
            assert f"could not get an answer for {ASKED!r}" in str(caught.value)
            return

        outcome = await w.chat(stream=stream)

        checks: list[tuple[str, str, str]] = []
        if case.kind in CONTRADICTED:
            answered_by = (w.model, free)  # same model, next account
            cooled, check = CONTRADICTED[case.kind]
            expected_cooldowns = [(Scope.ACCOUNT_MODEL, w.ids[paid], w.model, cooled)]
            checks = [("-", paid, check)]
        elif case.kind in ACCOUNT_SCOPED:
            answered_by = (w.model, free)  # same model, next account
            scope = ACCOUNT_SCOPED[case.kind]
            key_model = w.model if scope is Scope.ACCOUNT_MODEL else None
            expected_cooldowns = [(scope, w.ids[paid], key_model, case.kind)]
        else:
            answered_by = (w.free_model, paid)  # next model, same account
            expected_cooldowns = (
                [(Scope.MODEL, None, w.model, case.kind)] if case.kind is FailureKind.MODEL_DOWN else []
            )
        assert w.chat_log() == [(w.model, paid), answered_by]
        assert (outcome.model, outcome.account) == answered_by
        assert outcome.text == expected_text(answered_by[0])  # whole, nothing repeated
        assert [(a.model, a.account, a.outcome) for a in outcome.attempts] == [
            (w.model, paid, case.kind.value),
            *checks,
            (*answered_by, "ok"),
        ]
        assert await w.cooldowns() == expected_cooldowns
        assert outcome.model_requested == ASKED
        if answered_by[0] == w.model:
            assert outcome.fallback is None
            assert chat_text(outcome) == outcome.text
        else:
            note = f"answered by {w.free_model}, not {ASKED} because {w.model} failed ({case.kind.value})"
            assert outcome.fallback == note
            assert chat_text(outcome).splitlines()[0] == f"[{note}]"
        # Nothing is left in flight, on our side (once a finished request's settle time has
        # passed: see Pacer.release) or Puter's (whose count drops a moment after the last
        # byte, or once it notices that a client that gave up has gone).
        w.clock.advance(engine_of(w.backend).pacer.release_settle)
        for name in (paid, free):
            assert (await engine_of(w.backend).pacer.usage(w.ids[name])).in_flight == 0
        await settled(emulator)


async def settled(emulator: Emulator) -> None:
    """Wait (bounded) until the emulator has no request in flight."""
    names = [emulator.paid.username, emulator.free.username, emulator.temp.username]
    with anyio.fail_after(5):
        while any(emulator.state.in_flight(name) for name in names):  # noqa: ASYNC110 (another thread)
            await anyio.sleep(0.01)


# --- mid-stream failures -----------------------------------------------------------------------


async def test_a_stream_broken_midway_is_answered_whole_elsewhere(emulator: Emulator, home: Path) -> None:
    async with world(emulator, home, **base_overrides()) as w:
        paid, free = emulator.paid.username, emulator.free.username
        emulator.state.add_fault(
            Fault.STREAM_ERROR_AFTER_TEXT, model=ASKED, account=paid, text_lines=2, message="reset by peer"
        )
        deltas: list[str] = []
        outcome = await w.backend.chat(
            ChatCall.build(message=PROMPT, model=ASKED),
            on_progress=lambda progress: deltas.append(progress.delta or ""),
        )
    whole = expected_text(w.model)
    partial = "".join(text_pieces(whole)[:2])
    # The caller saw the broken attempt's text stream by (progress), but the answer it gets
    # is the second attempt's, once.
    assert "".join(deltas) == partial + whole
    assert outcome.text == whole
    assert [(a.account, a.outcome) for a in outcome.attempts] == [(paid, "transport"), (free, "ok")]
    assert w.chat_log() == [(w.model, paid), (w.model, free)]


async def test_when_nothing_completes_the_error_carries_the_partial_text(
    emulator: Emulator, home: Path
) -> None:
    async with world(emulator, home, **base_overrides(max_wait=0.0)) as w:
        emulator.state.add_fault(
            Fault.STREAM_ERROR_AFTER_TEXT, model=ASKED, times=None, text_lines=2, message="reset by peer"
        )
        with pytest.raises(BackendError) as caught:
            await w.chat(fallback=False)
    partial = "".join(text_pieces(expected_text(w.model))[:2])
    names = [emulator.paid.username, emulator.free.username, emulator.temp.username]
    assert w.chat_log() == [(w.model, name) for name in names]
    assert caught.value.partial_text == partial
    assert caught.value.kind is FailureKind.TRANSPORT
    message = str(caught.value)
    assert message.endswith("Partial answer received before the failure:\n" + partial)
    assert "Try again in" in message


# --- out of credits everywhere -----------------------------------------------------------------


async def test_out_of_credits_everywhere_stops_calling_until_the_recheck(
    emulator: Emulator, home: Path
) -> None:
    names = [emulator.paid.username, emulator.free.username, emulator.temp.username]
    for name in names:
        emulator.state.set_credits(name, 0.0)
    async with world(emulator, home, **base_overrides()) as w:
        with pytest.raises(BackendError) as first:
            await w.chat()
        assert w.chat_log() == [(w.model, name) for name in names]  # one request per account
        assert first.value.kind is FailureKind.OUT_OF_CREDITS
        assert "out of credits on every usable account" in str(first.value).lower()
        assert "Try again in 300 s" in str(first.value)
        assert await w.cooldowns() == sorted(
            ((Scope.ACCOUNT, w.ids[name], None, FailureKind.OUT_OF_CREDITS) for name in names), key=repr
        )

        emulator.state.clear_requests()
        with pytest.raises(BackendError) as second:
            await w.chat()
        assert w.chat_log() == [] and w.usage_log() == []  # not even a credit check yet
        assert second.value.kind is FailureKind.OUT_OF_CREDITS  # and the advice that goes with it
        assert "out of credits on every usable account" in str(second.value).lower()
        assert "Try again in 300 s" in str(second.value)

        # The re-check is due: one /metering/usage per account, and still no chat request.
        w.clock.advance(301)
        with pytest.raises(BackendError) as third:
            await w.chat()
        assert w.usage_log() == names
        assert w.chat_log() == []
        assert "Try again in 300 s" in str(third.value)

        # Two calls at once when the next re-check is due: still one check per account.
        w.clock.advance(301)
        emulator.state.clear_requests()
        failures: list[BackendError] = []

        async def call() -> None:
            try:
                await w.chat()
            except BackendError as failure:
                failures.append(failure)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(call)
                group.start_soon(call)
        assert sorted(w.usage_log(), key=str) == sorted(names)
        assert len(failures) == 2 and w.chat_log() == []

        # Credit is back on one account: the next due re-check finds it and that account answers.
        w.clock.advance(301)
        emulator.state.clear_requests()
        emulator.state.set_credits(emulator.temp.username, 0.25)
        outcome = await w.chat()
        assert w.usage_log() == names
        assert w.chat_log() == [(w.model, emulator.temp.username)]
        assert outcome.account == emulator.temp.username
        assert [a.outcome for a in outcome.attempts] == ["credit-check"] * 3 + ["ok"]


# --- a model that is down ----------------------------------------------------------------------


async def test_a_down_model_is_skipped_then_probed_by_exactly_one_request(
    emulator: Emulator, home: Path
) -> None:
    paid = emulator.paid.username
    async with world(emulator, home, **base_overrides()) as w:
        emulator.state.add_fault(Fault.UPSTREAM_PROVIDER_UNAVAILABLE, model=ASKED, times=1)
        first = await w.chat()
        assert first.model == w.free_model
        assert w.chat_log() == [(w.model, paid), (w.free_model, paid)]

        # The next call does not ask the model at all, and says why another one answered.
        emulator.state.clear_requests()
        second = await w.chat()
        assert w.chat_log() == [(w.free_model, paid)]
        assert second.model == w.free_model
        note = f"answered by {w.free_model}, not {ASKED} because {w.model} is cooling down (model_down)"
        assert second.fallback == note
        assert chat_text(second).startswith(f"[{note}]\n")

        # Past the probe time, concurrent calls: exactly one of them probes the model.
        w.clock.advance(61)
        emulator.state.clear_requests()
        emulator.state.stream_delay = 0.05  # keep the probe in flight while the others pick
        outcomes: list[ChatOutcome] = []

        async def call() -> None:
            outcomes.append(await w.chat())

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                for _ in range(3):
                    group.start_soon(call)
        asked = [model for model, _ in w.chat_log()]
        assert asked.count(w.model) == 1
        assert sorted(o.model for o in outcomes) == sorted([w.model, w.free_model, w.free_model])
        probe = next(o for o in outcomes if o.model == w.model)
        assert probe.fallback is None and probe.text == expected_text(w.model)

        # The probe succeeded: the model is back for everyone.
        assert await w.cooldowns() == []
        emulator.state.clear_requests()
        assert (await w.chat()).model == w.model
        assert w.chat_log() == [(w.model, paid)]


async def test_a_failed_probe_keeps_the_model_cooling(emulator: Emulator, home: Path) -> None:
    paid = emulator.paid.username
    async with world(emulator, home, **base_overrides()) as w:
        emulator.state.add_fault(Fault.UPSTREAM_FAILED, model=ASKED, times=2)
        await w.chat()
        w.clock.advance(61)
        emulator.state.clear_requests()
        probed = await w.chat()  # the probe fails: answered by the free model
        assert w.chat_log() == [(w.model, paid), (w.free_model, paid)]
        assert probed.model == w.free_model
        emulator.state.clear_requests()
        await w.chat()  # and the next call skips the model again
        assert w.chat_log() == [(w.free_model, paid)]
        assert await w.cooldowns() == [(Scope.MODEL, None, w.model, FailureKind.MODEL_DOWN)]


# --- the fallback line -------------------------------------------------------------------------


async def test_no_fallback_line_when_the_named_model_answers_after_a_rotation(
    emulator: Emulator, home: Path
) -> None:
    async with world(emulator, home, **base_overrides()) as w:
        emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, model=ASKED, account=emulator.paid.username)
        outcome = await w.chat()
    assert outcome.model == w.model and outcome.account == emulator.free.username
    assert outcome.fallback is None
    assert chat_text(outcome) == expected_text(w.model)


async def test_fallback_off_fails_instead_of_answering_with_another_model(
    emulator: Emulator, home: Path
) -> None:
    overrides = base_overrides(max_wait=0.0)
    async with world(emulator, home, **overrides) as w:
        emulator.state.add_fault(Fault.UPSTREAM_FAILED, model=ASKED, times=1)
        with pytest.raises(BackendError) as caught:
            await w.chat(fallback=False)
    assert w.chat_log() == [(w.model, emulator.paid.username)]
    assert caught.value.kind is FailureKind.MODEL_DOWN


async def test_rate_limits_escalate_and_reset_on_success(emulator: Emulator, home: Path) -> None:
    overrides = {**base_overrides(), "cooldowns": CooldownSettings(rate_limited=(10.0, 30.0, 60.0))}
    paid = emulator.paid.username
    async with world(emulator, home, **overrides) as w:
        account = w.ids[paid]

        async def rate_limit_left() -> float:
            (cooldown,) = [
                c for c in await engine_of(w.backend).book.snapshot() if c.kind is FailureKind.RATE_LIMITED
            ]
            assert cooldown.account == account
            return cooldown.until - w.clock()

        emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, account=paid)
        await w.chat()
        assert 9 < await rate_limit_left() <= 10
        w.clock.advance(11)
        emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, account=paid)
        await w.chat()
        assert 29 < await rate_limit_left() <= 30  # a repeat escalates
        w.clock.advance(31)
        emulator.state.clear_requests()
        outcome = await w.chat()  # paid answers: the escalation resets
        assert outcome.account == paid
        emulator.state.add_fault(Fault.TOO_MANY_REQUESTS, account=paid)
        await w.chat()
        assert 9 < await rate_limit_left() <= 10


def requests(emulator: Emulator) -> list[tuple[str, int | None]]:
    return [(r.path, r.status) for r in emulator.state.requests if r.path in ("/drivers/call", "/whoami")]


async def test_accounts_that_must_sign_in_again_are_not_called_and_the_error_says_so(
    emulator: Emulator, home: Path
) -> None:
    names = [emulator.paid.username, emulator.free.username, emulator.temp.username]
    async with world(emulator, home, **base_overrides()) as w:
        emulator.state.clear_requests()  # the set-up's own (the model list)
        for name in names:
            emulator.state.revoke_session(name)  # signed out on another device
        with pytest.raises(BackendError) as first:
            await w.chat()
        # One refused call per account, each confirmed by one refused /whoami.
        assert requests(emulator) == [("/drivers/call", 401), ("/whoami", 401)] * 3
        emulator.state.clear_requests()
        w.clock.advance(60)  # a refused token does not wear off with time
        with pytest.raises(BackendError) as second:
            await w.chat()
        assert requests(emulator) == []
    for failure in (first.value, second.value):
        assert failure.kind is FailureKind.AUTH
        assert "run `puter-mcp login` again" in describe_error(failure)
    assert "signed out elsewhere" in str(first.value)
