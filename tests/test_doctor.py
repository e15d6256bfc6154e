"""`puter-mcp doctor` on a healthy setup and on every kind of broken one.

Puter is the emulator on a loopback port; MCP client configs live in a fake home directory
(``machine``) so that the developer's real clients are never looked at.
"""

from __future__ import annotations

import itertools
import json
import socket
import sqlite3
from pathlib import Path

import httpx2
import pytest

from puter_mcp.accounts.store import Account, AccountsStore
from puter_mcp.doctor import Check, DoctorReport, run_checks
from puter_mcp.puter.catalogue import Catalogue
from puter_mcp.puter.client import PuterClient
from tests.helpers import Setup, by_name, save_accounts

# A JWT-shaped token the emulator has never issued: Puter answers 401 token_auth_failed.
UNKNOWN_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1dWlkIjoiZ2hvc3QiLCJ0eXBlIjoic2Vzc2lvbiJ9."
    "c2lnbmF0dXJlLXRoYXQtbm9ib2R5LWlzc3VlZA"
)


def closed_port_origin() -> str:
    """An origin on loopback where nothing listens (connections are refused at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_failed_with_fix(report: DoctorReport, name: str, *fix_words: str) -> Check:
    check = by_name(report)[name]
    assert check.status == "fail", check
    assert check.fix, check
    for word in fix_words:
        assert word in check.fix, (word, check.fix)
    return check


# --- healthy --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_healthy_setup_is_all_ok(setup: Setup) -> None:
    report = await setup.check()
    checks = by_name(report)
    assert [c for c in report.checks if c.status != "ok"] == []
    assert report.ok
    assert report.exit_code(strict=True) == 0
    assert {
        "config",
        "api origin",
        "model catalogue",
        "accounts file",
        "account paid_user",
        "account free_user",
        "usable accounts",
        "state database",
        "log file",
        "client claude-desktop",
    } <= set(checks)
    assert str(setup.paths.config_file) in checks["config"].detail
    assert "tier paid" in checks["account paid_user"].detail
    assert "tier free" in checks["account free_user"].detail
    assert "$10.00 of $10.00" in checks["account paid_user"].detail
    assert "2 of 2" in checks["usable accounts"].detail
    published = setup.emulator.state.catalogue.details()
    free = sum(1 for model in Catalogue.from_details(published) if model.free)
    assert free > 0
    assert checks["model catalogue"].detail == f"{len(published)} models, {free} free"
    assert report.summary() == "All is well."


def test_healthy_setup_exits_zero(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert setup.run() == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[-1] == "All is well."
    assert all(line.startswith("[ok]") for line in lines[:-1])
    assert "fix:" not in out


def test_json_output_parses(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    assert setup.run("--json") == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["ok"] is True
    assert parsed["exit_code"] == 0
    assert parsed["counts"]["fail"] == 0
    assert {"name", "status", "detail", "fix"} <= set(parsed["checks"][0])
    assert {check["status"] for check in parsed["checks"]} == {"ok"}


# --- broken, one thing at a time -------------------------------------------------------------------


@pytest.mark.anyio
async def test_corrupt_accounts_file(setup: Setup) -> None:
    setup.paths.accounts_file.write_text("{ this is not json")
    report = await setup.check()
    check = assert_failed_with_fix(report, "accounts file", "puter-mcp login")
    assert str(setup.paths.accounts_file) in check.detail
    assert_failed_with_fix(report, "usable accounts", "puter-mcp login")
    assert report.exit_code() == 1


@pytest.mark.anyio
async def test_bad_token_is_reported_and_never_shown(setup: Setup) -> None:
    AccountsStore(setup.paths.accounts_file).add_or_replace(
        Account.create(username="ghost", token=UNKNOWN_TOKEN, tier="free")
    )
    report = await setup.check()
    check = assert_failed_with_fix(report, "account ghost", "puter-mcp login", "puter-mcp logout ghost")
    assert "refuses the token" in check.detail
    assert by_name(report)["account paid_user"].status == "ok"
    assert "2 of 3" in by_name(report)["usable accounts"].detail
    assert report.exit_code() == 1
    for rendered in (report.render_text(), report.render_json()):
        assert UNKNOWN_TOKEN not in rendered
        assert setup.emulator.paid.token not in rendered


@pytest.mark.anyio
async def test_refused_environment_token(setup: Setup) -> None:
    setup.env["PUTER_AUTH_TOKEN"] = UNKNOWN_TOKEN
    report = await setup.check()
    assert_failed_with_fix(report, "environment token (PUTER_AUTH_TOKEN)", "PUTER_AUTH_TOKEN")
    assert UNKNOWN_TOKEN not in report.render_text()
    assert UNKNOWN_TOKEN not in report.render_json()


@pytest.mark.anyio
async def test_valid_environment_token_counts_as_an_account(setup: Setup) -> None:
    setup.env["PUTER_AUTH_TOKEN"] = setup.emulator.temp.token
    report = await setup.check()
    check = by_name(report)["environment token (PUTER_AUTH_TOKEN)"]
    assert check.status == "ok"
    assert "signed in as temp_user" in check.detail
    assert "3 of 3" in by_name(report)["usable accounts"].detail
    assert setup.emulator.temp.token not in report.render_json()


@pytest.mark.anyio
async def test_a_tier_set_for_the_environment_token_is_shown_as_set_by_the_user(setup: Setup) -> None:
    # `[account_tiers] env` paces the PUTER_AUTH_TOKEN account; doctor says so as it says for
    # a saved account's tier.
    setup.env["PUTER_AUTH_TOKEN"] = setup.emulator.free.token
    settings = setup.settings.model_copy(update={"account_tiers": {"env": "paid"}})
    report = await setup.check(settings)
    detail = by_name(report)["environment token (PUTER_AUTH_TOKEN)"].detail
    assert "tier paid (set by you; Puter says free)" in detail


@pytest.mark.anyio
async def test_unreachable_origin(setup: Setup) -> None:
    origin = closed_port_origin()
    settings = setup.settings.model_copy(update={"api_origin": origin, "gui_origin": origin})
    report = await setup.check(settings)
    check = assert_failed_with_fix(report, "api origin", "api_origin", "PUTER_API_ORIGIN")
    assert origin in check.detail
    # The accounts cannot be checked without Puter: said, not counted as failures of their own.
    assert by_name(report)["account paid_user"].status == "warn"
    assert "unreachable" in by_name(report)["account paid_user"].detail
    assert "model catalogue" not in by_name(report)
    assert report.exit_code() == 1


@pytest.mark.anyio
async def test_corrupt_state_database(setup: Setup) -> None:
    setup.paths.state_db.parent.mkdir(parents=True, exist_ok=True)
    setup.paths.state_db.write_bytes(b"this is not a SQLite database at all" * 200)
    report = await setup.check()
    check = by_name(report)["state database"]
    assert check.status == "warn" and "moved aside" in check.detail and check.fix
    assert list(setup.paths.state_db.parent.glob("state.db.corrupt-*"))


@pytest.mark.anyio
async def test_unusable_state_database(setup: Setup) -> None:
    make_newer_state_db(setup.paths.state_db)
    report = await setup.check()
    check = assert_failed_with_fix(report, "state database", "delete", str(setup.paths.state_db))
    assert str(setup.paths.state_db) in check.detail
    assert report.exit_code() == 1


def make_newer_state_db(path: Path) -> None:
    """A state database written by a newer puter-mcp: one this version cannot use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 999")
    conn.close()


