"""Accounts for a fleet: a read-only accounts file (``--accounts-file`` / ``[accounts] file``) or
the JSON of ``PUTER_MCP_ACCOUNTS`` replaces the home's saved accounts; never written; a clear
error when missing or malformed; `login`, `logout`, `use` and `rename` refuse to edit them."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import openai
import pytest

from puter_mcp.accounts.store import (
    AccountsError,
    FixedAccountsStore,
    ReadOnlyAccounts,
    fixed_accounts,
)
from puter_mcp.cli import main
from puter_mcp.core import Backend, BackendError, ChatCall, Turn
from puter_mcp.settings import AccountsSettings, Settings, resolve_paths
from tests.helpers import (
    SCRIPT,
    Emulator,
    Setup,
    by_name,
    save_accounts,
    script_env,
    settings_for,
    start_gateway_process,
)

pytestmark = pytest.mark.anyio


def _secret_file(emulator: Emulator, tmp_path: Path) -> Path:
    """The paid account's accounts.json, as a secret mounted read-only would be (0444 in a
    0555 directory; the tests may run as root, so nothing being written is checked too)."""
    maker = resolve_paths({"PUTER_MCP_HOME": str(tmp_path / "maker")})
    save_accounts(maker, emulator.paid)
    mounted = tmp_path / "secrets"
    mounted.mkdir()
    target = mounted / "accounts.json"
    shutil.copyfile(maker.accounts_file, target)
    target.chmod(0o444)
    mounted.chmod(0o555)
    return target


def _fingerprint(path: Path) -> tuple[bytes, int, list[str]]:
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))


async def test_an_accounts_file_replaces_the_homes_and_is_never_written(
    emulator: Emulator, home: Path, tmp_path: Path
) -> None:
    secret = _secret_file(emulator, tmp_path)
    before = _fingerprint(secret)
    settings, paths = settings_for(emulator, home, accounts=AccountsSettings(file=secret))
    save_accounts(paths, emulator.free)  # the home's own: replaced, so not used
    async with Backend.create(settings, paths, env={}) as backend:
        overview = await backend.accounts_overview()
        outcome = await backend.chat(ChatCall(model="gpt-5-nano", messages=[Turn(role="user", content="hi")]))
    assert [account.username for account in overview.accounts] == [emulator.paid.username]
    assert outcome.metadata().account == overview.accounts[0].name
    assert _fingerprint(secret) == before
    assert stat.S_IMODE(secret.stat().st_mode) == 0o444


async def test_puter_mcp_accounts_holds_the_json_itself(
    emulator: Emulator, home: Path, tmp_path: Path
) -> None:
    text = _secret_file(emulator, tmp_path).read_text()
    settings, paths = settings_for(emulator, home)
    async with Backend.create(settings, paths, env={"PUTER_MCP_ACCOUNTS": text}) as backend:
        overview = await backend.accounts_overview()
    assert [account.username for account in overview.accounts] == [emulator.paid.username]
    assert not paths.accounts_file.exists()  # nothing saved in the home


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"version": 1, "accounts": {}}', '"accounts" is not a list'),
        (b'{"version": 99, "accounts": []}', "newer puter-mcp"),
        (b'{"version": 1, "accounts": [{"name": "x"}]}', "account #1 is invalid"),
    ],
)
def test_a_malformed_source_is_a_clear_error(tmp_path: Path, content: bytes, said: str) -> None:
    bad = tmp_path / "accounts.json"
    bad.write_bytes(content)
    with pytest.raises(AccountsError, match=said) as from_file:
        fixed_accounts(bad, {})
    assert f"the accounts file {bad} cannot be used" in str(from_file.value)
    assert sorted(os.listdir(tmp_path)) == ["accounts.json"]  # no copy made, nothing written
    with pytest.raises(AccountsError, match=said) as from_env:
        fixed_accounts(None, {"PUTER_MCP_ACCOUNTS": content.decode()})
    assert "PUTER_MCP_ACCOUNTS cannot be used" in str(from_env.value)


def test_a_missing_file_or_both_sources_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AccountsError, match="does not exist"):
        fixed_accounts(tmp_path / "nowhere.json", {})
    (tmp_path / "a.json").write_text('{"version": 1, "accounts": []}')
    with pytest.raises(AccountsError, match="use one of them"):
        fixed_accounts(tmp_path / "a.json", {"PUTER_MCP_ACCOUNTS": '{"version": 1, "accounts": []}'})
    assert fixed_accounts(None, {}) is None


async def test_the_backend_refuses_to_start_over_a_missing_file(
    emulator: Emulator, home: Path, tmp_path: Path
) -> None:
    settings, paths = settings_for(emulator, home, accounts=AccountsSettings(file=tmp_path / "gone.json"))
    with pytest.raises(BackendError, match="does not exist"):
        Backend.create(settings, paths, env={})


def test_read_only_accounts_refuse_every_change(emulator: Emulator, tmp_path: Path) -> None:
    secret = _secret_file(emulator, tmp_path)
    before = _fingerprint(secret)
    store = FixedAccountsStore.from_file(secret)
    name = store.load().names[0]
    for change in (
        lambda: store.remove(name),
        lambda: store.remove_all(),
        lambda: store.rename(name, "other"),
        lambda: store.set_default(name),
        lambda: store.set_enabled(name, False),
    ):
        with pytest.raises(ReadOnlyAccounts, match="never changes"):
            change()
    assert _fingerprint(secret) == before


def test_a_changed_file_is_read_again(emulator: Emulator, tmp_path: Path) -> None:
    secret = tmp_path / "accounts.json"
    maker = resolve_paths({"PUTER_MCP_HOME": str(tmp_path / "maker")})
    save_accounts(maker, emulator.paid)
    shutil.copyfile(maker.accounts_file, secret)
    store = FixedAccountsStore.from_file(secret)
    assert store.load().names == [emulator.paid.username]
    save_accounts(maker, emulator.free)  # a rotated secret
    shutil.copyfile(maker.accounts_file, secret)
    assert sorted(store.load().names) == sorted([emulator.paid.username, emulator.free.username])
    secret.write_text("{broken")
    assert "cannot be used now" in (store.load().problem or "")


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["logout", "--all"], "logout"),
        (["login", "--token-from-env"], "login"),
        (["use", "someone"], "use"),
        (["rename", "a", "b"], "rename"),
    ],
)
def test_the_account_commands_refuse_read_only_accounts(
    emulator: Emulator,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    command: str,
) -> None:
    paths = resolve_paths({"PUTER_MCP_HOME": str(home)})
    save_accounts(paths, emulator.free)
    saved = paths.accounts_file.read_bytes()
    monkeypatch.setenv("PUTER_MCP_ACCOUNTS", _secret_file(emulator, tmp_path).read_text())
    monkeypatch.setenv("PUTER_AUTH_TOKEN", "unused-token")
    assert main(argv) == 1
    said = capsys.readouterr().err
    assert f"`puter-mcp {command}` cannot change these accounts" in said
    assert "PUTER_MCP_ACCOUNTS" in said and "read-only" in said
    assert paths.accounts_file.read_bytes() == saved


def test_the_accounts_file_is_a_setting(tmp_path: Path) -> None:
    assert Settings().accounts.file is None
    from puter_mcp.settings import load_settings

    paths = resolve_paths({"PUTER_MCP_HOME": str(tmp_path)})
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text('[accounts]\nfile = "/run/secrets/puter-accounts.json"\n')
    settings, _ = load_settings(paths=paths, env={})
    assert settings.accounts.file == Path("/run/secrets/puter-accounts.json")
    flagged, _ = load_settings(paths=paths, env={}, overrides={"accounts.file": str(tmp_path / "x.json")})
    assert flagged.accounts.file == tmp_path / "x.json"


@pytest.mark.slow
def test_a_gateway_answers_from_an_accounts_file_given_by_the_flag(
    emulator: Emulator, home: Path, tmp_path: Path
) -> None:
    secret = _secret_file(emulator, tmp_path)
    before = _fingerprint(secret)
    env = script_env(home, emulator)  # the home has no account at all
    gateway = start_gateway_process(env, "--accounts-file", str(secret))
    try:
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-anything", max_retries=0) as client:
            answer = client.chat.completions.create(
                model="gpt-5-nano", messages=[{"role": "user", "content": "hi"}]
            )
        assert answer.choices[0].message.content
    finally:
        gateway.stop()
    assert _fingerprint(secret) == before
    assert not resolve_paths({"PUTER_MCP_HOME": str(home)}).accounts_file.exists()

    missing = subprocess.run(
        [SCRIPT, "gateway", "--port", "0", "--accounts-file", str(tmp_path / "gone.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0
    assert "does not exist" in missing.stderr


async def test_the_doctor_checks_the_read_only_accounts(setup: Setup, tmp_path: Path) -> None:
    secret = _secret_file(setup.emulator, tmp_path)
    fixed = setup.settings.model_copy(update={"accounts": AccountsSettings(file=secret)})
    checks = by_name(await setup.check(fixed))
    assert checks["accounts file"].status == "ok"
    assert f"the accounts file {secret} (read-only): 1 account" in checks["accounts file"].detail
    assert "account paid_user" in checks and "account free_user" not in checks  # the home's: unused

    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    checks = by_name(
        await setup.check(setup.settings.model_copy(update={"accounts": AccountsSettings(file=broken)}))
    )
    assert checks["accounts file"].status == "fail"
    assert "not valid JSON" in checks["accounts file"].detail
    assert f"Fix the accounts file {broken}" in (checks["accounts file"].fix or "")
