"""What a front end asks the backend: a chat call and a catalogue query.

`ChatCall.build` checks the arguments together and raises `BadRequest` with a sentence that
says how to fix them; every front end builds its calls there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from puter_mcp.core.errors import BadRequest

__all__ = ["ChatCall", "ModelsQuery", "Turn"]


class Turn(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str


class ChatCall(BaseModel):
    """One chat request as the front ends give it."""

    messages: list[Turn] = Field(min_length=1)
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    # Strict: `true` or `12.0` is a mistake in the caller, not a number of tokens (pydantic would
    # otherwise turn them into 1 and 12). Every front end builds its call here.
    max_tokens: int | None = Field(default=None, ge=1, strict=True)
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    fallback: bool | None = None
    stream: bool = True
    """Stream from Puter (stalls are noticed sooner, progress can be reported); a
    non-streamed request is answered whole and names the model that answered."""

    @classmethod
    def build(
        cls,
        *,
        message: str | None = None,
        messages: Sequence[Turn] | None = None,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        reasoning_effort: str | None = None,
        thinking_budget: int | None = None,
        fallback: bool | None = None,
        stream: bool = True,
    ) -> ChatCall:
        """Check the arguments together, with messages that say how to fix them."""
        if message is not None and messages:
            raise BadRequest("give either `message` or `messages`, not both", argument="messages")
        if message is None and not messages:
            raise BadRequest("nothing to ask: give `message` (a string) or `messages` (a conversation)")
        turns = [Turn(role="user", content=message)] if message is not None else list(messages or [])
        if message is not None and not message.strip():
            raise BadRequest("`message` is empty (or only blanks): write the question to ask")
        if not any(turn.role == "user" for turn in turns):
            raise BadRequest("`messages` needs at least one message with role `user`")
        if system:
            turns = [Turn(role="system", content=system), *turns]
        from puter_mcp.routing.chains import reasoning_effort as effort_of

        try:
            effort = effort_of(reasoning_effort, thinking_budget)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        try:
            return cls(
                messages=turns,
                model=model.strip() if model else None,
                temperature=temperature,
                max_tokens=max_tokens,
                reasoning_effort=effort,  # type: ignore[arg-type]
                fallback=fallback,
                stream=stream,
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise BadRequest(f"bad chat argument `{where}`: {error['msg']}", argument=where) from exc

    def last_user_message(self) -> str:
        for turn in reversed(self.messages):
            if turn.role == "user":
                return turn.content
        return ""


class ModelsQuery(BaseModel):
    query: str | None = None
    provider: str | None = None
    tool_calling: bool | None = None
    image_input: bool | None = None
    free: bool | None = None
    virtual: bool = False
    limit: int = 10
    offset: int = 0
