"""Where state and logs live, and how their directories are made.

The log file is never inside the state directory (deleting a broken state must not delete the
logs that explain it); every directory puter-mcp makes is owner-only; a file standing where a
directory should be is reported in one sentence that names it, never as a traceback.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from puter_mcp.cli import main
from puter_mcp.logs import configure_logging, ensure_log_file
from puter_mcp.routing.state import open_state_store
from puter_mcp.settings import PrivateDirError, ensure_private_dir, resolve_paths
from tests.helpers import Emulator

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("layout", ["platformdirs", "PUTER_MCP_HOME"])
def test_the_log_is_not_inside_the_state_directory(tmp_path: Path, layout: str) -> None:
    env = {"PUTER_MCP_HOME": str(tmp_path)} if layout == "PUTER_MCP_HOME" else {}
    paths = resolve_paths(env)
    assert paths.state_db.parent == paths.state_dir
    assert not paths.log_file.is_relative_to(paths.state_dir)
    assert not paths.accounts_file.is_relative_to(paths.state_dir)


@posix_only
def test_state_and_log_directories_are_owner_only(tmp_path: Path, loose_umask: None) -> None:
    paths = resolve_paths({"PUTER_MCP_HOME": str(tmp_path / "home")})
    anyio.run(open_state_store(paths.state_db).aclose)
    ensure_log_file(paths.log_file)
    for directory in (tmp_path / "home", paths.state_dir, paths.log_dir):
        assert mode(directory) == 0o700, directory


@posix_only
def test_an_existing_directory_is_left_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)  # noqa: S103 (a shared directory is the point of the test)
    assert ensure_private_dir(shared) == shared
    assert mode(shared) == 0o755


@pytest.mark.parametrize("depth", [0, 2])
def test_a_file_in_the_way_is_named(tmp_path: Path, depth: int) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")
    wanted = blocker.joinpath(*["deeper"] * depth)
    with pytest.raises(PrivateDirError) as caught:
        ensure_private_dir(wanted)
    message = str(caught.value)
    assert f"{blocker} is a file" in message and str(wanted) in message
    assert "Move or delete" in message and "PUTER_MCP_HOME" in message
    assert blocker.read_text() == "not a directory"  # nothing lost


def test_the_log_file_says_which_file_is_in_the_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("x")
    configure_logging("INFO", blocker / "puter-mcp.log", stderr=False)
    assert f"{blocker} is a file" in capsys.readouterr().err


def test_login_with_a_file_where_the_data_directory_goes_says_so(
    emulator: Emulator, home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home.mkdir(parents=True)
    (home / "data").write_text("x")
    monkeypatch.setenv("PUTER_API_ORIGIN", emulator.url)
    monkeypatch.setenv("PUTER_GUI_ORIGIN", emulator.url)
    assert main(["login", "--token", emulator.paid.token]) == 1
    err = capsys.readouterr().err
    assert f"{home / 'data'} is a file" in err and "Traceback" not in err
