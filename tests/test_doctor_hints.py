"""doctor's fix for bad [chains] tables names what is wrong with each key, and only that."""

from __future__ import annotations

from pathlib import Path

import pytest

from puter_mcp.doctor import run_checks
from puter_mcp.settings import resolve_paths
from tests.helpers import Emulator

pytestmark = pytest.mark.anyio


CASES = {
    "free_fallback": (
        '[chains.review]\nmodels = ["gpt-5-nano"]\nfree_fallback = "no"\n',
        "free_fallback = true or false",
        "models =",
    ),
    "models": ("[chains.review]\nmodels = []\n", 'models = ["model", ...]', "free_fallback"),
    "description": (
        '[chains.review]\nmodels = ["gpt-5-nano"]\ndescription = 3\n',
        'description = "',
        "models =",
    ),
    "unknown key": (
        '[chains.review]\nmodels = ["gpt-5-nano"]\nmodles = 1\n',
        "rename or remove the unknown key",
        "models =",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_chains_fix_speaks_of_the_key_that_is_wrong(
    emulator: Emulator, tmp_path: Path, case: str
) -> None:
    text, expected, absent = CASES[case]
    paths = resolve_paths({"PUTER_MCP_HOME": str(tmp_path / "puter")})
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text(text)
    env = {"PUTER_API_ORIGIN": emulator.url, "PUTER_GUI_ORIGIN": emulator.url}
    report = await run_checks(
        None, paths, env=env, home=tmp_path / "machine", platform="linux", launch_clients=False
    )
    config = next(check for check in report.checks if check.name == "config")
    assert config.status == "fail"
    assert config.fix is not None
    assert expected in config.fix
    assert absent not in config.fix
