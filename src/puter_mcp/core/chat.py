"""The chat pipeline: resolve the target, route over candidates, assemble the outcome.

`ChatPipeline.stream` is the one way a chat runs (`Backend.chat_stream`). The router runs in a
task of its own and hands each event to the caller through a channel without a buffer, so an
event counts as delivered when the caller has taken it. That is what makes the rule of
`puter_mcp.core.events` exact: until the first content event is taken, a failure is the
router's business (it tries the next candidate, silently); after it, the stream ends with
`StreamFailed`, unless the caller asked to restart.

`ChatPipeline.deliver` runs the same pipeline, with the same events in the same order, for a
caller that takes each event in a callback (`Backend.chat`, which folds them into the whole
answer). There an event is delivered when the callback returns, so the rule holds as exactly,
and no task or channel is needed: handing an event across a channel costs a few turns of the
event loop, and a call makes several events (see bench/README.md for what that saves).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Protocol

import anyio
from anyio.abc import ObjectSendStream

from puter_mcp.accounts.secrets import redact
from puter_mcp.core.accounts_view import AccountsView
from puter_mcp.core.calls import ChatCall
from puter_mcp.core.catalogue_cache import CatalogueCache
from puter_mcp.core.errors import (
    BackendError,
    BadRequest,
    ModelNotFound,
    NoCandidateLeft,
    NotSignedIn,
    UpstreamRefused,
)
from puter_mcp.core.events import (
    Answering,
    AttemptStarted,
    ChatEvent,
    Finished,
    ReasoningDelta,
    StreamFailed,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from puter_mcp.core.results import AttemptRecord, AutoInfo, ChatOutcome, ToolCallRecord, UsageInfo
from puter_mcp.core.upstream import chat_request
from puter_mcp.puter import wire
from puter_mcp.puter.catalogue import Catalogue, ModelInfo
from puter_mcp.puter.client import PuterClient
from puter_mcp.puter.errors import FailureKind, PuterError, account_state
from puter_mcp.routing import chains
from puter_mcp.routing.router import NOT_FAILURES, AccountRef, AttemptLog, Routed, Router, RoutingFailed
from puter_mcp.settings import Settings

__all__ = ["ChatPipeline", "EventSink"]

_RESOLUTIONS_KEPT = 256
"""Names resolved per catalogue before the memory starts again (callers may send any name)."""


class EventSink(Protocol):
    """Where the pipeline hands its events: a channel's send end, or a caller's own callback.

    An event counts as delivered once `send` has returned.
    """

    async def send(self, item: ChatEvent, /) -> None: ...


@dataclass(frozen=True)
class _Target:
    """What one call resolved to before any request: the accounts, the chain, the call."""

    call: ChatCall
    requested: str
    accounts: list[AccountRef]
    catalogue: Catalogue
    resolved: chains.ResolvedChain[ModelInfo]
    auto: AutoInfo | None


@dataclass(frozen=True)
class _Timed:
    """A chat result with the time its first token took, for the attempt records."""

    result: wire.ChatResult
    ttft_ms: float | None


@dataclass
class _Progress:
    """What the caller has been given so far in this call."""

    attempts: int = 0
    last_failure: str = ""
    content_delivered: bool = False
    """Content reached the caller (in any attempt): a later failure ends the stream."""
    received: list[str] = field(default_factory=list)
    """The text of the attempt in progress: when the call's deadline cuts it, the router gets no
    error to carry it, and it must not be lost."""


class ChatPipeline:
    """Runs chat calls over the router, the accounts and the catalogue of one backend."""

    def __init__(
        self,
        settings: Settings,
        client: PuterClient,
        router: Router,
        accounts: AccountsView,
        catalogue: CatalogueCache,
        every_chain: Mapping[str, chains.VirtualModel],
        *,
        sandbox: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.client = client
        self.router = router
        self.accounts = accounts
        self.catalogue = catalogue
        self.chains = every_chain
        self.sandbox = sandbox
        self._clock = clock
        # What each name resolved to in the catalogue `_resolved_in`: a name's models depend
        # only on the catalogue, the chains, the free fallback and the call's needs (images,
        # tools), and a catalogue is never changed (a refresh makes a new one), so most calls
        # skip resolving the same name again.
        self._resolved_in: Catalogue | None = None
        self._resolutions: dict[tuple[str, bool, chains.Needs], chains.ResolvedChain[ModelInfo]] = {}

    async def stream(
        self, call: ChatCall, *, restart_after_output: bool = False
    ) -> AsyncGenerator[ChatEvent, None]:
        """The events of one call (see `puter_mcp.core.events`).

        Raises:
            BackendError: before any content: nobody can answer (`NotSignedIn`,
                `ModelNotFound`, `NoCandidateLeft`, `UpstreamRefused`).
        """
        target = await self._resolve(call)
        sender, receiver = anyio.create_memory_object_stream[ChatEvent](0)
        failure: list[Exception] = []
        closed = False
        # The producer never raises (it hands its errors over through `failure`), so this task
        # group's scope is only ever cancelled here, by the caller closing the stream: no
        # cancellation leaks into the caller's code between two events.
        async with anyio.create_task_group() as group:
            group.start_soon(self._produce, target, sender, restart_after_output, failure)
            with receiver:
                try:
                    async for event in receiver:
                        yield event
                except GeneratorExit:
                    # The caller stopped early: end the request now. GeneratorExit is raised
                    # again outside the group, which would otherwise wrap it in a group.
                    closed = True
                    group.cancel_scope.cancel()
        if closed:
            raise GeneratorExit
        if failure:
            raise failure[0]

    # -- resolve ---------------------------------------------------------------------------

    async def _resolve(self, call: ChatCall) -> _Target:
        accounts = self.accounts.routable()
        if not accounts:
            _saved, _default, problem = self.accounts.saved()
            hint = f" ({problem})" if problem else ""
            raise NotSignedIn(f"not signed in: no Puter account can be used{hint}", problem=problem)
        if await self.accounts.learn_tiers(accounts):
            accounts = self.accounts.routable()
        catalogue = await self.catalogue.catalogue()
        requested = call.model or self.settings.default_model
        auto: AutoInfo | None = None
        target = requested
        fallback_to_free = self.settings.fallback_to_free if call.fallback is None else call.fallback
        try:
            if requested.casefold() == chains.AUTO:
                choice, resolved = chains.resolve_auto(
                    call.last_user_message(),
                    catalogue,
                    chains=self.chains,
                    fallback_to_free=fallback_to_free,
                    needs=call.needs(),
                )
                auto = AutoInfo(category=choice.category, chain=choice.chain, reason=choice.reason)
                target = choice.chain
                if call.reasoning_effort is None and choice.reasoning_effort:
                    call = call.model_copy(update={"reasoning_effort": choice.reasoning_effort})
            else:
                resolved = self._resolve_name(target, catalogue, fallback_to_free, call.needs())
        except chains.UnmetNeedsError as exc:
            raise BadRequest(str(exc), argument="model") from exc
        except chains.UnknownModelError as exc:
            closest = f"; closest: {', '.join(exc.closest)}" if exc.closest else ""
            raise ModelNotFound(
                f"model {requested!r} not found{closest}.", model=requested, closest=exc.closest
            ) from exc
        if not resolved.models:
            raise ModelNotFound(
                f"none of the models of {target!r} is in Puter's catalogue today"
                + (f" (skipped: {', '.join(resolved.skipped)})" if resolved.skipped else "")
                + ".",
                model=target,
            )
        return _Target(call, requested, accounts, catalogue, resolved, auto)

    def _resolve_name(
        self, name: str, catalogue: Catalogue, fallback_to_free: bool, needs: chains.Needs
    ) -> chains.ResolvedChain[ModelInfo]:
        """`chains.resolve`, remembered per catalogue (a name that fails to resolve is not)."""
        if catalogue is not self._resolved_in:
            self._resolved_in = catalogue
            self._resolutions.clear()
        key = (name, fallback_to_free, needs)
        resolved = self._resolutions.get(key)
        if resolved is None:
            resolved = chains.resolve(
                name,
                catalogue,
                chains=self.chains,
                fallback_to_free=fallback_to_free,
                closest=catalogue.closest,
                needs=needs,
            )
            if len(self._resolutions) >= _RESOLUTIONS_KEPT:
                self._resolutions.clear()
            self._resolutions[key] = resolved
        return resolved

    # -- route -----------------------------------------------------------------------------

    async def deliver(self, call: ChatCall, out: EventSink, *, restart_after_output: bool = False) -> None:
        """Run one call, handing each of its events to `out` (the events of `stream`, in the
        same order, the last one `Finished` or `StreamFailed`), in the caller's own task.

        Raises:
            BackendError: before any content: nobody can answer (as `stream` raises).
            Exception: whatever `out.send` raises; the request is ended at once.
        """
        await self._run(await self._resolve(call), out, restart_after_output)

    async def _produce(
        self,
        target: _Target,
        out: ObjectSendStream[ChatEvent],
        restart_after_output: bool,
        failure: list[Exception],
    ) -> None:
        """`_run` in the stream's own task: its errors go to `failure` (the stream raises them
        where the caller iterates, not out of a task group)."""
        async with out:
            try:
                await self._run(target, out, restart_after_output)
            except Exception as error:
                failure.append(error)

    async def _run(self, target: _Target, out: EventSink, restart_after_output: bool) -> None:
        """Route the call, sending its events to `out`; a failure before any content is
        raised, one after it ends the events with `StreamFailed`."""
        progress = _Progress()
        try:
            outcome = await self._route(target, out, progress, restart_after_output)
        except BackendError as error:
            if not progress.content_delivered:
                raise
            await out.send(StreamFailed(error))
            return
        await out.send(Finished(outcome))

    async def _route(
        self,
        target: _Target,
        out: EventSink,
        progress: _Progress,
        restart_after_output: bool,
    ) -> ChatOutcome:
        """Route the call over the chain's models and the accounts."""
        call, resolved = target.call, target.resolved

        async def send(model: str, account: AccountRef) -> _Timed:
            progress.attempts += 1
            progress.received.clear()
            await out.send(AttemptStarted(model, account.name, progress.attempts, progress.last_failure))
            try:
                return await self._attempt(call, model, account, out, progress)
            except PuterError as exc:
                progress.last_failure = exc.kind.value
                raise

        try:
            routed = await self.router.route(
                [model.id for model in resolved.models],
                target.accounts,
                send,
                check_credit=self.accounts.has_credit,
                check_account=self.accounts.refusal,
                replay_after_output=restart_after_output,
                subscriber_only={model.id for model in resolved.models if model.subscriber_only},
                on_success=lambda timed: {
                    "ttft_ms": timed.ttft_ms,
                    "input_tokens": timed.result.usage.input_tokens,
                    "output_tokens": timed.result.usage.output_tokens,
                    "cost_usd": timed.result.cost_usd,
                },
                request_id=secrets.token_hex(6),
            )
        except RoutingFailed as failure:
            if not failure.partial_text and progress.received:
                failure.partial_text = "".join(progress.received)
            raise self._failure(target, failure) from failure
        return self._outcome(target, routed)

    def _outcome(self, target: _Target, routed: Routed[_Timed]) -> ChatOutcome:
        """The answer with everything a caller needs to trust it: who answered, why not the
        model named (`fallback`), what was tried, what it cost."""
        resolved = target.resolved
        result = routed.value.result
        answered = result.model or routed.model
        return ChatOutcome(
            text=result.text,
            tool_calls=[
                ToolCallRecord(id=c.id, name=c.name, arguments=c.arguments, arguments_json=c.arguments_json)
                for c in result.tool_calls
            ],
            model_requested=target.requested,
            model=answered,
            chain=resolved.chain,
            auto=target.auto,
            account=routed.account.name,
            finish_reason=result.finish_reason,
            usage=UsageInfo(
                input_tokens=result.usage.input_tokens,
                output_tokens=result.usage.output_tokens,
                total_tokens=result.usage.total_tokens,
            ),
            cost_usd=result.cost_usd,
            reasoning=result.reasoning,
            fallback=_fallback_note(
                target.requested,
                resolved.chain,
                resolved.models[0],
                routed.model,
                answered,
                routed.attempts,
                target.catalogue,
                passed_over=routed.passed_over,
            ),
            attempts=[
                AttemptRecord(
                    model=a.model, account=a.account, outcome=a.outcome, ms=round(a.ms, 1), message=a.message
                )
                for a in routed.attempts
            ],
            waited_s=round(routed.waited_s, 3),
            sandbox=self.sandbox,
        )

    async def _attempt(
        self,
        call: ChatCall,
        model: str,
        account: AccountRef,
        out: EventSink,
        progress: _Progress,
    ) -> _Timed:
        """One upstream request, its events passed on as they come."""
        request = chat_request(call, model)
        started = time.monotonic()
        accumulator = wire.ChatAccumulator(max_tokens=request.max_tokens)
        ttft: float | None = None
        relay = _Relay(out, Answering(model, account.name), progress)
        try:
            if not call.stream:
                result = await self.client.chat(request, token=account.token)
                for event in wire.events_from_result(result):
                    await relay.send(event)
                return _Timed(result, (time.monotonic() - started) * 1000)
            # `aclosing`: if the caller stops (a progress callback writing to a closed pipe),
            # the response is released now, not whenever the generator is collected.
            async with aclosing(self.client.chat_stream(request, token=account.token)) as events:
                async for event in events:
                    accumulator.feed(event)
                    if ttft is None and isinstance(event, wire.TextDelta):
                        ttft = (time.monotonic() - started) * 1000
                    await relay.send(event)
        except PuterError as exc:
            if not exc.partial_text and accumulator.text:
                exc.partial_text = accumulator.text
            exc.after_output = relay.started
            raise
        return _Timed(accumulator.result(model=model), ttft)

    # -- failures --------------------------------------------------------------------------

    def _failure(self, target: _Target, failure: RoutingFailed) -> BackendError:
        """The error a front end words: what was tried, why it failed, when to try again."""
        lines = [f"could not get an answer for {target.requested!r}: {failure.message.rstrip('.')}."]
        if failure.kind is FailureKind.OUT_OF_CREDITS:
            _state, advice = account_state(failure.kind, self.settings.gui_origin)
            lines.append(f"Out of credits on every usable account: {advice.split(': ', 1)[-1]}.")
        elif failure.kind is FailureKind.AUTH:
            lines.append("An account's sign-in is no longer valid.")
        elif failure.kind is FailureKind.EMAIL_UNCONFIRMED:
            _state, advice = account_state(failure.kind, self.settings.gui_origin)
            lines.append(f"{advice[0].upper()}{advice[1:]}.")
        if failure.retry_at is not None:
            seconds = max(0.0, failure.retry_at - self._clock())
            lines.append(f"Try again in {seconds:.0f} s.")
        tried = [a for a in failure.attempts if a.outcome not in NOT_FAILURES]
        if tried:
            lines.append(
                "Tried: "
                + "; ".join(
                    f"{a.model} on {a.account}: {a.outcome}" + (f" ({a.message})" if a.message else "")
                    for a in tried[:8]
                )
            )
        tokens = [account.token for account in target.accounts]
        summary = redact("\n".join(lines), tokens)
        message = summary
        if failure.partial_text:
            message = redact(
                "\n".join([*lines, "Partial answer received before the failure:\n" + failure.partial_text]),
                tokens,
            )
        if failure.kind is FailureKind.BAD_REQUEST:
            return UpstreamRefused(message, partial_text=failure.partial_text, summary=summary)
        attempts = [
            AttemptRecord(
                model=a.model, account=a.account, outcome=a.outcome, ms=round(a.ms, 1), message=a.message
            )
            for a in failure.attempts
        ]
        return NoCandidateLeft(
            message,
            kind=failure.kind,
            retry_at=failure.retry_at,
            partial_text=failure.partial_text,
            attempts=attempts,
            summary=summary,
        )


