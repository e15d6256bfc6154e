"""The small YAML subset of a Continue block file: write it, and read back what we write.

Continue reads MCP servers from YAML block files (`.continue/mcpServers/*.yaml`). We generate
`puter.yaml` ourselves, so a full YAML library (a new dependency) buys nothing: we need to
write mappings, lists and strings, and to read such a file back so that a second run can tell
whether anything changed and keep any other servers the user listed in it. Anything outside
the subset (anchors, tags, block scalars, multi-line flow collections, typed values we would
turn into strings...) raises BlockFormatError, and the installer then leaves the file alone
rather than rewrite something it does not fully understand.

The subset: block mappings and block sequences by indentation (spaces only), `- key: value`
list items, plain scalars, JSON-style double-quoted and single-quoted strings, JSON-compatible
one-line flow collections of strings (`[]`, `["a", "b"]`, `{}`), and `#` comments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Union

YamlValue = Union[str, list["YamlValue"], dict[str, "YamlValue"]]  # noqa: UP007 (recursive alias)


class BlockFormatError(ValueError):
    """The text is outside the YAML subset this module reads."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"{message} (line {line})" if line is not None else message)


class Plain(str):
    """A plain scalar read from a file, written back exactly as it was spelled.

    Rewriting a user's `timeout: 30` as `timeout: "30"` would change its type for real YAML
    readers; remembering that it was plain lets us write it back untouched.
    """

    __slots__ = ()


# Plain scalars we may write without quotes: no YAML indicator, no ": " or " #", no typed look.
_SAFE_PLAIN = re.compile(r"[A-Za-z/_][A-Za-z0-9_./@+-]*")
_TYPED_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_FORBIDDEN_START = set("&*!|>%@`")


# Characters YAML does not allow raw, or that YAML 1.1 readers treat as line breaks (NEL, LS, PS).
_ESCAPE_IN_QUOTES = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def _scalar(text: str) -> str:
    if isinstance(text, Plain):
        return str(text)
    if _SAFE_PLAIN.fullmatch(text) and text.lower() not in _TYPED_WORDS:
        return text
    # A JSON string is a valid YAML double-quoted scalar with the same meaning, once the few
    # characters JSON leaves raw but YAML does not accept are escaped too.
    quoted = json.dumps(text, ensure_ascii=False)
    return _ESCAPE_IN_QUOTES.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _key(text: str) -> str:
    return text if _PLAIN_KEY.fullmatch(text) and text.lower() not in _TYPED_WORDS else json.dumps(text)


def dump(doc: dict[str, YamlValue], *, header_comment: str = "") -> str:
    """Serialise `doc` (strings, lists, dicts) as block YAML with two-space indentation."""
    lines = [f"# {line}" if line else "#" for line in header_comment.splitlines()]
    lines += _dump_mapping(doc, 0)
    return "\n".join(lines) + "\n"


def _dump_value_after_key(prefix: str, value: YamlValue, indent: int) -> list[str]:
    if isinstance(value, dict):
        return [f"{prefix}: {{}}"] if not value else [f"{prefix}:", *_dump_mapping(value, indent + 2)]
    if isinstance(value, list):
        return [f"{prefix}: []"] if not value else [f"{prefix}:", *_dump_sequence(value, indent + 2)]
    if isinstance(value, str):
        return [f"{prefix}: {_scalar(value)}"]
    raise TypeError(f"cannot write {type(value).__name__} into a block file")


def _dump_mapping(mapping: dict[str, YamlValue], indent: int) -> list[str]:
    lines: list[str] = []
    for key, value in mapping.items():
        lines += _dump_value_after_key(" " * indent + _key(key), value, indent)
    return lines


