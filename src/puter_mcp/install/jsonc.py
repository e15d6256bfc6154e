"""JSON with comments and trailing commas: a parser that keeps spans, and an in-place upsert.

Config files belong to the user. Zed's settings.json (and VS Code's mcp.json) carry comments,
trailing commas and a hand-chosen layout; a load-modify-dump round trip through `json` would
destroy all of that. So this module parses into nodes that remember where every value starts
and ends, and `upsert` changes the text only inside the one span it must replace, or inserts
one new member shaped like its siblings. Every other character of the file stays as it was.

Offsets are `str` indices into the decoded text; the caller decodes and encodes UTF-8 itself,
which round-trips exactly, so "same characters" means "same bytes".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_LITERALS: dict[str, bool | None] = {"true": True, "false": False, "null": None}
_BOM = "\ufeff"
_DECODER = json.JSONDecoder()


class JsoncError(ValueError):
    """The text is not valid JSON (or JSONC, when comments and trailing commas are allowed)."""

    def __init__(self, message: str, text: str, pos: int) -> None:
        self.line = text.count("\n", 0, pos) + 1
        self.column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        self.reason = message
        super().__init__(f"{message} (line {self.line}, column {self.column})")


class NotAnObjectError(ValueError):
    """A key on the path to our entry holds something other than an object."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)
        where = "the top level" if not keys else ".".join(json.dumps(k) for k in keys)
        super().__init__(f"{where} is not a JSON object")


@dataclass(frozen=True)
class Scalar:
    start: int
    end: int
    value: str | int | float | bool | None


@dataclass(frozen=True)
class Array:
    start: int
    end: int
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Member:
    key: str
    key_start: int
    value: Node
    # Offset just past the comma that follows this member's value, if there is one.
    comma_end: int | None


@dataclass(frozen=True)
class Object:
    start: int
    end: int
    members: tuple[Member, ...]

    def get(self, key: str) -> Member | None:
        """The member named `key`; with duplicate keys the last one wins, as in most parsers."""
        for member in reversed(self.members):
            if member.key == key:
                return member
        return None


Node = Scalar | Array | Object


class _Parser:
    def __init__(self, text: str, *, jsonc: bool) -> None:
        self.text = text
        self.jsonc = jsonc
        self.pos = 1 if text.startswith(_BOM) else 0

    def fail(self, message: str, pos: int | None = None) -> JsoncError:
        return JsoncError(message, self.text, self.pos if pos is None else pos)

    def skip(self) -> None:
        """Skip whitespace and (in JSONC mode) comments."""
        text, n = self.text, len(self.text)
        while self.pos < n:
            char = text[self.pos]
            if char in " \t\r\n":
                self.pos += 1
            elif text.startswith("//", self.pos) or text.startswith("/*", self.pos):
                if not self.jsonc:
                    raise self.fail("comments are not allowed in this JSON file")
                if text[self.pos + 1] == "/":
                    newline = text.find("\n", self.pos)
                    self.pos = n if newline < 0 else newline
                else:
                    close = text.find("*/", self.pos + 2)
                    if close < 0:
                        raise self.fail("unterminated /* comment")
                    self.pos = close + 2
            else:
                return

    def document(self) -> Node | None:
        self.skip()
        if self.pos >= len(self.text):
            return None
        node = self.value()
        self.skip()
        if self.pos < len(self.text):
            raise self.fail("unexpected text after the JSON value")
        return node

    def value(self) -> Node:
        text, pos = self.text, self.pos
        if pos >= len(text):
            raise self.fail("unexpected end of file, expected a value")
        char = text[pos]
        if char == "{":
            return self.object()
        if char == "[":
            return self.array()
        if char == '"':
            value, end = self.string()
            return Scalar(pos, end, value)
        match = _NUMBER.match(text, pos)
        if match:
            self.pos = match.end()
            return Scalar(pos, self.pos, json.loads(match.group()))
        for word, literal in _LITERALS.items():
            if text.startswith(word, pos):
                self.pos = pos + len(word)
                return Scalar(pos, self.pos, literal)
        raise self.fail(f"expected a value, found {char!r}")

    def string(self) -> tuple[str, int]:
        try:
            # At a '"', raw_decode reads exactly one (strict) JSON string.
            value, end = _DECODER.raw_decode(self.text, self.pos)
        except json.JSONDecodeError as exc:
            raise self.fail(exc.msg, exc.pos) from None
        self.pos = end
        return value, end

    def _after_item(self, closer: str) -> tuple[bool, int | None]:
        """After an item: consume `,` or see the closer. Returns (closed, comma_end)."""
        self.skip()
        if self.text.startswith(closer, self.pos):
            self.pos += 1
            return True, None
        if not self.text.startswith(",", self.pos):
            raise self.fail(f"expected ',' or {closer!r}")
        self.pos += 1
        comma_end = self.pos
        self.skip()
        if self.text.startswith(closer, self.pos):
            if not self.jsonc:
                raise self.fail("trailing commas are not allowed in this JSON file", comma_end - 1)
            self.pos += 1
            return True, comma_end
        return False, comma_end

    def object(self) -> Object:
        start = self.pos
        self.pos += 1
        members: list[Member] = []
        self.skip()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return Object(start, self.pos, ())
        while True:
            self.skip()
            if not self.text.startswith('"', self.pos):
                raise self.fail("expected a quoted key")
            key_start = self.pos
            key, _ = self.string()
            self.skip()
            if not self.text.startswith(":", self.pos):
                raise self.fail("expected ':' after the key")
            self.pos += 1
            self.skip()
            node = self.value()
            closed, comma_end = self._after_item("}")
            members.append(Member(key, key_start, node, comma_end))
            if closed:
                return Object(start, self.pos, tuple(members))

    def array(self) -> Array:
        start = self.pos
        self.pos += 1
        items: list[Node] = []
        self.skip()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return Array(start, self.pos, ())
        while True:
            self.skip()
            items.append(self.value())
            closed, _ = self._after_item("]")
            if closed:
                return Array(start, self.pos, tuple(items))