@pytest.mark.anyio
async def test_client_entry_with_missing_launcher(setup: Setup) -> None:
    missing = setup.machine / "nowhere" / "uvx"
    config = setup.claude_desktop(missing)
    report = await setup.check()
    check = assert_failed_with_fix(report, "client claude-desktop", "puter-mcp install claude-desktop")
    assert f"the launcher {missing} does not exist" in check.detail
    assert str(config) in check.detail
    assert report.exit_code() == 1


@pytest.mark.anyio
async def test_client_entry_tokens_are_masked(setup: Setup) -> None:
    setup.claude_desktop(setup.launcher(), env={"PUTER_AUTH_TOKEN": setup.emulator.paid.token})
    report = await setup.check()
    check = by_name(report)["client claude-desktop"]
    assert check.status == "ok"
    assert "PUTER_AUTH_TOKEN" in check.detail
    assert setup.emulator.paid.token not in report.render_text()


@pytest.mark.anyio
async def test_config_with_a_bad_value(setup: Setup) -> None:
    setup.paths.config_file.write_text('default_model = "auto"\n\n[routing]\nmax_attempts = 0\n')
    # The command line could not build settings from this file, so doctor gets none.
    report = await setup.check(use_settings=False)
    check = assert_failed_with_fix(report, "config", str(setup.paths.config_file))
    assert "line 4" in check.detail
    assert "max_attempts" in check.detail
    # The other checks still ran, on the defaults plus the environment (the emulator).
    assert by_name(report)["api origin"].status == "ok"
    assert by_name(report)["account paid_user"].status == "ok"
    assert report.exit_code() == 1


