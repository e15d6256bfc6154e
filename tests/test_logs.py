"""Logging: a rotating owner-only file, stderr only (never stdout), and no token in any line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from puter_mcp import logs
from puter_mcp.logs import configure_logging, forget_secrets, register_secret, tail_log
from puter_mcp.puter.client import PuterClient
from puter_mcp.puter.errors import PuterError
from puter_mcp.settings import resolve_paths
from tests.helpers import Emulator

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1dWlkIjoiYWJjZGVmZ2hpamtsbW5vcCIsInR5cGUiOiJzZXNzaW9uIn0."
    "Zm9vYmFyYmF6cXV4LXNpZ25hdHVyZS12YWx1ZQ"
)
OPAQUE = "opaque-http-auth-secret-42"  # not JWT-shaped: caught only once registered

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Start from a root logger without handlers, give the old ones back, forget secrets.

    Handlers other tests left behind (say, one bound to a capture stream since closed) would
    otherwise print "--- Logging error ---" with the message into this test's stderr.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in ("httpx2", "httpcore2")}
    root.handlers[:] = []
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in chatty.items():
        logging.getLogger(name).setLevel(old)
    forget_secrets()


def our_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, "_puter_mcp_handler", False)]


def flush() -> None:
    for handler in our_handlers():
        handler.flush()


# --- where lines go ---------------------------------------------------------------------------------


def test_lines_go_to_the_file_and_stderr_never_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "logs" / "puter-mcp.log"
    configure_logging("INFO", log_file)
    logging.getLogger("puter_mcp.test").info("hello %s", "world")
    logging.getLogger("puter_mcp.test").debug("not at INFO")
    flush()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "hello world" in captured.err
    text = log_file.read_text()
    assert "INFO puter_mcp.test: hello world" in text
    assert f" {os.getpid()} " in text
    assert "not at INFO" not in text


def test_stderr_can_be_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "puter-mcp.log"
    configure_logging("INFO", log_file, stderr=False)
    logging.getLogger("x").warning("only in the file")
    flush()
    assert "only in the file" not in capsys.readouterr().err
    assert "only in the file" in log_file.read_text()


def test_reconfiguring_replaces_our_handlers_and_drops_stdout_ones(tmp_path: Path) -> None:
    root = logging.getLogger()
    stdout_handler = logging.StreamHandler(sys.stdout)
    root.addHandler(stdout_handler)
    configure_logging("INFO", tmp_path / "a.log")
    configure_logging("WARNING", tmp_path / "b.log")
    assert len(our_handlers()) == 2
    assert stdout_handler not in root.handlers
    assert root.level == logging.WARNING


def test_unopenable_log_file_warns_and_continues(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log directory should be")
    configure_logging("INFO", blocker / "puter-mcp.log")
    logging.getLogger("x").error("still logged")
    err = capsys.readouterr().err
    assert f"cannot write the log file {blocker / 'puter-mcp.log'}" in err
    assert "still logged" in err
    assert len(our_handlers()) == 1


def test_level_names_are_checked() -> None:
    configure_logging("debug", None)
    assert logging.getLogger().level == logging.DEBUG
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("LOUD", None)


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("DEBUG", logging.DEBUG),
        ("INFO", logging.WARNING),
        ("WARNING", logging.WARNING),
        ("ERROR", logging.ERROR),
    ],
)
def test_httpx2_request_lines_only_when_debugging(level: str, expected: int) -> None:
    configure_logging(level, None)
    assert logging.getLogger("httpx2").level == expected
    assert logging.getLogger("httpcore2").level == expected


# --- the file: permissions and rotation -----------------------------------------------------------


@posix_only
def test_file_and_directory_are_owner_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        log_file = tmp_path / "state" / "logs" / "puter-mcp.log"
        configure_logging("INFO", log_file, stderr=False)
        logging.getLogger("x").info("line")
        flush()
    finally:
        os.umask(old_umask)
    assert log_file.stat().st_mode & 0o777 == 0o600
    assert log_file.parent.stat().st_mode & 0o777 == 0o700


@posix_only
def test_a_loosened_file_is_tightened_again(tmp_path: Path) -> None:
    log_file = tmp_path / "puter-mcp.log"
    log_file.write_text("old line\n")
    log_file.chmod(0o644)
    configure_logging("INFO", log_file, stderr=False)
    assert log_file.stat().st_mode & 0o777 == 0o600


def test_rotation_keeps_a_bounded_number_of_owner_only_files(tmp_path: Path) -> None:
    log_file = tmp_path / "puter-mcp.log"
    old_umask = os.umask(0o022)  # rotated files must not take the umask's 0644
    try:
        configure_logging("INFO", log_file, stderr=False, max_bytes=2_000, backup_count=2)
        logger = logging.getLogger("rotation")
        for number in range(200):
            logger.info("line %03d %s", number, "x" * 40)
        flush()
    finally:
        os.umask(old_umask)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["puter-mcp.log", "puter-mcp.log.1", "puter-mcp.log.2"]
    for name in files:
        path = tmp_path / name
        assert path.stat().st_size <= 2_000
        if sys.platform != "win32":
            assert path.stat().st_mode & 0o777 == 0o600, name
    assert "line 199" in log_file.read_text()
    assert "line 000" not in "".join((tmp_path / name).read_text() for name in files)


@posix_only
def test_follows_a_rotation_made_by_another_process(tmp_path: Path) -> None:
    log_file = tmp_path / "puter-mcp.log"
    configure_logging("INFO", log_file, stderr=False)
    logger = logging.getLogger("shared")
    logger.info("before")
    flush()
    # What another puter-mcp process's rollover does to this process's file.
    log_file.rename(tmp_path / "puter-mcp.log.1")
    logger.info("after")
    flush()
    assert "after" in log_file.read_text()
    assert "after" not in (tmp_path / "puter-mcp.log.1").read_text()
    assert log_file.stat().st_mode & 0o777 == 0o600


# --- redaction ----------------------------------------------------------------------------------


def test_tokens_are_masked_in_messages_and_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "puter-mcp.log"
    configure_logging("DEBUG", log_file)
    register_secret(OPAQUE)
    logger = logging.getLogger("puter_mcp.redaction")
    logger.info("token in the message %s", JWT)
    logger.info(f"token formatted in: {JWT}")
    logger.warning("headers: %r", {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz0123"})
    logger.error("the auth token is %s", OPAQUE)
    flush()
    for text in (log_file.read_text(), capsys.readouterr().err):
        assert JWT not in text
        assert OPAQUE not in text
        assert "abcdefghijklmnopqrstuvwxyz0123" not in text
        assert "eyJh…" in text  # masked, still recognisable
        assert "token in the message" in text


def test_tokens_are_masked_in_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "puter-mcp.log"
    configure_logging("INFO", log_file)
    register_secret(OPAQUE)

    def fail_with_secrets(token: str) -> None:
        raise RuntimeError(f"request with Authorization: Bearer {token} and {OPAQUE} failed")

    try:
        fail_with_secrets(JWT)
    except RuntimeError:
        logging.getLogger("puter_mcp.tb").exception("call failed")
    logging.getLogger("puter_mcp.tb").warning("where am I, %s", JWT, stack_info=True)
    flush()
    for text in (log_file.read_text(), capsys.readouterr().err):
        assert "Traceback (most recent call last)" in text
        assert "RuntimeError: request with Authorization: Bearer" in text
        assert "Stack (most recent call last)" in text
        assert JWT not in text
        assert OPAQUE not in text


def test_short_and_empty_secrets_are_ignored(tmp_path: Path) -> None:
    log_file = tmp_path / "puter-mcp.log"
    configure_logging("INFO", log_file, stderr=False)
    register_secret("")
    register_secret("abc")
    register_secret(None)
    logging.getLogger("x").info("abc is not a secret")
    flush()
    assert "abc is not a secret" in log_file.read_text()


@pytest.mark.anyio
async def test_no_token_in_a_debug_log_of_real_puter_calls(emulator: Emulator, tmp_path: Path) -> None:
    """End to end: every HTTP library's DEBUG lines about authenticated calls stay token-free."""
    log_file = tmp_path / "puter-mcp.log"
    configure_logging("DEBUG", log_file, stderr=False)
    async with PuterClient(emulator.url) as client:
        await client.whoami(emulator.paid.token)
        await client.usage(emulator.paid.token)
        with pytest.raises(PuterError):
            await client.whoami(JWT)
    flush()
    text = log_file.read_text()
    assert "/whoami" in text  # the calls were logged at all
    assert emulator.paid.token not in text
    assert JWT not in text


