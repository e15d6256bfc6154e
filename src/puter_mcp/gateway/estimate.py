"""Token estimates, for when a count is needed before Puter gives one (or when it gives none).

A token is about four characters of English or code in the tokenizers of today's models; an
image costs a fixed amount (Anthropic's documented cost of a ~1 megapixel image is about 1,600
tokens), and each message and tool adds its framing. The figures are estimates and every
response that carries one says so (docs/gateway-reference.md, "Usage").
"""

from __future__ import annotations

import json

from puter_mcp.core import ChatCall, ImagePart, ReasoningPart, TextPart

__all__ = ["IMAGE_TOKENS", "estimate_call_tokens", "estimate_tokens"]

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1600
MESSAGE_TOKENS = 4
"""The framing of one message (role, separators)."""


def estimate_tokens(text: str) -> int:
    """About how many tokens `text` is (at least 1 for any non-empty text)."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def estimate_call_tokens(call: ChatCall) -> int:
    """About how many input tokens `call` sends: its text, images, tool calls and tool schemas."""
    total = 0
    for turn in call.messages:
        total += MESSAGE_TOKENS
        if isinstance(turn.content, str):
            total += estimate_tokens(turn.content)
        else:
            for part in turn.content:
                if isinstance(part, TextPart | ReasoningPart):
                    total += estimate_tokens(part.text)
                elif isinstance(part, ImagePart):
                    total += IMAGE_TOKENS
        for tool_call in turn.tool_calls:
            total += estimate_tokens(tool_call.name) + estimate_tokens(tool_call.arguments)
    for tool in call.tools:
        schema = json.dumps(tool.parameters, separators=(",", ":"))
        total += (
            estimate_tokens(tool.name) + estimate_tokens(tool.description or "") + estimate_tokens(schema)
        )
    return total
