"""`--sandbox`: the commands that accept it, and what it leaves behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from puter_mcp.cli import main


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
