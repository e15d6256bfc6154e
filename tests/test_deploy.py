"""deploy/: the systemd unit is valid for systemd and keeps its hardening."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import SCRIPT

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "puter-mcp-gateway.service"
ANALYZE = shutil.which("systemd-analyze")

needs_systemd = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _installed_copy(tmp_path: Path) -> Path:
    """The unit as installed on this machine: its ExecStart names this checkout's script
    (systemd-analyze checks that the program exists)."""
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/puter-mcp", str(Path(SCRIPT).resolve())))
    return copy


@needs_systemd
def test_systemd_finds_nothing_wrong_with_the_unit(tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "verify", str(_installed_copy(tmp_path))], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@needs_systemd
def test_the_unit_stays_hardened(tmp_path: Path) -> None:
    assert ANALYZE is not None
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", str(_installed_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    # systemd rates 0 (fully locked down) to 10 (exposed); below 2 is its "OK".
    assert float(found.group(1)) < 2.0


def test_the_unit_runs_the_gateway_with_a_dynamic_user_and_a_private_state_directory() -> None:
    lines = {line.strip() for line in UNIT.read_text().splitlines()}
    assert "ExecStart=/usr/local/bin/puter-mcp gateway" in lines
    assert {"DynamicUser=yes", "StateDirectory=puter-mcp", "ProtectSystem=strict", "UMask=0077"} <= lines
    assert "Environment=PUTER_MCP_HOME=/var/lib/puter-mcp" in lines
    # The token comes from a root-only environment file, never from the command line.
    assert "EnvironmentFile=-/etc/puter-mcp/gateway.env" in lines
    assert not any("PUTER_AUTH_TOKEN=" in line for line in lines if not line.startswith("#"))
