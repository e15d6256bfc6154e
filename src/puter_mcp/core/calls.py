"""What a front end asks the backend: a chat call and a catalogue query.

A chat call is a conversation in OpenAI's message shapes, which Puter accepts for every model
(docs/puter-protocol.md, "Chat"):

```
ChatCall
├── messages: Turn*       role system | user | assistant | tool
│   ├── content           a string, or parts: TextPart, ImagePart (user turns),
│   │                     ReasoningPart (assistant turns: what a model thought, and which model)
│   ├── tool_calls        assistant turns: ToolCall (id, name, arguments as JSON text)
│   └── tool_call_id      tool turns: the call this turn answers
├── tools: Tool*          functions the model may call (name, description, JSON schema)
├── tool_choice           auto | none | required | NamedTool
└── stop, temperature, max_tokens, reasoning_effort, model, fallback, stream
```

Every shape is checked when the call is made: `ChatCall.parse` (a whole call, as an API
gateway receives it) and `ChatCall.build` (the MCP tool's and the CLI's arguments) raise
`BadRequest` with a sentence that says what is wrong and where.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from puter_mcp.core.errors import BadRequest
from puter_mcp.puter.effort import ReasoningEffort
from puter_mcp.puter.effort import reasoning_effort as effort_of

if TYPE_CHECKING:
    from puter_mcp.routing.chains import Needs

__all__ = [
    "ChatCall",
    "ContentPart",
    "ImagePart",
    "ModelsQuery",
    "NamedTool",
    "ReasoningEffort",
    "ReasoningPart",
    "Role",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "Turn",
]

Role = Literal["system", "user", "assistant", "tool"]

# Vendors name functions with these characters only (OpenAI and Anthropic agree on 64).
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DATA_URL = re.compile(r"data:(image/[A-Za-z0-9.+-]+);base64,(.*)", re.DOTALL)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextPart(_Strict):
    type: Literal["text"] = "text"
    text: str


class ImagePart(_Strict):
    """An image, by an https URL the model's vendor fetches, or inline as a ``data:`` URL
    (``data:image/png;base64,...``)."""

    type: Literal["image"] = "image"
    url: str

    @field_validator("url")
    @classmethod
    def _https_or_data(cls, url: str) -> str:
        if url.startswith("data:"):
            match = _DATA_URL.fullmatch(url)
            if match is None:
                raise ValueError(
                    "a data: URL image must read data:image/<type>;base64,<data> "
                    f"(got {url[:40]!r}{'...' if len(url) > 40 else ''})"
                )
            try:
                base64.b64decode(match.group(2), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("the data: URL image's data is not valid base64") from None
            return url
        if re.fullmatch(r"https://[^\s/?#]+[^\s]*", url) is None:
            shown = url if len(url) <= 60 else url[:57] + "..."
            raise ValueError(
                f"an image must be an https URL or a data: URL (data:image/png;base64,...), got {shown!r}"
            )
        return url

    @property
    def media_type(self) -> str | None:
        """The media type of a data: URL image (None for an https URL)."""
        match = _DATA_URL.fullmatch(self.url)
        return match.group(1) if match else None


class ReasoningPart(_Strict):
    """What a model thought before answering, kept in an assistant turn.

    `model` records which model produced it: vendors sign reasoning per model (Anthropic's
    thinking blocks), and a block from another model fails the request, so it is sent back
    upstream only to the model that produced it, and only with its `signature`
    (`puter_mcp.core.upstream`).
    """

    type: Literal["reasoning"] = "reasoning"
    text: str
    model: str = Field(min_length=1)
    signature: str | None = None


ContentPart = Annotated[TextPart | ImagePart | ReasoningPart, Field(discriminator="type")]


class ToolCall(_Strict):
    """A tool call an assistant turn made. `arguments` is the JSON text of an object (an object
    given here is written as JSON)."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str = "{}"

    @field_validator("arguments", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return json.dumps(value, separators=(",", ":"))
        if isinstance(value, str):
            try:
                decoded = json.loads(value) if value.strip() else {}
            except ValueError:
                raise ValueError("a tool call's arguments must be the JSON text of an object") from None
            if not isinstance(decoded, dict):
                raise ValueError("a tool call's arguments must be a JSON object")
        return value

    def parsed_arguments(self) -> dict[str, Any]:
        return json.loads(self.arguments) if self.arguments.strip() else {}


class Tool(_Strict):
    """A function the model may call: its name, what it does, and its arguments' JSON schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if _TOOL_NAME.fullmatch(name) is None:
            raise ValueError(
                f"a tool name is 1-64 letters, digits, '_' or '-', got {name!r}",
            )
        return name

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        kind = schema.get("type", "object")
        if kind != "object":
            raise ValueError(f"a tool's parameters must be a JSON schema of type object, got type {kind!r}")
        try:
            # Python's JSON parser reads NaN and Infinity, which JSON itself has no word for.
            json.dumps(schema, allow_nan=False)
        except ValueError:
            raise ValueError(
                "a tool's parameters must be JSON: NaN and infinity are not JSON numbers"
            ) from None
        return schema


class NamedTool(_Strict):
    """`tool_choice` naming the one function the model must call."""

    name: str = Field(min_length=1)


ToolChoice = Literal["auto", "none", "required"] | NamedTool


class Turn(_Strict):
    """One message of a conversation."""

    role: Role
    content: str | list[ContentPart] = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    """Assistant turns: the tools the model called."""
    tool_call_id: str | None = None
    """Tool turns: the id of the call this turn answers."""

    @model_validator(mode="after")
    def _consistent(self) -> Turn:
        if self.role == "tool":
            if not self.tool_call_id:
                raise ValueError("a tool turn needs `tool_call_id`: the id of the tool call it answers")
        elif self.tool_call_id is not None:
            raise ValueError(f"`tool_call_id` belongs on tool turns, not on a {self.role} turn")
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"`tool_calls` belong on assistant turns, not on a {self.role} turn")
        if len({call.id for call in self.tool_calls}) != len(self.tool_calls):
            raise ValueError("two tool calls of one turn have the same id")
        for part in self.parts:
            if isinstance(part, ImagePart) and self.role != "user":
                raise ValueError(f"images go in user turns, not in a {self.role} turn")
            if isinstance(part, ReasoningPart) and self.role != "assistant":
                raise ValueError(f"reasoning goes in assistant turns, not in a {self.role} turn")
        said = (
            self.content.strip()
            if isinstance(self.content, str)
            else any(not isinstance(part, TextPart) or part.text.strip() for part in self.content)
        )
        if not said and not self.tool_calls:
            raise ValueError(f"{'an' if self.role == 'assistant' else 'a'} {self.role} turn needs content")
        return self

    @property
    def parts(self) -> list[TextPart | ImagePart | ReasoningPart]:
        return [] if isinstance(self.content, str) else list(self.content)

    @property
    def text(self) -> str:
        """The turn's text: the string, or its text parts joined."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content if isinstance(part, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        return [part for part in self.parts if isinstance(part, ImagePart)]


def _error_sentence(exc: ValidationError, within: str = "") -> tuple[str, str]:
    """The most telling complaint of a validation error, as (sentence, where).

    A value that may be a string or a list of parts fails both ways; the deepest complaint
    (inside the parts) is the one that says what is wrong, not "should be a valid string".
    """
    error = max(exc.errors(), key=lambda item: len(item["loc"]))
    # Drop pydantic's names for union branches ("list[tagged-union[...]]", "image", "str").
    where = ".".join(
        str(part)
        for part in error["loc"]
        if not re.search(r"[\[(]|^function-", str(part))
        and str(part) not in ("text", "image", "reasoning", "str")
    )
    message = error["msg"].removeprefix("Value error, ")
    where = ".".join(part for part in (within, where) if part)
    return (f"bad chat argument `{where}`: {message}" if where else f"bad chat call: {message}"), where


class ChatCall(_Strict):
    """One chat request as the front ends give it."""

    messages: list[Turn] = Field(min_length=1)
    model: str | None = None
    # Strict too: `true` or `"0.5"` is a mistake in the caller (an int is a number, and passes).
    temperature: float | None = Field(default=None, ge=0, le=2, strict=True, allow_inf_nan=False)
    # Strict: `true` or `12.0` is a mistake in the caller, not a number of tokens (pydantic would
    # otherwise turn them into 1 and 12). Every front end builds its call here.
    max_tokens: int | None = Field(default=None, ge=1, strict=True)
    reasoning_effort: ReasoningEffort | None = None
    tools: list[Tool] = Field(default_factory=list)
    tool_choice: ToolChoice | None = None
    stop: str | list[str] | None = None
    fallback: bool | None = None
    stream: bool = True
    """Stream from Puter (stalls are noticed sooner, progress can be reported); a
    non-streamed request is answered whole and names the model that answered."""

    @field_validator("stop")
    @classmethod
    def _stop(cls, stop: str | list[str] | None) -> str | list[str] | None:
        words = [stop] if isinstance(stop, str) else stop or []
        if any(not word for word in words):
            raise ValueError("a stop sequence cannot be empty")
        return stop

    @model_validator(mode="after")
    def _conversation(self) -> ChatCall:
        names = [tool.name for tool in self.tools]
        if len(set(names)) != len(names):
            raise ValueError("two tools have the same name")
        if isinstance(self.tool_choice, NamedTool) and self.tool_choice.name not in names:
            raise ValueError(f"`tool_choice` names {self.tool_choice.name!r}, which is not among `tools`")
        if (self.tool_choice == "required" or isinstance(self.tool_choice, NamedTool)) and not self.tools:
            raise ValueError("`tool_choice` asks for a tool call, but no `tools` are given")
        made: set[str] = set()
        for index, turn in enumerate(self.messages):
            made.update(call.id for call in turn.tool_calls)
            if turn.role == "tool" and turn.tool_call_id not in made:
                raise ValueError(
                    f"messages[{index}] answers tool call {turn.tool_call_id!r}, "
                    "which no earlier assistant turn made"
                )
        return self

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ChatCall:
        """A call from its JSON form (what an API gateway receives).

        Raises:
            BadRequest: a wrong shape, named by where it is (``messages.2.tool_call_id``).
        """
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            sentence, where = _error_sentence(exc)
            raise BadRequest(sentence, argument=where or None) from exc

    @classmethod
    def build(
        cls,
        *,
        message: str | None = None,
        messages: Sequence[Turn | Mapping[str, Any]] | None = None,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        reasoning_effort: str | None = None,
        thinking_budget: int | None = None,
        fallback: bool | None = None,
        stream: bool = True,
        files: Sequence[str] = (),
        images: Sequence[str] = (),
    ) -> ChatCall:
        """Check the arguments together, with messages that say how to fix them.

        `files` (absolute paths of text files) are put before the last user turn's text, each
        with its path; `images` (absolute paths or https URLs) are added to that turn as image
        parts. See `puter_mcp.core.attachments`.
        """
        # The keyword arguments are Python's, not a JSON document's: check their types here,
        # so that a wrong one is a `BadRequest` that names it, like every other mistake.
        _check_text(message, "message")
        _check_text(system, "system")
        _check_text(model, "model")
        _check_paths(files, "files")
        _check_paths(images, "images")
        if message is not None and messages:
            raise BadRequest("give either `message` or `messages`, not both", argument="messages")
        if message is None and not messages:
            raise BadRequest("nothing to ask: give `message` (a string) or `messages` (a conversation)")
        if message is not None and not message.strip():
            raise BadRequest("`message` is empty (or only blanks): write the question to ask")
        if system and not system.strip():
            raise BadRequest(
                "`system` is only blanks: write the instructions, or leave it out", argument="system"
            )
        if isinstance(messages, str | Mapping):
            raise BadRequest(
                "`messages` must be a list of turns (each like {'role': 'user', 'content': '...'})",
                argument="messages",
            )
        turns: list[Turn] = []
        if message is not None:
            turns.append(Turn(role="user", content=message))
        for index, given in enumerate(messages or []):
            try:
                turns.append(given if isinstance(given, Turn) else Turn.model_validate(given))
            except ValidationError as exc:
                sentence, where = _error_sentence(exc, within=f"messages.{index}")
                raise BadRequest(sentence, argument=where) from exc
        if not any(turn.role == "user" for turn in turns):
            raise BadRequest("`messages` needs at least one message with role `user`")
        if files or images:
            turns = _attach(turns, files=files, images=images)
        if system:
            turns = [Turn(role="system", content=system), *turns]

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
            sentence, where = _error_sentence(exc)
            raise BadRequest(sentence, argument=where or None) from exc

    def last_user_message(self) -> str:
        for turn in reversed(self.messages):
            if turn.role == "user":
                return turn.text
        return ""

    def needs(self) -> Needs:
        """What a model must be able to do to answer this call (routing keeps only those)."""
        from puter_mcp.routing.chains import Needs

        return Needs(
            images=any(turn.images for turn in self.messages),
            tools=bool(self.tools) or any(turn.tool_calls or turn.role == "tool" for turn in self.messages),
        )


class ModelsQuery(BaseModel):
    """Which models to list: filters, then one page of the matches.

    Checked when made (pydantic's `ValidationError`, a `ValueError`): a negative `limit` or
    `offset` would otherwise slice the catalogue from its end.
    """

    query: str | None = None
    provider: str | None = None
    tool_calling: bool | None = None
    image_input: bool | None = None
    free: bool | None = None
    virtual: bool = False
    limit: int = Field(default=10, ge=1, strict=True)
    offset: int = Field(default=0, ge=0, strict=True)


def _check_text(value: object, argument: str) -> None:
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"`{argument}` must be a string, got {type(value).__name__}", argument=argument)