@pytest.mark.anyio
async def test_invalid_toml_and_bad_chains_are_config_failures(setup: Setup) -> None:
    setup.paths.config_file.write_text("default_model = \n")
    report = await setup.check(use_settings=False)
    assert "not valid TOML" in assert_failed_with_fix(report, "config").detail

    setup.paths.config_file.write_text('[chains.review]\nmodles = ["gpt-5-nano"]\n')
    report = await setup.check(use_settings=False)
    check = assert_failed_with_fix(report, "config", "[chains]")
    assert "did you mean" in check.detail


@pytest.mark.anyio
async def test_bad_environment_variable_is_blamed_not_the_file(setup: Setup) -> None:
    setup.env["PUTER_MCP_MAX_ATTEMPTS"] = "lots"
    report = await setup.check(use_settings=False)
    check = assert_failed_with_fix(report, "config", "environment variable")
    assert "PUTER_MCP_MAX_ATTEMPTS" in check.detail
    assert str(setup.paths.config_file) not in (check.fix or "")


@pytest.mark.anyio
async def test_unwritable_log_directory(setup: Setup) -> None:
    # A file where the log directory should be: fails for root too, unlike a chmod.
    setup.paths.log_dir.parent.mkdir(parents=True, exist_ok=True)
    setup.paths.log_dir.write_text("in the way")
    report = await setup.check()
    check = assert_failed_with_fix(report, "log file", str(setup.paths.log_dir))
    assert str(setup.paths.log_file) in check.detail


@pytest.mark.anyio
async def test_log_file_is_created_owner_only(setup: Setup) -> None:
    report = await setup.check()
    assert by_name(report)["log file"].status == "ok"
    assert setup.paths.log_file.stat().st_mode & 0o777 == 0o600
    assert setup.paths.log_dir.stat().st_mode & 0o777 == 0o700


@pytest.mark.anyio
async def test_no_account_at_all(setup: Setup) -> None:
    AccountsStore(setup.paths.accounts_file).remove_all()
    report = await setup.check()
    assert_failed_with_fix(report, "usable accounts", "puter-mcp login", "PUTER_AUTH_TOKEN")
    assert by_name(report)["accounts file"].status == "ok"


@pytest.mark.anyio
async def test_account_without_credits_is_a_warning(setup: Setup) -> None:
    broke = setup.emulator.state.add_account("broke_user", tier="free", credits_usd=0)
    save_accounts(setup.paths, broke)
    report = await setup.check()
    check = by_name(report)["account broke_user"]
    assert check.status == "warn"
    assert "$0.00 of" in check.detail
    assert (
        check.fix and "127.0.0.1" in check.fix and "puter.com" not in check.fix
    )  # not puter.com: name the origin
    assert "2 of 3" in by_name(report)["usable accounts"].detail
    assert report.exit_code() == 0
    assert report.exit_code(strict=True) == 1


@pytest.mark.anyio
async def test_only_account_without_credits_means_no_usable_account(setup: Setup) -> None:
    AccountsStore(setup.paths.accounts_file).remove_all()
    broke = setup.emulator.state.add_account("broke_user", tier="free", credits_usd=0)
    save_accounts(setup.paths, broke)
    report = await setup.check()
    assert_failed_with_fix(report, "usable accounts", "puter-mcp login")


@pytest.mark.anyio
async def test_disabled_account_is_not_called(setup: Setup) -> None:
    store = AccountsStore(setup.paths.accounts_file)
    store.add_or_replace(Account.create(username="ghost", token=UNKNOWN_TOKEN))
    store.set_enabled("ghost", False)
    before = len(setup.emulator.state.requests)
    report = await setup.check()
    assert by_name(report)["account ghost"].status == "ok"
    assert "disabled" in by_name(report)["account ghost"].detail
    assert report.ok
    whoami = [r for r in setup.emulator.state.requests[before:] if r.path == "/whoami"]
    assert sorted(r.username or "" for r in whoami) == ["free_user", "paid_user"]
    assert all(r.status == 200 for r in whoami)


@pytest.mark.anyio
async def test_no_client_configured_is_a_warning(setup: Setup) -> None:
    (setup.machine / ".config" / "Claude" / "claude_desktop_config.json").unlink()
    report = await setup.check()
    check = by_name(report)["MCP clients"]
    assert check.status == "warn"
    assert check.fix and "puter-mcp install" in check.fix
    assert report.ok


