"""`--sandbox`: the commands that accept it, and what it leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from puter_mcp.cli import main
from tests.helpers import SCRIPT, stop_with


def test_a_bad_chain_names_the_users_file_and_line_in_the_sandbox(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('default_model = "auto"\n\n[chains.review]\nmodels = "gpt-5-nano"\n')
    assert main(["--sandbox", "--config", str(bad), "models"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: line 3: [chains.review]" in err
    assert "models = ['gpt-5-nano']" in err  # the chain module's own advice is kept
    assert "puter-mcp-sandbox-" not in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stopped_sandbox_server_leaves_no_temporary_directory(
    home: Path, tmp_path: Path, how: signal.Signals
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PUTER_MCP_HOME": str(home)}
    env["TMPDIR"] = str(scratch)  # where tempfile puts the sandbox's home
    command = [SCRIPT, "--sandbox", "serve", "--transport", "http", "--port", "0"]
    server = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert server.stderr is not None
        line = b""
        for _ in range(50):  # bounded: the notice, then the address
            line = server.stderr.readline()
            if not line or b"serving MCP at " in line:
                break
        assert b"serving MCP at " in line, line
        assert [p.name for p in scratch.iterdir() if p.name.startswith("puter-mcp-sandbox-")]
    except BaseException:
        server.kill()
        server.wait()
        raise
    assert stop_with(server, how) == -how
    assert list(scratch.iterdir()) == []


def test_a_sandbox_command_that_ends_normally_leaves_no_temporary_directory(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert main(["--sandbox", "status"]) == 0
    assert "sandbox-paid" in capsys.readouterr().out
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("command", ["accounts", "status", "models", "chat"])
def test_every_sandbox_command_takes_the_flag_after_its_name(
    home: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [command, "--sandbox"] + (["hello"] if command == "chat" else [])
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "SANDBOX" in out + err
    assert not (home / "data" / "accounts.json").exists()  # the real files are untouched


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_an_answer_prints_whole_on_a_narrower_output_encoding(home: Path, encoding: str) -> None:
    # Windows writes a redirected stdout in cp1252: an emoji in the answer must not stop the
    # answer with a traceback; what the encoding cannot hold is shown as '?'.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PUTER_MCP_HOME": str(home)}
    env["PYTHONIOENCODING"] = encoding
    done = subprocess.run(
        [SCRIPT, "--sandbox", "chat", "-m", "gpt-5-nano", "caf\u00e9 \U0001f600 ok"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"You said: " in done.stdout
    assert b"? ok" in done.stdout
