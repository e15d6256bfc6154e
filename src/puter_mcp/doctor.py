"""`puter-mcp doctor`: check everything puter-mcp depends on and say how to fix what is wrong.

A user whose MCP client shows "server failed" has no way to see why: the client starts the
server itself and hides its output. `doctor` walks the whole path instead, from the config
file to the client configs that launch puter-mcp, and prints one line per check, with the fix
under every problem.

Statuses and the exit code:

- ``ok``: works.
- ``warn``: works, but something deserves attention and may not be fixable right now (an
  account out of credits until the month renews, no MCP client configured yet, a default model
  the catalogue no longer has, a check that could not run because of a transient failure).
- ``fail``: something is broken and puter-mcp will not work (fully) until it is fixed.

The exit code is 0 when no check failed, 1 otherwise: "all is well" means nothing is broken.
Warnings do not change it, because some of them (an exhausted account) can last for weeks
and a script that runs `doctor` would otherwise fail all that time for nothing the user can
do; ``--strict`` makes warnings count too.

No token is ever shown: every line passes through `accounts.secrets.redact` with every token
doctor knows of, and client config entries are printed only in their masked form.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import ValidationError

from puter_mcp.accounts.identity import ENV_ACCOUNT, choose_tier
from puter_mcp.accounts.secrets import redact
from puter_mcp.accounts.store import (
    Account,
    AccountsError,
    AccountsSnapshot,
    AccountsStore,
    fixed_accounts,
    fixed_accounts_source,
)
from puter_mcp.core.stores import check_shared_store
from puter_mcp.install import find_installed_entries, get_client
from puter_mcp.install.installed import InstalledEntry
from puter_mcp.install.probe import ProbeResult, probe_entries
from puter_mcp.logs import ensure_log_file
from puter_mcp.puter.catalogue import Catalogue
from puter_mcp.puter.client import AccountUsage, PuterClient, Timeouts, WhoAmI
from puter_mcp.puter.errors import FailureKind, PuterError, account_state, credit_advice
from puter_mcp.routing import chains
from puter_mcp.routing.redis_url import PASSWORD_ENV, is_redis_url
from puter_mcp.settings import ENV_VARS, ConfigError, Paths, Settings, load_settings

__all__ = [
    "Check",
    "DoctorReport",
    "Status",
    "run",
    "run_checks",
]

Status = Literal["ok", "warn", "fail"]

ENV_TOKEN = "PUTER_AUTH_TOKEN"  # noqa: S105 (the variable's name, not a secret)

# Doctor should answer in seconds even when Puter is unreachable; the server's own (longer)
# limits are for model calls, not for these small GETs.
_MAX_CONNECT = 5.0
_MAX_CALL = 20.0

_MARKS: Mapping[Status, str] = {"ok": "[ok]  ", "warn": "[warn]", "fail": "[FAIL]"}
_PAD = " " * 9  # under the check's name, past its mark


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it went, what was seen, and what to do about it."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def redacted(self, tokens: Sequence[str]) -> Check:
        """This check with every token (known or token-shaped) masked, in every field."""
        return Check(
            redact(self.name, tokens),
            self.status,
            redact(self.detail, tokens),
            None if self.fix is None else redact(self.fix, tokens),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class DoctorReport:
    """Every check, in the order they are shown."""

    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        return [check for check in self.checks if check.status == "warn"]

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed; see the module docstring)."""
        return not self.failures

    def exit_code(self, *, strict: bool = False) -> int:
        """0 when all is well: no failure (and, with `strict`, no warning either); else 1."""
        return 1 if self.failures or (strict and self.warnings) else 0

    def summary(self) -> str:
        failed, warned = len(self.failures), len(self.warnings)
        if not failed and not warned:
            return "All is well."
        parts = []
        if failed:
            parts.append(f"{failed} problem{'s' if failed != 1 else ''}")
        if warned:
            parts.append(f"{warned} warning{'s' if warned != 1 else ''}")
        verdict = "puter-mcp needs fixing" if failed else "puter-mcp works"
        return f"{' and '.join(parts)}: {verdict}."

    def render_text(self) -> str:
        """One line per check with its mark; the fix indented under every check that has one."""
        lines: list[str] = []
        for check in self.checks:
            # Continuation lines (a config error lists one mistake per line) are indented, so
            # that every line starting with a mark is a new check.
            lines.append(f"{_MARKS[check.status]} {check.name}: {check.detail}".replace("\n", "\n" + _PAD))
            if check.fix and check.status != "ok":
                lines.append(f"{_PAD}fix: {check.fix}".replace("\n", "\n" + _PAD + "     "))
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self, *, strict: bool = False) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exit_code": self.exit_code(strict=strict),
            "summary": self.summary(),
            "counts": {
                status: sum(1 for check in self.checks if check.status == status)
                for status in ("ok", "warn", "fail")
            },
            "checks": [check.to_dict() for check in self.checks],
        }

    def render_json(self, *, strict: bool = False) -> str:
        return json.dumps(self.to_dict(strict=strict), indent=2, ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# Settings and the config file


def _settings_without_config(env: Mapping[str, str]) -> Settings:
    """Defaults plus the environment, for the other checks when the config file is broken."""
    merged: dict[str, Any] = {}
    for name, dotted in ENV_VARS.items():
        if env.get(name):
            *parents, leaf = dotted.split(".")
            target = merged
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = env[name]
    try:
        return Settings.model_validate(merged)
    except ValidationError:
        return Settings()


def _config_fix(paths: Paths) -> str:
    """The fix for a `ConfigError`: the file's, unless the file alone is fine (then the
    environment is to blame)."""
    try:
        load_settings(paths=paths, env={})
    except ConfigError:
        return (
            f"Correct the setting named above in {paths.config_file} (the README lists every option), "
            "or move the file away to run on the defaults; `puter-mcp config` shows the effective settings."
        )
    return "Correct or unset the environment variable named above."


_CHAIN_KEY_FIXES: Mapping[str, str] = {
    "models": 'models = ["model", ...] (a non-empty list of model names)',
    "free_fallback": "free_fallback = true or false (unquoted)",
    "description": 'description = "what the chain is for" (a string)',
}
# After "[chains.NAME]: ", what a problem is about: "models[2]:", "free_fallback:", "missing models:".
_CHAIN_PROBLEM_KEY = re.compile(r"\]: (?:missing )?(\w+)(?:\[\d+\])?:")


def _chains_fix(error: chains.ChainConfigError, where: Path) -> str:
    """The fix for bad [chains] tables, one hint per kind of problem found (never a hint about a
    key that is fine)."""
    hints: list[str] = []
    for problem in error.problems:
        match = _CHAIN_PROBLEM_KEY.search(problem)
        if match and match.group(1) in _CHAIN_KEY_FIXES:
            hint = _CHAIN_KEY_FIXES[match.group(1)]
        elif "unknown key" in problem:
            hint = "rename or remove the unknown key (the allowed keys are listed above)"
        else:
            hint = "rename or restructure the chain as the line above says"
        if hint not in hints:
            hints.append(hint)
    return f"Correct the [chains] tables in {where}: " + "; ".join(hints) + "."


def _check_config(paths: Paths, env: Mapping[str, str]) -> tuple[Check, Settings | None]:
    """Parse the config file (and the environment) the way the server will, chains included."""
    where = paths.config_file
    try:
        loaded, _ = load_settings(paths=paths, env=env)
        chains.parse_user_chains(loaded.chains, source=str(where))
    except ConfigError as exc:
        return Check("config", "fail", str(exc), _config_fix(paths)), None
    except chains.ChainConfigError as exc:
        return Check("config", "fail", str(exc), _chains_fix(exc, where)), None
    if where.exists():
        return Check("config", "ok", f"{where} is valid"), loaded
    return Check("config", "ok", f"no config file at {where}; the defaults are used"), loaded


# --------------------------------------------------------------------------------------------
# Puter: origin, catalogue, accounts


def _origin_fix(settings: Settings) -> str:
    return (
        f"Check the network, and that api_origin ({settings.api_origin}) is Puter's API host "
        "(https://api.puter.com, not https://puter.com); set it in config.toml or with "
        "PUTER_API_ORIGIN."
    )


async def _check_origin(
    client: PuterClient, settings: Settings, clock: Callable[[], float], token: str | None = None
) -> tuple[Check, Catalogue | None]:
    started = clock()
    try:
        catalogue = await client.models(token=token)
    except PuterError as exc:
        return (
            Check(
                "api origin",
                "fail",
                f"cannot get the model list from {settings.api_origin}: {exc.message}",
                _origin_fix(settings),
            ),
            None,
        )
    elapsed_ms = (clock() - started) * 1000
    return (
        Check("api origin", "ok", f"{settings.api_origin} answered in {elapsed_ms:.0f} ms"),
        catalogue,
    )


def _check_catalogue(
    catalogue: Catalogue, settings: Settings, user_chains: Mapping[str, chains.VirtualModel]
) -> list[Check]:
    total = len(catalogue)
    free = sum(1 for model in catalogue if model.free)
    if total == 0 and catalogue.unlisted:
        found = [
            Check(
                "model catalogue",
                "warn",
                "Puter lists no models; it answers only its test models ("
                + ", ".join(model.id for model in catalogue.unlisted)
                + "), as a self-hosted Puter without AI vendor keys does",
                "Give the Puter at api_origin vendor keys, or set default_model to a test model.",
            )
        ]
        return found + _check_default_chain(catalogue, settings, user_chains)
    if total == 0:
        return [
            Check(
                "model catalogue",
                "fail",
                "Puter's model list is empty",
                f"Check that api_origin ({settings.api_origin}) is Puter's API host; try again later.",
            )
        ]
    found: list[Check] = []
    if free == 0 and settings.fallback_to_free:
        found.append(
            Check(
                "model catalogue",
                "warn",
                f"{total} models, none of them free: chains have no free last resort",
                f"Nothing to do if your accounts have credits; otherwise {credit_advice(settings.gui_origin)}.",
            )
        )
    else:
        found.append(Check("model catalogue", "ok", f"{total} models, {free} free"))

    found += _check_default_chain(catalogue, settings, user_chains)
    for name, chain in user_chains.items():
        unknown = [model for model in chain.models if catalogue.find(model) is None]
        if unknown:
            found.append(
                Check(
                    f"chain {name}",
                    "warn",
                    f"not in Puter's catalogue, so skipped: {', '.join(unknown)}",
                    "Update the chain's models list in config.toml (`puter-mcp models QUERY` finds ids).",
                )
            )
    return found


def _check_default_chain(
    catalogue: Catalogue, settings: Settings, user_chains: Mapping[str, chains.VirtualModel]
) -> list[Check]:
    """The default model: a known name, and with at least one model Puter answers (a call
    without `model` has nothing to try otherwise)."""
    found: list[Check] = []
    known_chains = chains.merge_chains(user_chains)
    default = settings.default_model
    try:
        if default.lower() == chains.AUTO:
            _choice, resolved = chains.resolve_auto(
                "", catalogue, chains=known_chains, fallback_to_free=settings.fallback_to_free
            )
        else:
            resolved = chains.resolve(
                default, catalogue, chains=known_chains, fallback_to_free=settings.fallback_to_free
            )
    except chains.UnknownModelError:
        resolved = None
    if resolved is not None and not resolved.models:
        return [
            Check(
                "default model",
                "fail",
                f"{default!r} has no model Puter's catalogue knows"
                + (f" (skipped: {', '.join(resolved.skipped)})" if resolved.skipped else ""),
                "Set default_model in config.toml to a model Puter answers "
                "(`puter-mcp models` lists them), or fix api_origin.",
            )
        ]
    if default.lower() != chains.AUTO and default not in known_chains and catalogue.find(default) is None:
        close = catalogue.closest(default)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        found.append(
            Check(
                "default model",
                "warn",
                f"{default!r} is neither a model in Puter's catalogue nor a virtual model{hint}",
                "Set default_model in config.toml to a model id, a virtual model "
                "(`puter-mcp models --virtual`) or auto.",
            )
        )
    return found


@dataclass(frozen=True)
class _Probe:
    """What Puter said about one token."""

    who: WhoAmI | None = None
    usage: AccountUsage | None = None
    who_error: PuterError | None = None
    usage_error: PuterError | None = None


async def _probe(client: PuterClient, token: str) -> _Probe:
    try:
        who = await client.whoami(token)
    except PuterError as exc:
        return _Probe(who_error=exc)
    try:
        usage = await client.usage(token)
    except PuterError as exc:
        return _Probe(who=who, usage_error=exc)
    return _Probe(who=who, usage=usage)


def _money(usage: AccountUsage) -> str:
    return f"${usage.remaining_usd:.2f} of ${usage.allowance_usd:.2f} left this month"


def _unconfirmed_email_check(name: str, gui_origin: str) -> Check:
    """An account Puter refuses until its e-mail is confirmed (the wording the router and
    `status` use too: `errors.account_state`)."""
    state, advice = account_state(FailureKind.EMAIL_UNCONFIRMED, gui_origin)
    what, _, fix = advice.partition(": ")
    return Check(name, "fail", f"{state}: {what}", fix[0].upper() + fix[1:] + ".")


def _account_check(
    name: str,
    probe: _Probe,
    *,
    saved: Account | None,
    tier_override: str | None,
    auth_fix: str,
    gui_origin: str = "https://puter.com",
) -> tuple[Check, bool | None]:
    """The check for one token, and whether it can make calls now (None: could not tell)."""
    if probe.who_error is not None and probe.who_error.kind is FailureKind.EMAIL_UNCONFIRMED:
        return _unconfirmed_email_check(name, gui_origin), False
    if probe.who is not None and not probe.who.email_confirmed:
        return _unconfirmed_email_check(name, gui_origin), False
    if probe.who_error is not None:
        error = probe.who_error
        if error.kind is FailureKind.AUTH:
            state, _advice = account_state(error.kind, gui_origin)
            return Check(name, "fail", f"{state}: Puter refuses the token: {error.message}", auth_fix), False
        return (
            Check(
                name,
                "warn",
                f"could not be checked: {error.message}",
                "Run `puter-mcp doctor` again in a moment.",
            ),
            None,
        )
    assert probe.who is not None  # no error means /whoami answered
    who = probe.who
    tier = who.tier
    tier_text = (
        f"tier {tier}" if tier_override is None else f"tier {tier_override} (set by you; Puter says {tier})"
    )
    facts = [f"signed in as {who.username}", tier_text]
    status: Status = "ok"
    fixes: list[str] = []
    usable = True
    if probe.usage is not None:
        facts.append(_money(probe.usage))
        if probe.usage.remaining_usd <= 0:
            status = "warn"
            usable = False
            fixes.append(
                "Puter refuses this account's calls until its allowance renews next month; "
                f"{credit_advice(gui_origin)} or sign in another account (`puter-mcp login`)."
            )
    elif probe.usage_error is not None:
        facts.append(f"credits unknown ({probe.usage_error.message})")
        status = "warn"
        fixes.append("Run `puter-mcp doctor` again in a moment.")
    if saved is not None:
        if saved.username != who.username:
            status = "warn"
            facts.append(f"saved as user {saved.username}")
            fixes.append(f"The token belongs to {who.username}: sign in again as {saved.username}.")
        elif tier_override is None and saved.tier is not None and saved.tier != tier:
            status = "warn"
            facts.append(f"saved with tier {saved.tier}")
            fixes.append(
                "Puter reports another tier than the one saved at sign-in, and pacing uses the saved "
                "one: sign in again (`puter-mcp login`) to refresh it."
            )
    return Check(name, status, ", ".join(facts), " ".join(fixes) or None), usable


def _check_accounts_file(paths: Paths, snapshot: AccountsSnapshot, fixed: str | None = None) -> Check:
    where = paths.accounts_file
    if fixed is not None:  # read-only accounts (docs/configuration.md, "Accounts")
        if snapshot.problem is not None:
            return Check("accounts file", "fail", snapshot.problem, f"Fix {fixed}: puter-mcp only reads it.")
        count = len(snapshot.accounts)
        return Check(
            "accounts file", "ok", f"{fixed} (read-only): {count} account{'s' if count != 1 else ''}"
        )
    if snapshot.problem is not None:
        return Check(
            "accounts file",
            "fail",
            snapshot.problem,
            "Sign in again with `puter-mcp login` (this starts a new accounts file).",
        )
    if not where.exists():
        return Check("accounts file", "ok", f"no saved accounts yet ({where} does not exist)")
    count = len(snapshot.accounts)
    default = f", default {snapshot.default}" if snapshot.default else ""
    return Check("accounts file", "ok", f"{where}: {count} account{'s' if count != 1 else ''}{default}")


# --------------------------------------------------------------------------------------------
# Local files


async def _check_state_db(settings: Settings, paths: Paths) -> Check:
    """The shared state database opens, as every process opens it (docs/state.md); a Redis
    store answers (its version, one round trip)."""
    found = await check_shared_store(settings, paths)
    if found.status == "unreadable" and is_redis_url(settings.state):
        return Check(
            "state database",
            "fail",
            f"{found.detail}; each replica would keep cooldowns and pacing in memory, unshared",
            f'Start Redis, or correct `state` and {PASSWORD_ENV} (docs/state.md, "Redis").',
        )
    if found.status == "ok":
        return Check("state database", "ok", found.detail)
    if found.status == "moved-aside":
        return Check(
            "state database",
            "warn",
            found.detail + "; cooldowns learned so far are forgotten and will be learned again",
            "Nothing to do; the moved file can be deleted once you no longer need to look at it.",
        )
    return Check(
        "state database",
        "fail",
        f"{found.detail}; cooldowns and pacing would not be shared between puter-mcp processes",
        f"Quit every puter-mcp process (close your MCP clients) and delete {paths.state_db}; "
        "it is recreated on the next start.",
    )


def _check_log_file(paths: Paths) -> Check:
    where = paths.log_file
    try:
        size = ensure_log_file(where)
    except OSError as exc:
        return Check(
            "log file",
            "fail",
            f"cannot write {where}: {exc.strerror or exc}",
            f"Make {where.parent} a directory you own and can write to (or set PUTER_MCP_HOME "
            "to put every puter-mcp file elsewhere).",
        )
    return Check("log file", "ok", f"{where} is writable ({size} bytes; `puter-mcp logs` shows it)")


async def _launch_client_entries(
    entries: Sequence[InstalledEntry], *, home: Path | None, env: Mapping[str, str]
) -> list[ProbeResult | None]:
    """Start (or connect to) every entry as its client would; see `install.probe`."""
    jobs = [(get_client(entry.client), entry.entry) for entry in entries]
    user_home = home or Path(env.get("HOME") or Path.home())
    return await probe_entries(jobs, home=user_home, cwd=Path.cwd(), shell_path=env.get("PATH") or os.defpath)


def _client_checks(
    entries: Sequence[InstalledEntry], probes: Sequence[ProbeResult | None] | None = None
) -> list[Check]:
    if not entries:
        return [
            Check(
                "MCP clients",
                "warn",
                "no MCP client config mentions puter-mcp",
                "Add it to your client: `puter-mcp install CLIENT` (`puter-mcp install --help` lists them).",
            )
        ]
    found: list[Check] = []
    for index, entry in enumerate(entries):
        label = f"client {entry.client}" + (f" ({entry.scope})" if entry.scope != "user" else "")
        where = f"{entry.path}" + (f" [{entry.name}]" if entry.name else "")
        shown = f": {entry.shown_entry()}" if entry.entry is not None else ""
        probe = probes[index] if probes is not None else None
        problems = list(entry.problems)
        if probe is not None and not probe.ok:
            problems.append(probe.detail)
        if not problems:
            proven = f" ({probe.detail})" if probe is not None else ""
            found.append(Check(label, "ok", f"{where}{proven}{shown}"))
        else:
            found.append(
                Check(
                    label,
                    "fail",
                    f"{where}: {'; '.join(problems)}{shown}",
                    f"Run `puter-mcp install {entry.client}` to write an entry that starts this "
                    "installation (the old file is backed up; docs/install.md explains the launcher), "
                    "or edit it by hand.",
                )
            )
    return found


# --------------------------------------------------------------------------------------------
# Running every check


def _doctor_client(settings: Settings) -> PuterClient:
    limits = settings.timeouts
    call = min(limits.total, _MAX_CALL)
    return PuterClient(
        settings.api_origin,
        gui_origin=settings.gui_origin,
        timeouts=Timeouts(
            connect=min(limits.connect, _MAX_CONNECT),
            first_byte=min(limits.first_byte, call),
            idle=min(limits.idle, call),
            total=call,
        ),
    )


async def run_checks(
    settings: Settings | None,
    paths: Paths,
    *,
    env: Mapping[str, str],
    client: PuterClient | None = None,
    home: Path | None = None,
    platform: str | None = None,
    which: Callable[[str], str | None] = shutil.which,
    clock: Callable[[], float] = time.perf_counter,
    launch_clients: bool = True,
) -> DoctorReport:
    """Run every check and return the report (no output here).

    Args:
        settings: the effective settings, or None when they could not be loaded (a broken
            config file): the config check then says why, and the other checks run on the
            defaults plus the environment.
        paths: where puter-mcp's files are.
        env: the environment (``PUTER_AUTH_TOKEN``, and where clients keep their configs).
        client: a `PuterClient` to use (tests); by default one is made from `settings` with
            short timeouts, and closed afterwards.
        home, platform, which: where to look for MCP client configs, passed to
            `install.find_installed_entries` (tests point them at a fake machine).
        clock: seconds, for the API's latency.
        launch_clients: start every client entry to prove it lists the tools (off: only read them).
    """
    config_check, loaded = _check_config(paths, env)
    if settings is None:
        settings = loaded or _settings_without_config(env)
    try:
        user_chains = chains.parse_user_chains(settings.chains, source=str(paths.config_file))
    except chains.ChainConfigError:
        user_chains = {}

    fixed = fixed_accounts_source(settings.accounts.file, env)
    try:
        store = fixed_accounts(settings.accounts.file, env) or AccountsStore(paths.accounts_file)
        snapshot = store.load()
    except AccountsError as exc:  # a read-only source that is missing or malformed
        snapshot = AccountsSnapshot(problem=str(exc))
    env_token = (env.get(ENV_TOKEN) or "").strip() or None
    tokens = [account.token.get_secret_value() for account in snapshot.accounts]
    if env_token:
        tokens.append(env_token)

    checks: list[Check] = [config_check]
    puter = client or _doctor_client(settings)
    try:
        # Signed in, the chat driver also names the models Puter answers but does not list.
        origin_check, catalogue = await _check_origin(puter, settings, clock, token=(tokens or [None])[-1])
        checks.append(origin_check)
        if catalogue is not None:
            checks += _check_catalogue(catalogue, settings, user_chains)
        checks.append(_check_accounts_file(paths, snapshot, fixed))
        checks += await _token_checks(puter, settings, snapshot, env_token, reachable=catalogue is not None)
    finally:
        if client is None:
            await puter.aclose()

    checks.append(await _check_state_db(settings, paths))
    checks.append(_check_log_file(paths))
    try:
        entries = find_installed_entries(home=home, platform=platform, env=dict(env), which=which)
    except OSError as exc:  # e.g. a config folder we may not list; the other checks still count
        checks.append(
            Check(
                "MCP clients",
                "warn",
                f"could not look for client configs: {exc}",
                "Check the permissions of the folder named above.",
            )
        )
    else:
        probes = await _launch_client_entries(entries, home=home, env=env) if launch_clients else None
        checks += _client_checks(entries, probes)
    return DoctorReport(tuple(check.redacted(tokens) for check in checks))


@dataclass(frozen=True)
class _Caller:
    """One token doctor checks: a saved account's, or the environment's (``account`` None)."""

    label: str
    token: str
    account: Account | None


def _callers(snapshot: AccountsSnapshot, env_token: str | None) -> tuple[list[_Caller], list[Check]]:
    """The tokens to check, and a check for each account the user disabled (never called)."""
    callers: list[_Caller] = []
    disabled: list[Check] = []
    for account in snapshot.accounts:
        label = f"account {account.name}"
        if account.enabled:
            callers.append(_Caller(label, account.token.get_secret_value(), account))
        else:
            disabled.append(Check(label, "ok", "disabled by you, so not used and not checked"))
    if env_token:
        callers.append(_Caller(f"environment token ({ENV_TOKEN})", env_token, None))
    return callers, disabled


def _auth_fix(caller: _Caller) -> str:
    if caller.account is None:
        return f"Set {ENV_TOKEN} to a valid token, or unset it and sign in with `puter-mcp login`."
    return (
        f"Sign in again: `puter-mcp login` with a new token for {caller.account.username}, "
        f"or forget it: `puter-mcp logout {caller.account.name}`."
    )


async def _token_checks(
    client: PuterClient,
    settings: Settings,
    snapshot: AccountsSnapshot,
    env_token: str | None,
    *,
    reachable: bool,
) -> list[Check]:
    """A check per saved account and for the environment's token, then whether any can call.

    The tokens are checked concurrently: a user with many accounts should not wait for each
    in turn.
    """
    callers, disabled = _callers(snapshot, env_token)
    if not callers:
        fix = f"Sign in: `puter-mcp login` (or set {ENV_TOKEN})."
        return [*disabled, Check("usable accounts", "fail", "no Puter account to call as", fix)]
    if not reachable:
        unchecked = "not checked: Puter is unreachable (see api origin)"
        return [*disabled, *(Check(caller.label, "warn", unchecked) for caller in callers)]

    probes: dict[int, _Probe] = {}

    async def probe_one(index: int) -> None:
        probes[index] = await _probe(client, callers[index].token)

    async with anyio.create_task_group() as group:
        for index in range(len(callers)):
            group.start_soon(probe_one, index)

    found: list[Check] = []
    usable = unknown = 0
    for index, caller in enumerate(callers):
        account = caller.account
        configured = settings.account_tiers.get(ENV_ACCOUNT if account is None else account.name)
        choice = choose_tier(configured=configured, account=account)
        check, can_call = _account_check(
            caller.label,
            probes[index],
            saved=account,
            tier_override=choice.tier if choice.set_by_user else None,
            auth_fix=_auth_fix(caller),
            gui_origin=settings.gui_origin,
        )
        found.append(check)
        usable += can_call is True
        unknown += can_call is None
    found += disabled
    total = len(callers)
    unchecked = f" ({unknown} could not be checked)" if unknown else ""
    if usable:
        found.append(Check("usable accounts", "ok", f"{usable} of {total} can make calls now{unchecked}"))
    elif unknown:
        # A hiccup is not proof that nothing works: say so, without failing the run for it.
        found.append(
            Check(
                "usable accounts",
                "warn",
                f"none of the {total} confirmed{unchecked}",
                "Run `puter-mcp doctor` again in a moment.",
            )
        )
    else:
        found.append(
            Check(
                "usable accounts",
                "fail",
                f"none of the {total} account{'s' if total != 1 else ''} can make calls now",
                "Fix an account above, or sign in another one: `puter-mcp login`.",
            )
        )
    return found


# --------------------------------------------------------------------------------------------
# `puter-mcp doctor`


def run(
    args: argparse.Namespace,
    settings: Settings | None,
    paths: Paths,
    *,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    platform: str | None = None,
    which: Callable[[str], str | None] = shutil.which,
    launch_clients: bool = True,
) -> int:
    """`puter-mcp doctor`: print the report (text or ``--json``) and return the exit code.

    `settings` may be None when loading them failed (the caller got a `ConfigError`): doctor is
    the command that must still run then, and its config check reports the error. The keyword
    arguments are for tests (see `run_checks`); the command line passes none.
    """
    environment = dict(os.environ if env is None else env)
    report = anyio.run(
        lambda: run_checks(
            settings,
            paths,
            env=environment,
            home=home,
            platform=platform,
            which=which,
            launch_clients=launch_clients,
        )
    )
    strict = bool(getattr(args, "strict", False))
    if getattr(args, "json", False):
        print(report.render_json(strict=strict))
    else:
        print(report.render_text())
    sys.stdout.flush()
    return report.exit_code(strict=strict)
