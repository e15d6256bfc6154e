"""`doctor` proves each client entry by starting it as the client would and listing its tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from puter_mcp.doctor import Check, run_checks
from puter_mcp.install import Host, InstallContext, InstallRequest, install
from puter_mcp.install.entries import current_installation
from puter_mcp.install.host import normalise_platform
from puter_mcp.settings import Paths, Settings
from tests.helpers import Emulator, by_name, settings_for

pytestmark = pytest.mark.anyio

TOOLS = "puter-chat, puter-models, puter-account"

Ready = tuple[Settings, Paths, dict[str, str]]
"""The settings and paths `doctor` reads, and the environment it passes to the clients."""


@pytest.fixture
def ready(emulator: Emulator, home: Path) -> Ready:
    home.mkdir(parents=True, exist_ok=True)
    settings, paths = settings_for(emulator, home)
    return settings, paths, {"PUTER_API_ORIGIN": emulator.url, "PUTER_GUI_ORIGIN": emulator.url}


def write_cursor_entry(machine: Path, entry: dict[str, object]) -> Path:
    path = machine / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mcpServers": {"puter": entry}}))
    return path


async def client_check(ready: Ready, machine: Path, env: dict[str, str] | None = None) -> Check:
    settings, paths, base_env = ready
    report = await run_checks(
        settings,
        paths,
        env={**base_env, **(env or {})},
        home=machine,
        platform="linux",
        which=lambda _name: None,
    )
    (check,) = [check for check in report.checks if check.name.startswith("client ")]
    return check


async def test_an_entry_whose_command_does_not_exist_fails_with_command_not_found(
    ready: Ready, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "puter-mcp"
    write_cursor_entry(tmp_path / "machine", {"command": str(missing), "args": []})
    check = await client_check(ready, tmp_path / "machine")
    assert check.status == "fail"
    assert f"command not found: {missing}" in check.detail


async def test_an_entry_install_writes_from_this_virtualenv_starts_and_lists_the_three_tools(
    ready: Ready, tmp_path: Path
) -> None:
    # The done-when of the launcher fix: install from a checkout virtualenv (this test's own),
    # then doctor starts exactly what install wrote, with the client's bare environment.
    machine = tmp_path / "machine"
    host = Host(normalise_platform("linux"), machine, tmp_path, {})
    installation = current_installation()
    assert installation.origin != "index", "the test virtualenv is an editable checkout"
    result = install(InstallRequest("cursor"), InstallContext(host=host, installation=installation))
    assert result.path is not None
    entry = json.loads(result.path.read_text())["mcpServers"]["puter"]
    assert entry["command"] == str(Path(sys.executable).parent / "puter-mcp")
    assert "uvx" not in json.dumps(entry)

    check = await client_check(ready, machine)
    assert check.status == "ok", check.detail
    assert f"started and listed 3 tools: {TOOLS}" in check.detail


async def test_uvx_that_cannot_find_the_package_shows_its_error(ready: Ready, tmp_path: Path) -> None:
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    uvx = fake_bin / "uvx"
    uvx.write_text("#!/bin/sh\necho 'error: puter-mcp was not found in the package registry' >&2\nexit 1\n")
    uvx.chmod(0o755)
    machine = tmp_path / "machine"
    # Claude Code is started from a shell: its servers get that shell's PATH, here the fake uvx.
    (machine).mkdir()
    (machine / ".claude.json").write_text(
        json.dumps({"mcpServers": {"puter": {"command": "uvx", "args": ["puter-mcp"]}}})
    )
    check = await client_check(ready, machine, {"PATH": f"{fake_bin}:/usr/bin:/bin"})
    assert check.status == "fail"
    assert "exited with code 1 before answering" in check.detail
    assert "not found in the package registry" in check.detail


async def test_an_http_entry_nobody_answers_is_a_clear_failure(ready: Ready, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mcp"
    write_cursor_entry(tmp_path / "machine", {"url": url, "headers": {"Authorization": "Bearer x" * 8}})
    check = await client_check(ready, tmp_path / "machine")
    assert check.status == "fail"
    assert f"cannot list tools at {url}" in check.detail


async def test_a_broken_config_toml_does_not_stop_the_client_checks(ready: Ready, tmp_path: Path) -> None:
    _settings, paths, env = ready
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text("default_model = [unclosed\n")
    missing = tmp_path / "nowhere" / "puter-mcp"
    write_cursor_entry(tmp_path / "machine", {"command": str(missing), "args": []})
    report = await run_checks(
        None, paths, env=env, home=tmp_path / "machine", platform="linux", which=lambda _name: None
    )
    checks = by_name(report)
    assert checks["config"].status == "fail"
    assert f"command not found: {missing}" in checks["client cursor"].detail
