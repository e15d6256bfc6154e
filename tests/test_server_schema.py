"""The output schemas the tools publish are compact (no references, no nullable `anyOf`) and say
exactly what the pydantic models' own schemas say: every value passes one if and only if it
passes the other."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from jsonschema.validators import validator_for
from mcp import Client
from pydantic import BaseModel

from puter_mcp.core import AccountsOverview, Backend, ModelsPage
from puter_mcp.server import (
    OUTPUT_SCHEMAS_FILE,
    ChatResultMetadata,
    build_server,
    compact_schema,
    output_schemas,
)

pytestmark = pytest.mark.anyio

MODELS: dict[str, type[BaseModel]] = {
    "puter-chat": ChatResultMetadata,
    "puter-models": ModelsPage,
    "puter-account": AccountsOverview,
}


def _keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


def _variants(value: Any) -> Iterator[Any]:
    """`value` with one part changed at a time: each field removed, made null, or given a value
    of another type; each list emptied or given a bad item."""
    yield value
    if isinstance(value, dict):
        for key, inner in value.items():
            rest = {k: v for k, v in value.items() if k != key}
            yield rest
            for bad in (None, "text", 1, 1.5, True, [], {}):
                yield {**rest, key: bad}
            for changed in _variants(inner):
                yield {**rest, key: changed}
    elif isinstance(value, list) and value:
        yield []
        yield [*value, "text"]
        for changed in _variants(value[0]):
            yield [changed, *value[1:]]


def _agree(original: dict[str, Any], compact: dict[str, Any], samples: list[Any]) -> int:
    full = validator_for(original)(original)
    short = validator_for(compact)(compact)
    checked = 0
    for sample in samples:
        for variant in _variants(sample):
            assert full.is_valid(variant) == short.is_valid(variant), variant
            checked += 1
    return checked


async def test_the_published_output_schemas_are_compact_and_accept_what_the_models_accept(
    backend: Backend,
) -> None:
    async with Client(build_server(backend)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        chat = await client.call_tool("puter-chat", {"message": "hello", "model": "gpt-5-nano"})
        models = await client.call_tool("puter-models", {"query": "gpt", "limit": 3})
        account = await client.call_tool("puter-account", {})
    results = {"puter-chat": chat, "puter-models": models, "puter-account": account}
    for name, model in MODELS.items():
        published = tools[name].output_schema
        assert published is not None
        keys = set(_keys(published))
        assert "$ref" not in keys and "$defs" not in keys, name
        original = model.model_json_schema()
        assert published == compact_schema(original), (
            "src/puter_mcp/tool_output_schemas.json is out of date: run "
            '.venv/bin/python -c "import puter_mcp.server as s; s.write_output_schemas()"'
        )
        sample = results[name].structured_content
        assert sample is not None and not results[name].is_error
        assert validator_for(published)(published).is_valid(sample)
        assert _agree(original, published, [sample]) > 50


def test_a_nullable_field_is_one_type_list_and_keeps_its_description() -> None:
    class Inner(BaseModel):
        size: int

    class Outer(BaseModel):
        name: str | None = None
        inner: Inner | None = None
        items: list[Inner] = []

    compact = compact_schema(Outer.model_json_schema())
    assert compact["properties"]["name"]["type"] == ["string", "null"]
    assert compact["properties"]["inner"]["type"] == ["object", "null"]
    assert compact["properties"]["inner"]["required"] == ["size"]
    assert compact["properties"]["items"]["items"]["properties"]["size"] == {
        "title": "Size",
        "type": "integer",
    }
    samples = [{"name": "a", "inner": {"size": 1}, "items": [{"size": 2}]}, {}]
    assert _agree(Outer.model_json_schema(), compact, samples) > 20


def test_what_cannot_be_folded_is_left_as_it_is() -> None:
    class Node(BaseModel):
        children: list[Node] = []

    recursive = Node.model_json_schema()
    assert compact_schema(recursive) == recursive  # it cannot be written out in full

    class Choice(BaseModel):
        effort: Literal["low", "high"] | None = None  # an enum forbids null: not one type's rule

    schema = Choice.model_json_schema()
    compact = compact_schema(copy.deepcopy(schema))
    assert "anyOf" in compact["properties"]["effort"]
    assert _agree(schema, compact, [{"effort": "low"}, {"effort": None}]) > 5


def test_the_packaged_output_schemas_are_what_the_models_say() -> None:
    packaged = json.loads(OUTPUT_SCHEMAS_FILE.read_text(encoding="utf-8"))
    assert packaged == output_schemas(), (
        "src/puter_mcp/tool_output_schemas.json is out of date: run "
        '.venv/bin/python -c "import puter_mcp.server as s; s.write_output_schemas()"'
    )
