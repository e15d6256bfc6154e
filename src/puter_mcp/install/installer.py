"""`install`: add or update the `puter` server in one client's config, idempotently.

This module decides; `jsonc`, `yamldoc` and `editor` do the text work. Everything the outside
world contributes (platform, home, PATH lookups, the clock, running `claude`) comes in through
an InstallContext so tests run against temporary files with a fixed clock.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from puter_mcp.install import claude_code, jsonc, yamldoc
from puter_mcp.install.clients import SERVER_NAME, ClientSpec, Scope, get_client
from puter_mcp.install.editor import (
    ChangedMeanwhileError,
    Clock,
    PlannedEdit,
    UnreadableFileError,
    apply,
    read_text,
    target_of,
    unified_diff,
)
from puter_mcp.install.entries import (
    Installation,
    Launcher,
    LauncherNotFoundError,
    Which,
    auth_headers,
    choose_launcher,
    current_installation,
    http_entry,
    mcp_remote_entry,
    stdio_entry,
)
from puter_mcp.install.host import Host
from puter_mcp.install.redact import is_secret_name, redact

Action = Literal["created", "updated", "unchanged", "refused", "printed", "ran"]
Transport = Literal["stdio", "http"]

AUTH_TOKEN_ENV = "PUTER_MCP_AUTH_TOKEN"  # noqa: S105 (a variable name, not a secret)
"""Where `--auth-token` is taken from when the flag is not given."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTINUE_HEADER: dict[str, str] = {"name": "puter-mcp", "version": "0.0.1", "schema": "v1"}
_CONTINUE_COMMENT = (
    "Written by `puter-mcp install continue`; run it again to update this file.\n"
    "Continue loads every block file in this folder. MCP tools work in agent mode only."
)


class InvalidRequestError(ValueError):
    """The combination of options makes no sense (exit status 2)."""


@dataclass(frozen=True)
class InstallRequest:
    client: str
    transport: Transport = "stdio"
    url: str | None = None
    auth_token: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    scope: Scope | None = None
    config: Path | None = None
    dry_run: bool = False
    run: bool = False


@dataclass(frozen=True)
class InstallResult:
    client: str
    path: Path | None
    action: Action
    message: str
    backup: Path | None = None
    diff: str = ""
    command: str = ""
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return self.action != "refused"


def _default_clock() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True)
class InstallContext:
    host: Host
    which: Which = shutil.which
    # Where this puter-mcp came from and where its script is: decides the launcher.
    installation: Installation = field(default_factory=current_installation)
    clock: Clock = _default_clock
    runner: claude_code.Runner = claude_code.run_command

    @classmethod
    def current(cls) -> InstallContext:
        return cls(host=Host.current())


