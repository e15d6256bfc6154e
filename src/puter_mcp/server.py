"""The MCP server: three tools over one `Backend`, on stdio, streamable HTTP or SSE.

This is the only module that knows about MCP tools (`stdio_serving` answers unreadable stdio
lines; `http_serving` holds the HTTP rules, MCP-free). It turns tool arguments into backend calls,
backend results into tool results (the answer as text, the metadata as structured content),
and expected failures (`BackendError`) into `ToolError`, so that the client sees an
``isError`` result with a sentence a person can act on. Unknown or bad tool arguments are
refused the same way, worded as the CLI words them.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from puter_mcp import __version__
from puter_mcp.core import (
    AccountsOverview,
    Backend,
    BackendError,
    ChatCall,
    ChatMetadata,
    ChatOutcome,
    ModelsPage,
    ModelsQuery,
    ReasoningEffort,
    StreamProgress,
    ToolCallRecord,
)
from puter_mcp.display import accounts_text, chat_text, models_text
from puter_mcp.stdio_serving import AnsweringReadStream, stdio_streams
from puter_mcp.wording import describe_error

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = ["build_server", "serve_http", "serve_stdio"]

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
puter-mcp gives you Puter.com's AI models (Claude, GPT, Gemini, DeepSeek, Grok, free OpenRouter
models ...). Use `puter-chat` to ask another model (or a virtual model such as `coding-elite`, or
`auto`), `puter-models` to find model ids, and `puter-account` to see credits and accounts. When a
model is rate-limited, down or out of credits, puter-chat falls back to the next one and says so in
the first line of its answer."""


class ChatTurn(BaseModel):
    """One message of a conversation."""

    role: Literal["user", "assistant", "system"] = Field(description="Who said it.")
    content: str = Field(description="What was said.")


class ChatResultMetadata(ChatMetadata):
    """`puter-chat`'s structured content: the answer's metadata, and any tool calls the model made."""

    tool_calls: list[ToolCallRecord] | None = Field(
        default=None, description="The tools the model asked to call, when it called any."
    )


def _tool_error(exc: BackendError) -> ToolError:
    return ToolError(describe_error(exc))


def _tool_word(tool: str) -> str:
    """`puter-chat` -> `chat`: the word the CLI uses for the same arguments."""
    return tool.removeprefix("puter-")


def unknown_arguments_error(tool: str, given: Mapping[str, Any], known: Sequence[str]) -> str | None:
    """A sentence naming each argument the tool does not have (and the closest one it has), or None."""
    unknown = [name for name in given if name not in known]
    if not unknown:
        return None
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        parts.append(f"`{name}`{hint}")
    listing = ", ".join(f"`{name}`" for name in known) or "none"
    return f"unknown {_tool_word(tool)} argument {', '.join(parts)}; its arguments are: {listing}"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_ERROR_WORDING: dict[str, Callable[[dict[str, Any]], str]] = {
    "less_than_equal": lambda ctx: f"must be at most {_number(ctx['le'])}",
    "less_than": lambda ctx: f"must be less than {_number(ctx['lt'])}",
    "greater_than_equal": lambda ctx: f"must be at least {_number(ctx['ge'])}",
    "greater_than": lambda ctx: f"must be more than {_number(ctx['gt'])}",
    "int_type": lambda ctx: "must be a whole number (a JSON integer, not a string, float or boolean)",
    "int_from_float": lambda ctx: "must be a whole number",
    "int_parsing": lambda ctx: "must be a whole number",
    "float_type": lambda ctx: "must be a number",
    "float_parsing": lambda ctx: "must be a number",
    "bool_type": lambda ctx: "must be true or false",
    "bool_parsing": lambda ctx: "must be true or false",
    "string_type": lambda ctx: "must be a string",
    "list_type": lambda ctx: "must be a list",
    "model_type": lambda ctx: "must be an object",
    "dict_type": lambda ctx: "must be an object",
    "literal_error": lambda ctx: f"must be one of {ctx['expected']}",
    "missing": lambda ctx: "is required",
    "extra_forbidden": lambda ctx: "is not a known field",
}


def argument_error(tool: str, error: ValidationError) -> str:
    """Word pydantic's complaint as the CLI does: "bad chat argument `temperature`: must be at most 2"."""
    sentences = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        word = _ERROR_WORDING.get(item["type"])
        what = word(dict(item.get("ctx") or {})) if word else item["msg"]
        sentences.append(f"bad {_tool_word(tool)} argument `{where}`: {what}")
    return "; ".join(dict.fromkeys(sentences))


