"""The sandbox's slow model: a stream a person can watch and cancel."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from puter_mcp.core import ChatCall
from puter_mcp.core.results import StreamProgress
from puter_mcp.emulator.answers import compose_answer, parse_chat_args, stream_lines
from puter_mcp.emulator.catalogue import default_catalogue
from puter_mcp.runtime import open_backend
from puter_mcp.settings import load_settings, resolve_paths


def test_the_slow_model_streams_many_lines_over_about_ten_seconds() -> None:
    model = default_catalogue().find("sandbox-slow")
    assert model is not None and not model.hidden
    assert 5 <= model.stream_seconds <= 15
    args = parse_chat_args({"messages": [{"role": "user", "content": "count to ten"}], "model": model.id})
    lines = stream_lines(compose_answer(model, args, new_id=lambda prefix: f"{prefix}_1"))
    # Steady progress: the lines are evenly spaced, less than a second apart.
    assert model.stream_seconds / (len(lines) - 1) < 1.0


@pytest.mark.anyio
async def test_a_slow_answer_reports_progress_and_can_be_cancelled(home: Path) -> None:
    settings, paths = load_settings(paths=resolve_paths(), env={})
    seen: list[StreamProgress] = []
    async with open_backend(settings, paths, sandbox=True) as backend:
        with anyio.CancelScope() as scope:

            def on_progress(progress: StreamProgress) -> None:
                seen.append(progress)
                if len(seen) == 2:
                    scope.cancel()

            await backend.chat(ChatCall.build(message="count to ten", model="sandbox-slow"), on_progress)
        assert scope.cancelled_caught
    assert [p.model for p in seen] == ["sandbox-slow", "sandbox-slow"]
    assert seen[1].tokens > seen[0].tokens