# --- reading it back --------------------------------------------------------------------------------


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def test_tail_log_returns_the_last_lines(tmp_path: Path) -> None:
    log_file = tmp_path / "puter-mcp.log"
    write_lines(log_file, [f"line {n}" for n in range(10)])
    assert tail_log(log_file, 3) == "line 7\nline 8\nline 9"
    assert tail_log(log_file, 50).splitlines() == [f"line {n}" for n in range(10)]
    assert tail_log(log_file, 0) == ""


def test_tail_log_reads_large_files_from_the_end(tmp_path: Path) -> None:
    log_file = tmp_path / "puter-mcp.log"
    lines = [f"line {n:06d} " + "y" * 90 for n in range(5_000)]  # ~500 kB, several blocks
    write_lines(log_file, lines)
    assert tail_log(log_file, 1_234).splitlines() == lines[-1_234:]


def test_tail_log_continues_into_rotated_files(tmp_path: Path) -> None:
    log_file = tmp_path / "puter-mcp.log"
    write_lines(tmp_path / "puter-mcp.log.2", ["oldest"])
    write_lines(tmp_path / "puter-mcp.log.1", ["older 1", "older 2"])
    write_lines(log_file, ["new 1", "new 2"])
    assert tail_log(log_file, 3).splitlines() == ["older 2", "new 1", "new 2"]
    assert tail_log(log_file, 10).splitlines() == ["oldest", "older 1", "older 2", "new 1", "new 2"]