def validate(request: InstallRequest, spec: ClientSpec) -> None:
    """Reject option combinations that cannot mean anything, before touching any file."""
    if request.scope is not None and request.scope not in spec.scopes:
        raise InvalidRequestError(
            f"{spec.title} has no {request.scope} scope (it has: {', '.join(spec.scopes)})"
        )
    if request.transport == "http":
        if not request.url:
            raise InvalidRequestError("--transport http needs --url (e.g. http://127.0.0.1:8000/mcp)")
        parts = urlsplit(request.url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise InvalidRequestError(f"--url must be an http:// or https:// URL, not {request.url!r}")
        if request.env:
            raise InvalidRequestError(
                "--env applies to a server the client starts (stdio), not to --transport http"
            )
    elif request.url or request.auth_token:
        raise InvalidRequestError("--url and --auth-token go with --transport http")
    for key in request.env:
        if not _ENV_NAME.fullmatch(key):
            raise InvalidRequestError(f"--env: {key!r} is not a valid environment variable name")
    if request.run and not spec.prints_command:
        raise InvalidRequestError("--run only applies to claude-code")


def install(request: InstallRequest, context: InstallContext | None = None) -> InstallResult:
    """Add or update the `puter` server for `request.client`. Raises InvalidRequestError for
    meaningless option combinations; every other failure is a "refused" result."""
    context = context or InstallContext.current()
    try:
        spec = get_client(request.client)
    except ValueError as exc:
        raise InvalidRequestError(str(exc)) from None
    validate(request, spec)
    token = (
        (request.auth_token or context.host.env.get(AUTH_TOKEN_ENV)) if request.transport == "http" else None
    )
    secrets = [token or "", *(v for k, v in request.env.items() if is_secret_name(k))]

    def refused(message: str, path: Path | None = None) -> InstallResult:
        return InstallResult(spec.name, path, "refused", redact(message, secrets), dry_run=request.dry_run)

    if request.transport == "http" and spec.http is None:
        return refused(_no_http_hint(spec, request.url, token))

    launcher: Launcher | None = None
    if request.transport == "stdio":
        try:
            launcher = choose_launcher(context.installation, absolute=spec.gui, which=context.which)
        except LauncherNotFoundError as exc:
            return refused(f"Cannot configure {spec.title}: {exc}")

    if spec.prints_command and request.scope != "project" and request.config is None:
        return _claude_code_command(request, launcher, token, secrets, context)

    if launcher is not None:
        entry = stdio_entry(spec, launcher, request.env)
    else:
        assert request.url is not None  # validate() guarantees it for http
        entry = http_entry(spec, request.url, auth_headers(token))

    path = (
        request.config.expanduser()
        if request.config
        else spec.config_path(context.host, request.scope or "user")
    )
    if path is None:  # every spec has a path for the scopes validate() lets through
        return refused(f"{spec.title} has no config file for this scope")
    path = target_of(path)
    try:
        old = read_text(path)
        new, had_entry = (
            _continue_text(old, entry)
            if spec.file_format == "continue-block"
            else _json_text(spec, old, entry)
        )
    except (UnreadableFileError, jsonc.JsoncError, jsonc.NotAnObjectError, yamldoc.YamlError) as exc:
        return refused(
            f"Left {path} untouched: {exc}. Fix the file (or point --config elsewhere) and run again.", path
        )

    edit = PlannedEdit(path, old, new)
    # Owner-only whenever the file will hold a secret, also one that was already there.
    private = any(secret and secret in new for secret in secrets)
    if not edit.changed:
        return InstallResult(
            spec.name,
            path,
            "unchanged",
            f"The '{SERVER_NAME}' server in {path} is unchanged (already up to date).",
            dry_run=request.dry_run,
        )
    action: Action = "created" if old is None else "updated"
    diff = redact(unified_diff(edit), secrets)
    if request.dry_run:
        verb = "create" if old is None else "update"
        message = f"Dry run: would {verb} {path} (nothing written)."
        return InstallResult(spec.name, path, action, message, diff=diff, dry_run=True)
    try:
        backup = apply(edit, now=context.clock(), private=private)
    except (OSError, ChangedMeanwhileError) as exc:
        return refused(f"Could not write {path}: {exc}", path)
    if backup is None:
        message = f"Created {path} with the '{SERVER_NAME}' server for {spec.title}. {spec.after}"
    else:
        verb = "Updated" if had_entry else "Added"
        where = "in" if had_entry else "to"
        message = (
            f"{verb} the '{SERVER_NAME}' server {where} {path} (old file kept as {backup}). {spec.after}"
        )
    if private:
        kept = " and its backup are" if backup is not None else " is"
        message += f"\n{path}{kept} readable by you only (mode 0600): the file holds a token."
    message += _launcher_note(launcher)
    return InstallResult(spec.name, path, action, message, backup=backup, diff=diff)


def _no_http_hint(spec: ClientSpec, url: str | None, token: str | None) -> str:
    """Why `spec` cannot take a URL, and the mcp-remote bridge entry that reaches `url` instead.

    The token travels in an env variable that mcp-remote expands in `--header`, because Claude
    Desktop splits args containing a space wrongly on some platforms (`Authorization: Bearer x`).
    """
    if url is None:
        return spec.no_http_reason
    bridge = {SERVER_NAME: mcp_remote_entry(url, token)}
    return f"{spec.no_http_reason}\nFor example:\n{json.dumps(bridge, indent=2)}"


def _launcher_note(launcher: Launcher | None) -> str:
    if launcher is None:
        return ""
    shown = " ".join([launcher.command, *launcher.args])
    return f"\nLauncher: {shown} ({launcher.reason})."


def _json_text(spec: ClientSpec, old: str | None, entry: dict[str, Any]) -> tuple[str, bool]:
    """The new text, and whether a `puter` entry was there before."""
    had_entry = (
        bool(old)
        and jsonc.lookup(jsonc.parse(old or "", jsonc=spec.jsonc), (spec.servers_key, SERVER_NAME))
        is not None
    )
    return jsonc.upsert(old or "", (spec.servers_key, SERVER_NAME), entry, jsonc=spec.jsonc), had_entry


def _continue_text(old: str | None, item: dict[str, Any]) -> tuple[str, bool]:
    """The YAML file with our item added or replaced (`old` itself when nothing changes), and
    whether our item was there before. Everything else, comments included, is kept."""
    documents = yamldoc.load_all(old) if old is not None and old.strip() else []
    doc = yamldoc.servers_document(documents)
    if doc is None:
        if any(document is not None for document in documents):
            raise yamldoc.YamlError("the file holds no YAML mapping to add `mcpServers` to")
        return yamldoc.new_document(_CONTINUE_HEADER, [item], _CONTINUE_COMMENT), False
    servers = doc.get("mcpServers")
    if servers is None:
        servers = doc["mcpServers"] = []
    if not isinstance(servers, list) or not all(isinstance(server, dict) for server in servers):
        raise yamldoc.YamlError("`mcpServers` is not a list of servers")
    names = [server.get("name") for server in servers]
    missing_header = [key for key in _CONTINUE_HEADER if key not in doc]
    had_entry = SERVER_NAME in names
    if had_entry:
        index = names.index(SERVER_NAME)
        if not missing_header and jsonc.same_json(yamldoc.to_plain(servers[index]), item):
            return old or "", True
        servers[index] = item
    else:
        servers.append(item)
    for position, key in enumerate(missing_header):
        doc.insert(position, key, _CONTINUE_HEADER[key])
    return yamldoc.dump_all(documents, explicit_start=(old or "").lstrip().startswith("---")), had_entry


def _claude_code_command(
    request: InstallRequest,
    launcher: Launcher | None,
    token: str | None,
    secrets: list[str],
    context: InstallContext,
) -> InstallResult:
    scope = request.scope  # None: Claude Code's default "local" scope (this project, this user)
    values = claude_code.argv_values(
        request.env,
        token,
        token_variable=AUTH_TOKEN_ENV,
        is_secret=is_secret_name,
        environment=context.host.env,
    )
    if launcher is not None:
        argv = claude_code.stdio_command(launcher, values.env, scope)
    else:
        assert request.url is not None
        argv = claude_code.http_command(request.url, values.headers, scope)
    shown = redact(claude_code.shell_text(argv), secrets)
    notes = _argv_notes(values)
    if not request.run or request.dry_run:
        message = f"Run this to add puter-mcp to Claude Code:\n  {shown}{notes}"
        return InstallResult("claude-code", None, "printed", message, command=shown, dry_run=request.dry_run)
    claude = context.which("claude")
    if not claude:
        message = f"`claude` is not on PATH. Install Claude Code, or run this yourself:\n  {shown}{notes}"
        return InstallResult("claude-code", None, "refused", message, command=shown)
    outcome = context.runner([claude, *argv[1:]])
    output = redact(outcome.output, secrets)
    if outcome.returncode != 0:
        hint = ""
        if "already exists" in outcome.output:
            remove = ["claude", "mcp", "remove", *(["--scope", scope] if scope else []), SERVER_NAME]
            hint = f"\nRemove the old entry first: {claude_code.shell_text(remove)}"
        message = f"`{shown}` failed (exit status {outcome.returncode}):\n{output}{hint}"
        return InstallResult("claude-code", None, "refused", message, command=shown)
    message = f"Ran: {shown}\n{output}".rstrip() + notes
    return InstallResult("claude-code", None, "ran", message, command=shown)


def _argv_notes(values: claude_code.ArgvValues) -> str:
    """What the user must know about the secrets of a `claude mcp add` command line."""
    notes = ""
    if values.referenced:
        names = ", ".join(values.referenced)
        notes += (
            f"\nThe command holds no secret: Claude Code fills in ${{...}} from its environment, so keep "
            f"{names} exported in the shell you start `claude` from."
        )
    if values.exposed:
        names = ", ".join(values.exposed)
        notes += (
            f"\nWarning: the secret of {names} is on the command line (masked above), where other users "
            "of this machine can see it (`ps`) while it runs. To avoid that, export it first "
            f"(e.g. `export {AUTH_TOKEN_ENV}=...` for --auth-token) and run this again, or use "
            "`--scope project` to have it written to .mcp.json, readable by you only."
        )
    return notes