# Keywords that constrain one JSON type only, and annotations: a schema made of these accepts
# every value of another type, so ``anyOf: [S, {"type": "null"}]`` says the same as S with
# ``"null"`` added to its ``type``.
_ONE_TYPE_KEYWORDS = frozenset(
    {
        "type", "title", "description", "default", "examples",
        "properties", "required", "additionalProperties", "patternProperties", "propertyNames",
        "minProperties", "maxProperties", "items", "prefixItems", "minItems", "maxItems",
        "uniqueItems", "minLength", "maxLength", "pattern", "format",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    }
)  # fmt: skip


class _RecursiveSchema(Exception):
    """A ``$ref`` that refers to itself: such a schema cannot be written out in full."""


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The same JSON Schema in the form a client validates fastest: ``$ref``s written out in full
    (no ``$defs``) and each ``anyOf`` of a one-type schema and null folded into one ``type`` list.

    Both say exactly what the original says (the same values pass, with the same descriptions),
    but a client that validates every result with `jsonschema` (the MCP SDK's client does) no
    longer resolves references or tries each ``anyOf`` branch: for `puter-chat`'s 14 fields that
    cuts the check by 45% (see bench/README.md). A schema with a recursive reference is returned
    as it is.
    """
    definitions: dict[str, Any] = schema.get("$defs", {})

    def written_out(node: Any, inside: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [written_out(item, inside) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in inside or name not in definitions:
                raise _RecursiveSchema(ref)
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            return {**written_out(definitions[name], (*inside, name)), **written_out(siblings, inside)}
        out = {key: written_out(value, inside) for key, value in node.items() if key != "$defs"}
        options = out.get("anyOf")
        if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
            other = options[0] if options[1] == {"type": "null"} else options[1]
            if (
                isinstance(other, dict)
                and isinstance(other.get("type"), str)
                and set(other) <= _ONE_TYPE_KEYWORDS
            ):
                del out["anyOf"]
                return {**other, **out, "type": [other["type"], "null"]}
        return out

    try:
        return written_out(schema, ())
    except _RecursiveSchema:
        return schema


OUTPUT_SCHEMAS_FILE = Path(__file__).with_name("tool_output_schemas.json")
"""Each tool's output schema as published: `output_schemas()`, written out ahead of time."""


def output_models() -> dict[str, type[BaseModel]]:
    """The model of each tool's structured content."""
    return {"puter-chat": ChatResultMetadata, "puter-models": ModelsPage, "puter-account": AccountsOverview}


def output_schemas() -> dict[str, dict[str, Any]]:
    """Each tool's output schema: its model's JSON Schema, in compact form (`compact_schema`).

    Deriving them costs pydantic ~15 ms, a fifth of what puter-mcp adds to an MCP server's
    start, so the server publishes `OUTPUT_SCHEMAS_FILE` instead; tests/test_server_schema.py
    checks that it says exactly this, and `write_output_schemas` writes it again.
    """
    return {name: compact_schema(model.model_json_schema()) for name, model in output_models().items()}


def write_output_schemas() -> None:
    """Write `OUTPUT_SCHEMAS_FILE` again, after a change to a model of `output_models`."""
    text = json.dumps(output_schemas(), indent=1, sort_keys=True, ensure_ascii=False)
    OUTPUT_SCHEMAS_FILE.write_text(text + "\n", encoding="utf-8")


def _tool(
    server: MCPServer[Any], published: Mapping[str, dict[str, Any]], **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`server.tool(...)` with the docstring dedented, so clients show it without source
    indentation, and the output schema of `published` (see `output_schemas`).

    The SDK derives a schema from a return annotation and checks every result against it; a
    schema set here is published but not checked on this side. The client checks it (the
    SDK's does), and the structured content is dumped from a model that was validated when
    it was made, which tests/test_server_schema.py checks agrees with the schema.
    """

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = options.get("name", fn.__name__)
        server.tool(description=inspect.cleandoc(fn.__doc__ or ""), **options)(fn)
        tool = server._tool_manager.get_tool(name)
        if tool is not None and name in published:
            tool.fn_metadata.output_schema = published[name]
        return fn

    return register


class PuterMCPServer(MCPServer[Any]):
    """`MCPServer` whose tools refuse unknown arguments and word bad ones for a person.

    The SDK ignores arguments a tool does not declare (so a misspelled `temprature` would be
    dropped without a word) and reports a bad one as pydantic's raw text with a docs URL; both
    pass through `call_tool`, so this one place fixes them for every tool.
    """

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        tool = self._tool_manager.get_tool(name)
        if tool is not None:
            known = list(tool.parameters.get("properties", {}))
            refusal = unknown_arguments_error(name, arguments, known)
            if refusal:
                raise ToolError(refusal)
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                # Chained to the ValidationError, so the SDK still logs the field names only.
                raise ToolError(argument_error(name, exc.__cause__)) from exc.__cause__
            raise

    async def run_stdio_async(self) -> None:
        """Serve over stdio from the event loop, answering lines that are not JSON-RPC messages
        instead of dropping them (see `puter_mcp.stdio_serving`)."""
        lowlevel = self._lowlevel_server
        async with stdio_streams() as (read_stream, write_stream):
            await lowlevel.run(
                AnsweringReadStream(read_stream, write_stream),
                write_stream,
                lowlevel.create_initialization_options(),
            )


def build_server(backend: Backend) -> MCPServer[Any]:
    """Build the MCP server with its three tools, in this order: chat, models, account."""
    server = PuterMCPServer(
        "puter",
        title="Puter AI models",
        version=__version__,
        instructions=INSTRUCTIONS,
    )
    published: dict[str, dict[str, Any]] = json.loads(OUTPUT_SCHEMAS_FILE.read_text(encoding="utf-8"))

    @_tool(
        server,
        published,
        name="puter-chat",
        title="Ask a Puter model",
        annotations=ToolAnnotations(
            title="Ask a Puter model", read_only_hint=False, destructive_hint=False, open_world_hint=True
        ),
    )
    async def puter_chat(
        ctx: Context,
        message: Annotated[
            str | None, Field(description="The question or instruction. Use this or `messages`.")
        ] = None,
        messages: Annotated[
            list[ChatTurn] | None,
            Field(description="A whole conversation (roles user/assistant/system), oldest first."),
        ] = None,
        model: Annotated[
            str | None,
            Field(
                description="A model id or alias (see puter-models), a virtual model such as "
                "`coding-elite`, `coding-fast`, `chat-smart`, `chat-fast`, or `auto`. "
                "Default: the configured default model."
            ),
        ] = None,
        system: Annotated[
            str | None, Field(description="A system prompt put before the conversation.")
        ] = None,
        temperature: Annotated[
            float | None, Field(ge=0, le=2, description="Sampling temperature, 0-2.")
        ] = None,
        max_tokens: Annotated[
            int | None, Field(ge=1, strict=True, description="Longest answer, in tokens.")
        ] = None,
        reasoning_effort: Annotated[
            ReasoningEffort | None,
            Field(description="How hard a reasoning model thinks before answering."),
        ] = None,
        thinking_budget: Annotated[
            int | None,
            Field(
                ge=1,
                strict=True,
                description="Thinking budget in tokens (translated to an effort); not with reasoning_effort.",
            ),
        ] = None,
        fallback: Annotated[
            bool | None,
            Field(
                description="Allow falling back to free models when the asked ones fail (default: the config's fallback_to_free, on unless changed)."
            ),
        ] = None,
        files: Annotated[
            list[str] | None,
            Field(
                description="Absolute paths of UTF-8 text files to include as context, each marked with "
                "its path (at most 256 KiB each, 1 MiB in all)."
            ),
        ] = None,
        images: Annotated[
            list[str] | None,
            Field(
                description="Images for the model to look at: absolute paths (PNG, JPEG, GIF or WebP, "
                "at most 5 MB) or https URLs. Only models that take images answer (a chain keeps those)."
            ),
        ] = None,
    ) -> CallToolResult:
        """Ask one of Puter's AI models and return its answer.

        If the model is rate-limited, down or out of credits, the next model of its chain (or another
        account) answers instead, and the first line of the answer says which model answered and why.
        """
        turns = [turn.model_dump() for turn in messages] if messages else None
        try:
            call = ChatCall.build(
                message=message,
                messages=turns,
                model=model,
                system=system,
                temperature=temperature,
                max_tokens=max_tokens,
                reasoning_effort=reasoning_effort,
                thinking_budget=thinking_budget,
                fallback=fallback,
                files=files or (),
                images=images or (),
            )
            outcome = await _with_heartbeat(ctx, backend.settings.progress_interval, backend.chat, call)
        except BackendError as exc:
            raise _tool_error(exc) from exc
        # The metadata's fields, dumped straight from the outcome (no copy made and validated).
        structured = outcome.model_dump(mode="json", exclude={"text", "tool_calls"})
        if outcome.tool_calls:
            structured["tool_calls"] = [call.model_dump(mode="json") for call in outcome.tool_calls]
        return CallToolResult(
            content=[TextContent(type="text", text=chat_text(outcome))],
            structured_content=structured,
        )

    @_tool(
        server,
        published,
        name="puter-models",
        title="Find Puter models",
        annotations=ToolAnnotations(
            title="Find Puter models", read_only_hint=True, idempotent_hint=True, open_world_hint=True
        ),
    )
    async def puter_models(
        query: Annotated[
            str | None, Field(description="Words to find in a model's id, name or aliases (e.g. 'claude').")
        ] = None,
        provider: Annotated[
            str | None, Field(description="Only this provider (e.g. 'openai', 'openrouter').")
        ] = None,
        tool_calling: Annotated[bool | None, Field(description="Only models that can call tools.")] = None,
        image_input: Annotated[bool | None, Field(description="Only models that accept images.")] = None,
        free: Annotated[
            bool | None, Field(description="Only free models (or, with false, only paid ones).")
        ] = None,
        virtual: Annotated[
            bool,
            Field(
                description="List the virtual models (chains and auto) with their current members instead."
            ),
        ] = False,
        limit: Annotated[
            int, Field(ge=1, le=100, strict=True, description="How many records to return.")
        ] = 10,
        offset: Annotated[
            int, Field(ge=0, strict=True, description="How many matching records to skip (paging).")
        ] = 0,
    ) -> CallToolResult:
        """Find Puter's models by name, provider and abilities, with context size and price per 1M tokens."""
        try:
            page = await backend.list_models(
                ModelsQuery(
                    query=query,
                    provider=provider,
                    tool_calling=tool_calling,
                    image_input=image_input,
                    free=free,
                    virtual=virtual,
                    limit=limit,
                    offset=offset,
                )
            )
        except BackendError as exc:
            raise _tool_error(exc) from exc
        page = page.model_copy(update={"sandbox": backend.sandbox})
        return CallToolResult(
            content=[TextContent(type="text", text=models_text(page))],
            structured_content=page.model_dump(mode="json"),
        )

    @_tool(
        server,
        published,
        name="puter-account",
        title="Puter accounts and credits",
        annotations=ToolAnnotations(
            title="Puter accounts and credits",
            read_only_hint=True,
            idempotent_hint=True,
            open_world_hint=True,
        ),
    )
    async def puter_account() -> CallToolResult:
        """Show each signed-in Puter account: credits left, tier, which is the default, and any cooldowns."""
        try:
            overview = await backend.accounts_overview()
        except BackendError as exc:
            raise _tool_error(exc) from exc
        return CallToolResult(
            content=[TextContent(type="text", text=accounts_text(overview))],
            structured_content=overview.model_dump(mode="json"),
        )

    return server


async def _with_heartbeat(
    ctx: Context,
    interval: float,
    chat: Callable[[ChatCall, Callable[[StreamProgress], None]], Awaitable[ChatOutcome]],
    call: ChatCall,
) -> ChatOutcome:
    """Run a chat while sending a progress notification every `interval` seconds.

    Clients reset their idle timers on progress (many give up after ~60 s of silence), so the
    heartbeat runs on its own clock, also while the upstream model is silent. Most calls end
    within the first interval, so on asyncio the heartbeat is a timer until then, and becomes
    a task only when it first fires: a task started and cancelled on every call cost ~70 µs
    (bench/README.md).
    """
    started = time.monotonic()
    latest = StreamProgress()

    def on_progress(progress: StreamProgress) -> None:
        nonlocal latest
        latest = progress

    async def beat() -> None:
        message = latest.describe(time.monotonic() - started)
        try:
            await ctx.report_progress(latest.tokens, None, message[:190])
        except Exception:  # a client that went away must not fail the call
            logger.debug("progress notification could not be sent", exc_info=True)

    async def heartbeat() -> None:
        while True:
            await beat()
            await anyio.sleep(interval)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # anyio on another event loop: the heartbeat is a task from the start
        return await _beside(heartbeat, interval, chat(call, on_progress))
    beating: list[asyncio.Task[None]] = []
    # The timer's callback runs in a copy of this call's context, as a task group's child would.
    timer = loop.call_later(interval, lambda: beating.append(loop.create_task(heartbeat())))
    try:
        return await chat(call, on_progress)
    finally:
        timer.cancel()
        for task in beating:
            task.cancel()
            with anyio.CancelScope(shield=True):
                # No notification may follow the result: wait for the cancelled beat to end.
                await asyncio.wait([task])


async def _beside(
    heartbeat: Callable[[], Awaitable[None]], interval: float, answer: Awaitable[ChatOutcome]
) -> ChatOutcome:
    """`answer`, with `heartbeat` started after `interval` in a task beside it."""

    async def later() -> None:
        await anyio.sleep(interval)
        await heartbeat()

    outcome: ChatOutcome | None = None
    failure: BackendError | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(later)
        try:
            outcome = await answer
        except BackendError as exc:
            # Raised out of the task group it would arrive wrapped in an ExceptionGroup.
            failure = exc
        finally:
            group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    assert outcome is not None
    return outcome


async def serve_stdio(backend: Backend) -> None:
    """Serve over stdin/stdout; nothing but protocol goes to stdout.

    A client that closes its end of our stdout has gone: there is nobody left to answer, so
    the server stops with one line on stderr rather than a traceback.
    """
    try:
        await build_server(backend).run_stdio_async()
    except* BrokenPipeError:
        logger.warning("the MCP client closed the pipe it reads answers from; stopping")


def http_app(
    backend: Backend,
    *,
    transport: Literal["http", "sse"],
    host: str,
    auth_token: str | None,
    allowed_hosts: Sequence[str] = (),
) -> ASGIApp:
    """The Starlette app of the MCP HTTP transports: the SDK's app, checking Host and Origin by
    `http_serving.HostRules`, behind `BearerAuth` when a token is set."""
    from mcp.server.transport_security import TransportSecuritySettings

    from puter_mcp.http_serving import BearerAuth, HostRules, jsonrpc_refusal

    server = build_server(backend)
    # The SDK checks Host and Origin itself (answering its own way); it is given the same rules
    # every HTTP face of the project keeps.
    rules = HostRules.for_binding(host, allowed_hosts)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(rules.hosts),
        allowed_origins=list(rules.origins),
    )
    if transport == "sse":
        app: ASGIApp = server.sse_app(host=host, transport_security=security)
    else:
        app = server.streamable_http_app(host=host, transport_security=security)
    if auth_token:
        app = BearerAuth(app, auth_token, refusal_body=jsonrpc_refusal)
    return app


async def serve_http(
    backend: Backend,
    *,
    transport: Literal["http", "sse"],
    host: str,
    port: int,
    auth_token: str | None,
    allowed_hosts: Sequence[str] = (),
    on_ready: Callable[[str], None] | None = None,
    header_timeout: float | None = None,
    body_timeout: float | None = None,
) -> None:
    """Serve streamable HTTP (``/mcp``) or SSE (``/sse``) until cancelled.

    ``header_timeout`` and ``body_timeout``: how long a request's head and body may take to
    arrive (default ``http_serving.HEADER_TIMEOUT`` and ``BODY_TIMEOUT``). The HTTP plumbing
    (uvicorn, h11) is imported here, not at module import: a stdio server never needs it, and
    its start-up is measured.

    Raises:
        BackendError: the binding is unsafe (`http_serving.check_binding`) or the address
            cannot be bound; the message says what to do.
    """
    from puter_mcp.http_serving import (
        BODY_TIMEOUT,
        HEADER_TIMEOUT,
        ServingError,
        check_binding,
        serve_asgi,
        served_url,
    )

    try:
        check_binding(host, auth_token)
        app = http_app(
            backend, transport=transport, host=host, auth_token=auth_token, allowed_hosts=allowed_hosts
        )

        def announce(port: int) -> None:
            if on_ready:
                on_ready(served_url(host, port, "/sse" if transport == "sse" else "/mcp"))

        await serve_asgi(
            app,
            host=host,
            port=port,
            on_ready=announce,
            header_timeout=HEADER_TIMEOUT if header_timeout is None else header_timeout,
            body_timeout=BODY_TIMEOUT if body_timeout is None else body_timeout,
        )
    except ServingError as exc:
        raise BackendError(str(exc)) from exc
