"""Which command `install` writes: the one that really starts this installation of puter-mcp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from puter_mcp.install import Host, InstallContext, InstallRequest, install
from puter_mcp.install.entries import (
    Installation,
    choose_launcher,
    current_installation,
    is_uv_cache_environment,
    origin_of,
)

UVX = "/opt/uv/bin/uvx"


def only_uvx(name: str) -> str | None:
    return UVX if name == "uvx" else None


def venv_with_script(tmp_path: Path) -> Path:
    scripts = tmp_path / "venv" / "bin"
    scripts.mkdir(parents=True)
    (scripts / "puter-mcp").write_text("#!/bin/sh\n")
    return scripts


@pytest.mark.parametrize(
    ("direct_url", "expected"),
    [
        (None, ("index", None)),
        (
            '{"url": "file:///home/me/puter-mcp", "dir_info": {"editable": true}}',
            ("local", "/home/me/puter-mcp"),
        ),
        ('{"url": "file:///home/me/puter-mcp", "dir_info": {}}', ("local", "/home/me/puter-mcp")),
        (
            '{"url": "https://github.com/x/puter-mcp", "vcs_info": {"vcs": "git", "commit_id": "abc"}}',
            ("other", "git+https://github.com/x/puter-mcp@abc"),
        ),
        ('{"url": "https://example.com/p.whl", "archive_info": {}}', ("other", "https://example.com/p.whl")),
        ("not json", ("other", None)),
    ],
)
def test_origin_is_read_from_direct_url_json(
    direct_url: str | None, expected: tuple[str, str | None]
) -> None:
    assert origin_of(direct_url) == expected


def test_uv_cache_environments_are_recognised() -> None:
    assert is_uv_cache_environment(Path("/home/me/.cache/uv/archive-v0/Xy12"))
    assert not is_uv_cache_environment(Path("/home/me/.local/share/uv/tools/puter-mcp"))
    assert not is_uv_cache_environment(Path("/work/puter-mcp/.venv"))


def test_from_an_index_uvx_runs_the_published_package(tmp_path: Path) -> None:
    facts = Installation("index", script_dir=venv_with_script(tmp_path))
    launcher = choose_launcher(facts, absolute=True, which=only_uvx)
    assert (launcher.command, launcher.args) == (UVX, ("puter-mcp",))
    assert "package index" in launcher.reason


@pytest.mark.parametrize("origin", ["local", "other"])
def test_a_virtualenv_or_checkout_gets_its_own_script_even_with_uvx_on_path(
    tmp_path: Path, origin: str
) -> None:
    scripts = venv_with_script(tmp_path)
    facts = Installation(origin, "/home/me/puter-mcp", ephemeral=False, script_dir=scripts)  # type: ignore[arg-type]
    launcher = choose_launcher(facts, absolute=False, which=only_uvx)
    assert (launcher.command, launcher.args) == (str(scripts / "puter-mcp"), ())
    assert launcher.reason


def test_under_uvx_from_a_checkout_uvx_builds_that_checkout_again(tmp_path: Path) -> None:
    facts = Installation("local", "/home/me/puter-mcp", ephemeral=True, script_dir=venv_with_script(tmp_path))
    launcher = choose_launcher(facts, absolute=True, which=only_uvx)
    assert (launcher.command, launcher.args) == (UVX, ("--from", "/home/me/puter-mcp", "puter-mcp"))
    assert "/home/me/puter-mcp" in launcher.reason


def test_this_test_virtualenv_is_an_editable_checkout_and_gets_its_script() -> None:
    facts = current_installation()
    assert facts.origin == "local"
    launcher = choose_launcher(facts, absolute=True, which=only_uvx)
    assert launcher.kind == "script"
    assert Path(launcher.command).is_file()


def test_install_output_names_the_launcher_and_why(tmp_path: Path) -> None:
    scripts = venv_with_script(tmp_path)
    host = Host("linux", tmp_path / "home", tmp_path, {})
    context = InstallContext(
        host=host, which=only_uvx, installation=Installation("local", script_dir=scripts)
    )
    result = install(InstallRequest("cursor"), context)
    assert result.path is not None
    entry = json.loads(result.path.read_text())["mcpServers"]["puter"]
    assert entry == {"command": str(scripts / "puter-mcp"), "args": []}
    assert f"Launcher: {scripts / 'puter-mcp'}" in result.message
    assert "local directory" in result.message
