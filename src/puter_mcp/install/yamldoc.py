"""Continue's YAML files, read and edited round-trip with ruamel.yaml.

Any valid YAML is read (flow style, anchors, block scalars, several documents); an edit keeps
the user's comments, order and layout, and changes only the `mcpServers` list. Errors name the
line and column so the user can find the fault.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError


class YamlError(ValueError):
    """The text is not valid YAML, or not the shape a Continue config has."""


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the user's long lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def load_all(text: str) -> list[Any]:
    """Every document in `text`, as round-trip nodes (edit them, then `dump_all`)."""
    try:
        return list(_yaml().load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise YamlError(f"invalid YAML at {where}{exc.problem or exc.context}") from None
    except YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}") from None


def dump_all(documents: list[Any], *, explicit_start: bool = False) -> str:
    """The documents as text; `explicit_start` puts `---` before the first one too (later ones
    always get it)."""
    out = io.StringIO()
    yaml = _yaml()
    yaml.explicit_start = explicit_start
    yaml.dump_all(documents, out)
    return out.getvalue()


def to_plain(node: Any) -> Any:
    """Round-trip nodes as plain dicts, lists and scalars (for comparing and checking)."""
    if isinstance(node, Mapping):
        return {str(key): to_plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [to_plain(item) for item in node]
    if isinstance(node, str):
        return str(node)
    return node


def new_document(header: Mapping[str, Any], servers: list[Any], comment: str) -> str:
    doc = CommentedMap(header)
    doc["mcpServers"] = CommentedSeq(servers)
    doc.yaml_set_start_comment(comment)
    return dump_all([doc])


def servers_document(documents: list[Any]) -> CommentedMap | None:
    """The document that holds `mcpServers`, else the first mapping (None: no mapping at all)."""
    mappings = [doc for doc in documents if isinstance(doc, CommentedMap)]
    for doc in mappings:
        if "mcpServers" in doc:
            return doc
    return mappings[0] if mappings else None