def parse(text: str, *, jsonc: bool = True) -> Node | None:
    """Parse `text`; None when it holds no value at all (empty, or only comments)."""
    return _Parser(text, jsonc=jsonc).document()


def to_python(node: Node) -> Any:
    if isinstance(node, Scalar):
        return node.value
    if isinstance(node, Array):
        return [to_python(item) for item in node.items]
    return {member.key: to_python(member.value) for member in node.members}


def lookup(root: Node | None, keys: Sequence[str]) -> Node | None:
    """The node at `keys` below `root`, or None if any step is missing or not an object."""
    node = root
    for key in keys:
        if not isinstance(node, Object):
            return None
        member = node.get(key)
        if member is None:
            return None
        node = member.value
    return node


def same_json(a: Any, b: Any) -> bool:
    """Equality that ignores key order but, unlike `==`, tells `true` from `1`."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def upsert(text: str, keys: Sequence[str], value: Any, *, jsonc: bool = True) -> str:
    """Return `text` with the member at `keys` set to `value`, changing nothing else.

    Missing intermediate objects are created. Returns `text` itself when the member already
    holds an equal value. Raises JsoncError for invalid text and NotAnObjectError when the top
    level or a key on the path holds something other than an object.
    """
    if not keys:
        raise ValueError("upsert needs at least one key")
    root = parse(text, jsonc=jsonc)
    newline = "\r\n" if "\r\n" in text else "\n"
    if root is None:
        return _append_document(text, _nest(keys, value), newline)
    if not isinstance(root, Object):
        raise NotAnObjectError(())
    unit = _indent_unit(text, root)
    # A document written on one line stays on one line.
    layout = _Layout(unit, newline, one_line=_is_single_line(text, root))
    obj = root
    for depth, key in enumerate(keys[:-1]):
        member = obj.get(key)
        if member is None:
            return _insert_member(text, obj, key, _nest(keys[depth + 1 :], value), layout)
        if not isinstance(member.value, Object):
            raise NotAnObjectError(keys[: depth + 1])
        obj = member.value
    member = obj.get(keys[-1])
    if member is None:
        return _insert_member(text, obj, keys[-1], value, layout)
    if same_json(to_python(member.value), value):
        return text
    return _replace_value(text, obj, member, value, layout)


@dataclass(frozen=True)
class _Layout:
    """How the file is laid out, so inserted text looks like the text around it."""

    unit: str
    newline: str
    one_line: bool


def _nest(keys: Sequence[str], value: Any) -> Any:
    for key in reversed(keys):
        value = {key: value}
    return value


def _dump(value: Any, unit: str, base_indent: str, newline: str) -> str:
    """Multi-line JSON whose continuation lines start at `base_indent`; arrays of scalars stay
    on one line (`"args": ["puter-mcp"]`), as people write them by hand."""
    if isinstance(value, dict) and value:
        inner = base_indent + unit
        members = [f"{_inline(key)}: {_dump(item, unit, inner, newline)}" for key, item in value.items()]
        return "{" + newline + ("," + newline).join(inner + m for m in members) + newline + base_indent + "}"
    if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        inner = base_indent + unit
        items = [inner + _dump(item, unit, inner, newline) for item in value]
        return "[" + newline + ("," + newline).join(items) + newline + base_indent + "]"
    return _inline(value)


def _inline(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _line_start(text: str, pos: int) -> int:
    return text.rfind("\n", 0, pos) + 1


def _line_indent(text: str, pos: int) -> str:
    start = _line_start(text, pos)
    end = start
    while end < len(text) and text[end] in " \t":
        end += 1
    return text[start:end]


def _starts_line(text: str, pos: int) -> bool:
    return text[_line_start(text, pos) : pos].strip(" \t" + _BOM) == ""


def _is_single_line(text: str, node: Object) -> bool:
    return "\n" not in text[node.start : node.end]


def _indent_unit(text: str, root: Object) -> str:
    """One level of indentation as this file writes it (two spaces, four, a tab...)."""
    for member in root.members:
        if _starts_line(text, member.key_start) and _line_start(text, member.key_start) > root.start:
            outer = _line_indent(text, root.start)
            inner = _line_indent(text, member.key_start)
            if inner.startswith(outer) and len(inner) > len(outer):
                return inner[len(outer) :]
    return "  "


def _append_document(text: str, value: Any, newline: str) -> str:
    """The file holds no value (empty, or only comments): add one after what is there."""
    body = _dump(value, "  ", "", newline) + newline
    if text.strip(" \t\r\n" + _BOM) == "":
        return text[:1] + body if text.startswith(_BOM) else body
    separator = "" if text.endswith("\n") else newline
    return text + separator + body


def _end_of_line_comment(text: str, pos: int) -> int:
    """Where to put a new member after the item ending at `pos`: past a comment that finishes
    the same line (so the comment stays with the line it annotates), else `pos` itself."""
    i, n = pos, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            return end - 1 if end > i and text[end - 1] == "\r" else end
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0 or "\n" in text[i:close]:
                return pos
            i = close + 2
            continue
        if i >= n or text[i] in "\r\n":
            return i
        return pos


def _insert_member(text: str, obj: Object, key: str, value: Any, layout: _Layout) -> str:
    unit, newline = layout.unit, layout.newline
    key_json = _inline(key)
    open_indent = _line_indent(text, obj.start)
    empty_inside = text[obj.start + 1 : obj.end - 1].strip(" \t\r\n") == ""
    if not obj.members and layout.one_line and empty_inside:
        return text[: obj.start + 1] + f"{key_json}: {_inline(value)}" + text[obj.end - 1 :]
    if not obj.members:
        child = open_indent + unit
        member = f"{key_json}: {_dump(value, unit, child, newline)}"
        if empty_inside:
            return (
                text[: obj.start + 1] + newline + child + member + newline + open_indent + text[obj.end - 1 :]
            )
        # Only comments inside: put the member first and leave the comments below it.
        return text[: obj.start + 1] + newline + child + member + text[obj.start + 1 :]

    last = obj.members[-1]
    if _is_single_line(text, obj):
        member = f"{key_json}: {_inline(value)}"
        if last.comma_end is not None:
            return text[: last.comma_end] + " " + member + "," + text[last.comma_end :]
        return text[: last.value.end] + ", " + member + text[last.value.end :]

    # Siblings each on their own line set the indentation; otherwise one unit deeper than `{`.
    child = _line_indent(text, last.key_start) if _starts_line(text, last.key_start) else open_indent + unit
    member = f"{key_json}: {_dump(value, unit, child, newline)}"
    anchor = last.comma_end if last.comma_end is not None else last.value.end
    at = _end_of_line_comment(text, anchor)
    # Keep the file's habit: a trailing comma after the last member stays a trailing comma.
    trailing = "," if last.comma_end is not None else ""
    edited = text[:at] + newline + child + member + trailing + text[at:]
    if last.comma_end is None:
        edited = edited[: last.value.end] + "," + edited[last.value.end :]
    return edited


def _replace_value(text: str, obj: Object, member: Member, value: Any, layout: _Layout) -> str:
    if _is_single_line(text, obj):
        replacement = _inline(value)
    else:
        replacement = _dump(value, layout.unit, _line_indent(text, member.key_start), layout.newline)
    return text[: member.value.start] + replacement + text[member.value.end :]