def _check_paths(value: object, argument: str) -> None:
    # A lone string is a sequence too: its characters would be taken for paths one by one.
    if (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or not all(isinstance(v, str) for v in value)
    ):
        raise BadRequest(f"`{argument}` must be a list of strings (paths or URLs)", argument=argument)


def _attach(turns: Sequence[Turn], *, files: Sequence[str], images: Sequence[str]) -> list[Turn]:
    """The turns with `files` as context and `images` as parts of the last user turn.

    Raises:
        BadRequest: a file or an image that cannot be sent (`puter_mcp.core.attachments`).
    """
    from puter_mcp.core.attachments import file_context, image_url

    context = file_context(files) if files else ""
    image_parts: list[ImagePart] = []
    for given in images:
        url = image_url(given)
        try:
            image_parts.append(ImagePart(url=url))
        except ValidationError as exc:
            raise BadRequest(f"images: {given[:60]!r} is not a usable image URL", argument="images") from exc
    result = list(turns)
    for index in range(len(result) - 1, -1, -1):
        turn = result[index]
        if turn.role != "user":
            continue
        parts: list[TextPart | ImagePart | ReasoningPart] = []
        if context:
            parts.append(TextPart(text=context))
        if isinstance(turn.content, str):
            parts.append(TextPart(text=turn.content))
        else:
            parts.extend(turn.content)
        parts.extend(image_parts)
        result[index] = turn.model_copy(update={"content": parts})
        break
    return result