class _Relay:
    """Turns Puter's stream events into the caller's, announcing the answering candidate once,
    right before its first content."""

    __slots__ = ("_answering", "_out", "_progress", "_tool_calls", "started")

    def __init__(self, out: EventSink, answering: Answering, progress: _Progress) -> None:
        self._out = out
        self._answering = answering
        self._progress = progress
        self._tool_calls = 0
        self.started = False

    async def send(self, event: wire.StreamEvent) -> None:
        converted: ChatEvent
        match event:
            case TextDelta(text=text):
                self._progress.received.append(text)
                converted = event  # the same object: nothing to convert
            case ReasoningDelta():
                converted = event
            case wire.ToolCallEvent(call=call):
                # Puter sends each tool call whole: one delta carries all of it.
                converted = ToolCallDelta(self._tool_calls, call.id, call.name, call.arguments_json)
                self._tool_calls += 1
            case wire.UsageEvent(usage=usage, cost_usd=cost):
                await self._out.send(UsageUpdate(usage.input_tokens, usage.output_tokens, cost))
                return
            case _:
                return
        if not self.started:
            self.started = True
            await self._out.send(self._answering)
        await self._out.send(converted)
        self._progress.content_delivered = True


def _same_model(catalogue: Catalogue, asked: str, answered: str) -> bool:
    """Puter reports canonical ids (``gpt-5-nano-2025-08-07`` for ``gpt-5-nano``): match them back."""
    if asked.lower() == answered.lower():
        return True
    found_asked = catalogue.find(asked)
    found_answered = catalogue.find(answered)
    if found_asked is not None and found_answered is not None:
        return found_asked.id == found_answered.id
    return answered.lower().startswith(asked.lower())