@pytest.mark.anyio
async def test_unknown_default_model_is_a_warning(setup: Setup) -> None:
    report = await setup.check(setup.settings.model_copy(update={"default_model": "gpt-nonexistent-9"}))
    check = by_name(report)["default model"]
    assert check.status == "warn"
    assert "gpt-nonexistent-9" in check.detail


@pytest.mark.anyio
async def test_account_that_cannot_be_checked_is_a_warning_not_a_failure(setup: Setup) -> None:
    """Puter's catalogue answers but /whoami fails with a 503: unknown, not known bad."""
    published = {"models": setup.emulator.state.catalogue.details()}

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/puterai/chat/models/details":
            return httpx2.Response(200, json=published)
        return httpx2.Response(503, json={"error": "busy", "message": "busy", "code": "internal_error"})

    origin = "http://127.0.0.1:9"
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        client = PuterClient(origin, http=http)
        report = await run_checks(
            setup.settings,
            setup.paths,
            env=setup.env,
            client=client,
            home=setup.machine,
            platform="linux",
            launch_clients=False,
        )
    account = by_name(report)["account paid_user"]
    assert account.status == "warn"
    assert "could not be checked" in account.detail
    usable = by_name(report)["usable accounts"]
    assert usable.status == "warn"
    assert "2 could not be checked" in usable.detail
    assert report.ok


# --- broken, everything at once -----------------------------------------------------------------


def test_everything_broken(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.paths.accounts_file.write_text("not json")
    make_newer_state_db(setup.paths.state_db)
    setup.claude_desktop(setup.machine / "gone" / "puter-mcp")
    setup.paths.config_file.write_text("[timeouts]\nconnect = -1\n")
    setup.env["PUTER_API_ORIGIN"] = closed_port_origin()

    assert setup.run(use_settings=False) == 1
    text = capsys.readouterr().out
    lines = text.splitlines()
    for name in ("config", "api origin", "accounts file", "state database", "client claude-desktop"):
        [index] = [i for i, line in enumerate(lines) if line.startswith(f"[FAIL] {name}:")]
        under = itertools.takewhile(lambda line: line.startswith(" "), lines[index + 1 :])
        assert any(line.strip().startswith("fix: ") for line in under), name
    assert lines[-1].endswith("puter-mcp needs fixing.")

    assert setup.run("--json", use_settings=False) == 1
    parsed = json.loads(capsys.readouterr().out)
    statuses = {check["name"]: check["status"] for check in parsed["checks"]}
    assert parsed["ok"] is False
    for name in ("config", "api origin", "accounts file", "state database", "client claude-desktop"):
        assert statuses[name] == "fail"
    assert all(check["fix"] for check in parsed["checks"] if check["status"] == "fail")


# --- the report itself ----------------------------------------------------------------------------


def test_exit_code_and_summary() -> None:
    ok = Check("a", "ok", "fine")
    warn = Check("b", "warn", "hmm", "look")
    fail = Check("c", "fail", "broken", "repair")
    assert DoctorReport((ok,)).exit_code() == 0
    assert DoctorReport((ok, warn)).exit_code() == 0
    assert DoctorReport((ok, warn)).exit_code(strict=True) == 1
    assert DoctorReport((ok, fail)).exit_code() == 1
    assert DoctorReport((ok, warn, fail)).summary() == "1 problem and 1 warning: puter-mcp needs fixing."
    assert DoctorReport((warn, warn)).summary() == "2 warnings: puter-mcp works."


def test_text_puts_the_fix_under_its_check() -> None:
    report = DoctorReport((Check("a", "fail", "broken", "repair it"), Check("b", "ok", "fine", "unused")))
    assert report.render_text().splitlines() == [
        "[FAIL] a: broken",
        "         fix: repair it",
        "[ok]   b: fine",
        "1 problem: puter-mcp needs fixing.",
    ]


def test_redacted_masks_known_and_token_shaped_secrets() -> None:
    check = Check(
        "x", "fail", f"saw {UNKNOWN_TOKEN} and plain-secret-value", "Bearer abcdefghijklmnopqrstuvwxyz"
    )
    shown = check.redacted(["plain-secret-value"])
    assert UNKNOWN_TOKEN not in shown.detail
    assert "plain-secret-value" not in shown.detail
    assert "abcdefghijklmnopqrstuvwxyz" not in (shown.fix or "")
