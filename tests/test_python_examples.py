"""The Python examples of README.md and docs/python.md run as they are, against the sandbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCED = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks_of(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of a Markdown text, as (language, code)."""
    return [(match[1], match[2]) for match in FENCED.finditer(text)]


def section_of(text: str, heading: str) -> str:
    """The text under a `## heading`, up to the next heading of that level."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def run_example(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run `code` with the project's Python, in a private home, with no account of the
    developer's own; the sandbox's throw-away files go to a private temporary directory."""
    script = tmp_path / "example.py"
    script.write_text(code)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PUTER_MCP_HOME": str(tmp_path / "home"),
        "TMPDIR": str(scratch),
    }
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert list(scratch.iterdir()) == [], "the sandbox left files behind"
    return done


def test_the_readme_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    blocks = blocks_of(section_of((ROOT / "README.md").read_text(), "Use it from Python"))
    languages = [language for language, _ in blocks]
    assert languages[:2] == ["python", "text"], "the example, then what it prints"
    code, shown = blocks[0][1], blocks[1][1]

    done = run_example(code, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout == shown


DOC_EXAMPLES = [
    code for language, code in blocks_of((ROOT / "docs" / "python.md").read_text()) if language == "python"
]


@pytest.mark.parametrize("code", DOC_EXAMPLES, ids=[f"example {n}" for n in range(1, len(DOC_EXAMPLES) + 1)])
def test_each_example_of_docs_python_md_runs(code: str, tmp_path: Path) -> None:
    done = run_example(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.strip()


def test_docs_python_md_has_its_examples() -> None:
    assert len(DOC_EXAMPLES) == 2


def test_the_readme_gateway_example_runs_against_the_sandbox_gateway(tmp_path: Path) -> None:
    """The official SDKs of the README's Gateway section, against `puter-mcp gateway --sandbox`
    (on a free port instead of 8000)."""
    blocks = blocks_of(
        section_of((ROOT / "README.md").read_text(), "Gateway: the OpenAI, Anthropic and Ollama APIs")
    )
    [code] = [code for language, code in blocks if language == "python"]
    assert "127.0.0.1:8000" in code
    script = Path(sys.executable).with_name("puter-mcp")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PUTER_MCP_HOME": str(tmp_path / "home"),
    }
    gateway = subprocess.Popen(
        [str(script), "gateway", "--sandbox", "--port", "0"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert gateway.stderr is not None
        base = ""
        for _ in range(20):
            line = gateway.stderr.readline()
            if "OpenAI" in line:
                base = line.split()[-1].removesuffix("/v1")
                break
        assert base.startswith("http://127.0.0.1:"), "the gateway printed no base URL"
        done = run_example(code.replace("http://127.0.0.1:8000", base), tmp_path)
    finally:
        gateway.terminate()
        gateway.wait(timeout=20)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("gpt-5-nano") and "Puter emulator" in lines[0]
    assert lines[1].startswith("claude-sonnet-4-5") and "Puter emulator" in lines[1]
    assert "Puter emulator" in lines[2]
