"""Settings precedence and the errors a broken config file gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from puter_mcp.puter.timeouts import DEFAULT_TIMEOUTS, Timeouts
from puter_mcp.settings import ConfigError, TimeoutSettings, load_settings, resolve_paths


def _paths(tmp_path: Path):
    return resolve_paths({"PUTER_MCP_HOME": str(tmp_path)})


def test_defaults_without_a_config_file(tmp_path: Path) -> None:
    settings, paths = load_settings(paths=_paths(tmp_path), env={})
    assert settings.api_origin == "https://api.puter.com"
    assert settings.default_model == "auto"
    assert settings.routing.strategy == "round-robin"
    assert paths.accounts_file == tmp_path / "data" / "accounts.json"
    assert paths.state_db == tmp_path / "state" / "state.db"


def test_config_then_env_then_flags(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text(
        'default_model = "chat-fast"\nlog_level = "DEBUG"\n[http]\nport = 9000\n[routing]\nmax_attempts = 3\n'
    )
    env = {
        "PUTER_MCP_PORT": "9100",
        "PUTER_API_ORIGIN": "http://127.0.0.1:4100",
        "PUTER_MCP_MAX_ATTEMPTS": "4",
    }
    settings, _ = load_settings(paths=paths, env=env, overrides={"http.port": 9200, "http.host": None})
    assert settings.default_model == "chat-fast"  # config
    assert settings.log_level == "DEBUG"
    assert settings.api_origin == "http://127.0.0.1:4100"  # env
    assert settings.routing.max_attempts == 4  # env beats config
    assert settings.http.port == 9200  # flag beats env
    assert settings.http.host == "127.0.0.1"  # an unset flag hides nothing


def test_a_config_file_with_a_byte_order_mark_reads_as_without(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_bytes(b'\xef\xbb\xbfdefault_model = "chat-fast"\n')  # as Notepad saves it
    settings, _ = load_settings(paths=paths, env={})
    assert settings.default_model == "chat-fast"


def test_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text('default_model = "auto"\nlog_level = \n')
    with pytest.raises(ConfigError) as info:
        load_settings(paths=paths, env={})
    message = str(info.value)
    assert str(paths.config_file) in message
    assert "line 2" in message


def test_wrong_value_names_file_line_and_key(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text('default_model = "auto"\n\n[routing]\nstrategy = "random"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(paths=paths, env={})
    message = str(info.value)
    assert f"{paths.config_file}, line 4" in message
    assert "routing.strategy" in message


def test_unknown_key_is_reported(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text("[timeouts]\nconect = 3\n")
    with pytest.raises(ConfigError, match=r"line 2: timeouts\.conect: unknown setting"):
        load_settings(paths=paths, env={})


def test_bad_environment_value_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PUTER_MCP_PORT"):
        load_settings(paths=_paths(tmp_path), env={"PUTER_MCP_PORT": "eighty"})


def test_origin_must_be_an_origin(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="origin"):
        load_settings(paths=_paths(tmp_path), env={"PUTER_API_ORIGIN": "api.puter.com/x"})


def test_config_flag_points_elsewhere(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.toml"
    other.write_text('default_model = "coding-fast"\n')
    paths = resolve_paths({"PUTER_MCP_HOME": str(tmp_path)}, config_file=other)
    settings, used = load_settings(paths=paths, env={})
    assert used.config_file == other
    assert settings.default_model == "coding-fast"


def test_timeout_defaults_are_the_clients_own() -> None:
    # A client built without settings (tests, the sandbox) waits exactly as a configured one.
    assert Timeouts(**TimeoutSettings().model_dump()) == DEFAULT_TIMEOUTS
    assert DEFAULT_TIMEOUTS.total == 300.0  # docs/configuration.md states it


def test_timeouts_can_still_be_set(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text("[timeouts]\ntotal = 120\n")
    settings, _ = load_settings(paths=paths, env={"PUTER_MCP_TIMEOUT_IDLE": "5"})
    assert Timeouts(**settings.timeouts.model_dump()) == Timeouts(idle=5.0, total=120.0)
