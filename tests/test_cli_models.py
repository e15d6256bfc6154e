"""`puter-mcp models`: paging past the end and the provider filter, against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from puter_mcp.cli import main


def _models(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["--sandbox", "models", "--json", "--limit", "500", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_an_offset_past_the_end_says_so(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    total = _models(capsys)["total"]
    assert main(["--sandbox", "models", "--offset", str(total + 61)]) == 0
    out = capsys.readouterr().out
    assert f"offset {total + 61} is past the end: {total} models matched" in out
    assert f"from 0 to {total - 1}" in out
    assert "No model matched" not in out


def test_nothing_matching_says_so(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sandbox", "models", "no-such-model-anywhere"]) == 0
    assert "No model matched" in capsys.readouterr().out


def test_the_provider_filter_matches_who_serves_the_model(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    openai = {m["id"]: m["provider"] for m in _models(capsys, "--provider", "openai")["models"]}
    assert openai and set(openai.values()) == {"openai-completion"}
    assert "gpt-oss-120b" not in openai  # made by OpenAI, served by groq
    groq = [m["id"] for m in _models(capsys, "--provider", "groq")["models"]]
    assert "gpt-oss-120b" in groq
    anthropic = {m["provider"] for m in _models(capsys, "--provider", "anthropic")["models"]}
    assert anthropic == {"claude"}
