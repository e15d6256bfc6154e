"""`.ci/run`, the README's test command, run against stand-in tools: it says what it is doing
before each step, and lets pip show its progress."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a bash script")


def test_every_step_is_announced_before_it_runs(tmp_path: Path) -> None:
    (tmp_path / ".ci").mkdir()
    shutil.copy(ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    tools = tmp_path / ".venv" / "bin"
    tools.mkdir(parents=True)
    for name in ("python", "ruff", "pyright", "lint-imports"):
        stand_in = tools / name
        stand_in.write_text(f'#!/bin/sh\necho "ran {name} $*"\n')
        stand_in.chmod(0o755)
    env = {"PATH": os.environ.get("PATH", "")}
    done = subprocess.run(
        ["bash", str(tmp_path / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("== ")  # nothing runs before the first announcement
    runs = [index for index, line in enumerate(lines) if line.startswith("ran ")]
    assert len(runs) == 7  # pip twice, ruff twice, pyright, lint-imports, pytest
    for index in runs:
        assert lines[index - 1].startswith("== "), lines
    pip = [line for line in lines if line.startswith("ran python -m pip")]
    assert pip and not any("--quiet" in line or " -q" in line for line in pip)
    assert lines[runs[-1]].startswith("ran python -m pytest -q")