def test_tail_log_masks_tokens_written_by_anyone(tmp_path: Path) -> None:
    log_file = tmp_path / "puter-mcp.log"
    write_lines(log_file, [f"pasted by hand: {JWT}"])
    shown = tail_log(log_file)
    assert JWT not in shown
    assert "pasted by hand" in shown


def test_tail_log_without_a_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        tail_log(tmp_path / "missing.log")


# --- `puter-mcp logs` -------------------------------------------------------------------------------


def run_logs(home: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    logs.configure_parser(parser)
    return logs.run(parser.parse_args(list(argv)), resolve_paths({"PUTER_MCP_HOME": str(home)}))


def test_logs_command_prints_the_path_and_the_last_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = resolve_paths({"PUTER_MCP_HOME": str(tmp_path)})
    configure_logging("INFO", paths.log_file, stderr=False)
    for number in range(5):
        logging.getLogger("puter_mcp.cmd").info("event %d with %s", number, JWT)
    flush()
    assert run_logs(tmp_path, "-n", "2") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Log file: {paths.log_file}"
    assert len(out) == 3
    assert "event 3" in out[1]
    assert "event 4" in out[2]
    assert JWT not in "\n".join(out)


def test_logs_command_path_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_logs(tmp_path, "--path") == 0
    assert capsys.readouterr().out == f"{tmp_path / 'logs' / 'puter-mcp.log'}\n"


def test_logs_command_before_any_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_logs(tmp_path) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Log file: {tmp_path / 'logs' / 'puter-mcp.log'}\n")
    assert "no log yet" in out


def test_logs_command_reports_an_unreadable_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "logs" / "puter-mcp.log").mkdir(parents=True)  # a directory cannot be read as a log
    assert run_logs(tmp_path) == 1
    assert "cannot read" in capsys.readouterr().err
