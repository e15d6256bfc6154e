"""A new user's first five minutes, through the real commands: sign in with the browser, install
into a client, run doctor, and make the client's first `puter-chat` call from the installed entry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import TextContent

from tests.helpers import Emulator

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

BIN = Path(sys.executable).parent
SCRIPT = shutil.which("puter-mcp", path=str(BIN)) or "puter-mcp"
FAKE_BROWSER = Path(__file__).with_name("fake_browser.py")


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


async def test_login_install_doctor_first_call(emulator: Emulator, tmp_path: Path) -> None:
    user_home = tmp_path / "user"
    user_home.mkdir()
    env = {
        # Only the venv on PATH: no uvx here, so install writes the absolute path of this puter-mcp.
        "PATH": f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(user_home),
        "PUTER_MCP_HOME": str(user_home / "puter-mcp"),
        "PUTER_API_ORIGIN": emulator.url,
        "PUTER_GUI_ORIGIN": emulator.url,
        "BROWSER": f"{sys.executable} {FAKE_BROWSER} %s",
    }

    login = _run(["login", "--timeout", "30"], env)
    assert login.returncode == 0, login.stderr
    assert "Signed in as paid_user" in login.stdout
    assert f"{emulator.url}/?action=authme&redirectURL=" in login.stderr  # the URL is always printed
    assert emulator.paid.token not in login.stdout + login.stderr

    install = _run(["install", "claude-desktop"], env)
    assert install.returncode == 0, install.stderr
    config_file = user_home / ".config" / "Claude" / "claude_desktop_config.json"
    entry = json.loads(config_file.read_text())["mcpServers"]["puter"]
    assert Path(entry["command"]).is_absolute()
    again = _run(["install", "claude-desktop"], env)
    assert again.returncode == 0
    assert "up to date" in again.stdout + again.stderr

    doctor = _run(["doctor", "--json"], env)
    report = json.loads(doctor.stdout)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert all(check["status"] != "fail" for check in report["checks"])
    assert emulator.paid.token not in doctor.stdout

    # What Claude Desktop would do: start the entry it was given, and call the tool.
    server_env = {**env, **entry.get("env", {})}
    params = StdioServerParameters(command=entry["command"], args=entry.get("args", []), env=server_env)
    async with Client(params) as client:
        result = await client.call_tool("puter-chat", {"message": "my very first question"})
    assert not result.is_error
    text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
    assert "my very first question" in text
    assert result.structured_content is not None
    assert result.structured_content["account"] == "paid_user"