def _fallback_note(
    requested: str,
    chain: str | None,
    first: ModelInfo,
    routed_model: str,
    answered: str,
    attempts: Sequence[AttemptLog],
    catalogue: Catalogue,
    *,
    passed_over: Mapping[str, Sequence[str]] | None = None,
) -> str | None:
    """The first line of an answer that did not come from the model the caller named.

    It says why the named model did not answer: it failed during this call, or an earlier
    call left it cooling down (or unknown to Puter) so that this one did not ask it at all.
    """
    failures = [a for a in attempts if a.outcome not in NOT_FAILURES]
    why = ""
    first_failures = [a for a in failures if a.model == first.id]
    skipped = (passed_over or {}).get(first.id)
    if first_failures:
        why = f" because {first.id} failed ({', '.join(sorted({a.outcome for a in first_failures}))})"
    elif skipped:
        state = (
            "is unknown to Puter" if list(skipped) == [FailureKind.MODEL_UNKNOWN.value] else "is cooling down"
        )
        why = f" because {first.id} {state} ({', '.join(skipped)})"
    if chain is not None:
        # A virtual model never names the model that answers, so the line is always there.
        label = requested if requested == chain else f"{requested} ({chain})"
        if routed_model == first.id:
            return f"{label} answered with {answered}"
        return f"{label} answered with {answered}, not its first choice {first.id}{why}"
    if _same_model(catalogue, routed_model, answered) and routed_model == first.id:
        return None
    return f"answered by {answered}, not {requested}{why}"