def _dump_sequence(items: list[YamlValue], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for item in items:
        if isinstance(item, dict) and item:
            nested = _dump_mapping(item, indent + 2)
            lines.append(pad + "- " + nested[0][indent + 2 :])
            lines += nested[1:]
        elif isinstance(item, list) and item:
            lines.append(pad + "-")
            lines += _dump_sequence(item, indent + 2)
        elif isinstance(item, str):
            lines.append(pad + "- " + _scalar(item))
        elif isinstance(item, dict | list):
            lines.append(pad + ("- {}" if isinstance(item, dict) else "- []"))
        else:
            raise TypeError(f"cannot write {type(item).__name__} into a block file")
    return lines


@dataclass
class _Line:
    number: int
    indent: int
    content: str


def load(text: str) -> dict[str, YamlValue]:
    """Read a block file written in the subset; raise BlockFormatError for anything else."""
    lines = _significant_lines(text)
    if not lines:
        raise BlockFormatError("the file is empty")
    value, index = _block(lines, 0, lines[0].indent)
    if index < len(lines):
        raise BlockFormatError("unexpected indentation", lines[index].number)
    if not isinstance(value, dict):
        raise BlockFormatError("the top level is not a mapping", lines[0].number)
    return value


def _significant_lines(text: str) -> list[_Line]:
    found: list[_Line] = []
    # Split on "\n" only: str.splitlines() would also split inside a value at U+2028 and friends.
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        raw = line.removesuffix("\r")
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped == "---" and not found:
            continue
        if stripped in {"---", "..."}:
            raise BlockFormatError("more than one YAML document", number)
        body = raw.lstrip(" ")
        if body.startswith("\t"):
            raise BlockFormatError("tabs are not allowed for indentation", number)
        found.append(_Line(number, len(raw) - len(body), body.rstrip()))
    return found


def _is_item(line: _Line) -> bool:
    return line.content == "-" or line.content.startswith("- ")


def _block(lines: list[_Line], index: int, indent: int) -> tuple[YamlValue, int]:
    if _is_item(lines[index]):
        return _sequence(lines, index, indent)
    return _mapping(lines, index, indent)


def _nested(lines: list[_Line], index: int, parent_indent: int, line_number: int) -> tuple[YamlValue, int]:
    """The block under a `key:` or `-` with nothing after it."""
    if index < len(lines):
        following = lines[index]
        if following.indent > parent_indent or (following.indent == parent_indent and _is_item(following)):
            return _block(lines, index, following.indent)
    raise BlockFormatError("empty values are not supported", line_number)


def _mapping(lines: list[_Line], index: int, indent: int) -> tuple[dict[str, YamlValue], int]:
    result: dict[str, YamlValue] = {}
    while index < len(lines) and lines[index].indent == indent and not _is_item(lines[index]):
        line = lines[index]
        pair = _split_pair(line.content, line.number)
        if pair is None:
            raise BlockFormatError("expected 'key: value'", line.number)
        key, rest = pair
        if key in result:
            raise BlockFormatError(f"duplicate key {key!r}", line.number)
        index += 1
        if rest:
            result[key] = _inline_value(rest, line.number)
        else:
            result[key], index = _nested(lines, index, indent, line.number)
    if index < len(lines) and lines[index].indent > indent:
        raise BlockFormatError("unexpected indentation", lines[index].number)
    return result, index


def _sequence(lines: list[_Line], index: int, indent: int) -> tuple[list[YamlValue], int]:
    items: list[YamlValue] = []
    while index < len(lines) and lines[index].indent == indent and _is_item(lines[index]):
        line = lines[index]
        after = line.content[1:]
        rest = after.lstrip(" ")
        if not rest:
            value, index = _nested(lines, index + 1, indent, line.number)
        elif _is_item(_Line(line.number, 0, rest)) or _split_pair(rest, line.number) is not None:
            # `- key: value` opens a mapping whose column is where `key` starts.
            column = indent + 1 + len(after) - len(rest)
            lines[index] = _Line(line.number, column, rest)
            value, index = _block(lines, index, column)
        else:
            value = _inline_value(rest, line.number)
            index += 1
        items.append(value)
    return items, index


def _split_pair(content: str, number: int) -> tuple[str, str] | None:
    """Split `key: rest` (rest may be empty); None when `content` is not a mapping entry."""
    if content[:1] in {'"', "'"}:
        key, end = _quoted(content, number)
        remainder = content[end:]
        if not (remainder == ":" or remainder.startswith(": ")):
            return None
        return key, _strip_comment(remainder[1:].strip())
    match = re.match(r"([^\s:#][^:#]*?)\s*:(?:\s+|$)", content)
    if not match:
        return None
    key = match.group(1)
    if not _PLAIN_KEY.fullmatch(key):
        raise BlockFormatError(f"unsupported key {key!r}", number)
    return key, _strip_comment(content[match.end() :].strip())


def _strip_comment(rest: str) -> str:
    if rest.startswith("#"):
        return ""
    if rest[:1] in {'"', "'", "[", "{"}:
        return rest  # comments after quoted or flow values are handled where they are parsed
    cut = rest.find(" #")
    return rest if cut < 0 else rest[:cut].rstrip()


def _quoted(content: str, number: int) -> tuple[str, int]:
    """Parse the quoted scalar at the start of `content`; return (value, index past it)."""
    if content[0] == '"':
        try:
            value, end = json.JSONDecoder().raw_decode(content)
        except json.JSONDecodeError:
            raise BlockFormatError("unsupported double-quoted string", number) from None
        return value, end
    index = 1
    pieces: list[str] = []
    while True:
        close = content.find("'", index)
        if close < 0:
            raise BlockFormatError("unterminated single-quoted string", number)
        pieces.append(content[index:close])
        if content.startswith("''", close):
            pieces.append("'")
            index = close + 2
            continue
        return "".join(pieces), close + 1


def _after_token(rest: str, end: int, number: int) -> None:
    trailing = rest[end:].strip()
    if trailing and not trailing.startswith("#"):
        raise BlockFormatError("unexpected text after a value", number)


def _inline_value(rest: str, number: int) -> YamlValue:
    first = rest[0]
    if first in {'"', "'"}:
        value, end = _quoted(rest, number)
        _after_token(rest, end, number)
        return value
    if first in {"[", "{"}:
        return _flow(rest, number)
    if first in _FORBIDDEN_START or rest.startswith(("- ", "? ")):
        raise BlockFormatError(f"unsupported YAML value {rest!r}", number)
    if ": " in rest:
        raise BlockFormatError(f"unsupported plain value {rest!r}", number)
    return Plain(rest)


def _flow(rest: str, number: int) -> YamlValue:
    decoder = json.JSONDecoder()
    try:
        value, end = decoder.raw_decode(rest)
    except json.JSONDecodeError:
        raise BlockFormatError("only one-line JSON-style flow collections are supported", number) from None
    _after_token(rest, end, number)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    if isinstance(value, dict) and all(isinstance(item, str) for item in value.values()):
        return dict(value)
    raise BlockFormatError("flow collections may only hold strings", number)
