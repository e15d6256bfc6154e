"""Find puter-mcp in every client's config and say what is wrong with each entry (for `doctor`).

`doctor` needs the same knowledge `install` has (where each client keeps its config, what a
valid entry looks like, that GUI clients need absolute launcher paths), so it lives here, next
to the client records, rather than being re-derived by the caller.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path, PureWindowsPath
from typing import Any

from puter_mcp.install import jsonc, yamldoc
from puter_mcp.install.clients import CLIENTS, CONTINUE, PACKAGE, SERVER_NAME, ClientSpec, config_locations
from puter_mcp.install.editor import UnreadableFileError, read_text
from puter_mcp.install.entries import Which
from puter_mcp.install.host import Host, normalise_platform
from puter_mcp.install.redact import redact


@dataclass(frozen=True)
class InstalledEntry:
    """One server entry that is (or looks like) puter-mcp, or a config file we could not read."""

    client: str
    scope: str
    path: Path
    name: str | None
    entry: Any
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def shown_entry(self) -> str:
        """The entry as one line of JSON with tokens masked, for `doctor` to print."""
        return redact(json.dumps(self.entry, ensure_ascii=False))


def _is_absolute(command: str) -> bool:
    return os.path.isabs(command) or PureWindowsPath(command).is_absolute()


def _launcher_problems(spec: ClientSpec, command: str, which: Which) -> list[str]:
    if _is_absolute(command):
        path = Path(command)
        if not path.is_file():
            return [f"the launcher {command} does not exist"]
        if os.name != "nt" and not os.access(path, os.X_OK):
            return [f"the launcher {command} is not executable"]
        return []
    if "/" in command or "\\" in command:
        return [
            f"the launcher {command} is a relative path; the client's working directory decides what it means"
        ]
    problems: list[str] = []
    if which(command) is None:
        problems.append(f"`{command}` is not on PATH")
    if spec.gui:
        problems.append(
            f"`{command}` is not an absolute path: {spec.title} may not inherit your shell's PATH and fail "
            f"with 'spawn {command} ENOENT'; run `puter-mcp install {spec.name}` to write the absolute path"
        )
    return problems


def _is_uvx(command: str) -> bool:
    name = PureWindowsPath(command).name if "\\" in command else Path(command).name
    return name.lower().removesuffix(".exe") == "uvx"


def entry_problems(
    spec: ClientSpec, entry: Any, *, which: Which = shutil.which, check_launcher: bool = True
) -> list[str]:
    """What would stop `spec` from starting or reaching puter-mcp with `entry`.

    `check_launcher=False` checks only the shape (used for the ready-made files in
    client-configs/, whose bare `uvx` is meant to be replaced on machines that need it).
    """
    if not isinstance(entry, dict):
        return ["the entry is not an object"]
    problems: list[str] = []
    entry_type = entry.get("type")
    url_keys = [key for key in ("url", "serverUrl") if key in entry]
    if "command" in entry:
        command = entry["command"]
        if isinstance(command, dict):
            problems.append(
                f"`command` uses Zed's old {{path, args}} shape; run `puter-mcp install {spec.name}` again"
            )
        elif not isinstance(command, str) or not command.strip():
            problems.append("`command` is not a non-empty string")
        elif check_launcher:
            problems += _launcher_problems(spec, command, which)
        args = entry.get("args", [])
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            problems.append("`args` is not a list of strings")
        elif (
            isinstance(command, str)
            and _is_uvx(command)
            and "--from" not in args
            and not any(arg == PACKAGE or arg.startswith((f"{PACKAGE}@", f"{PACKAGE}=")) for arg in args)
        ):
            problems.append(f"uvx is not told to run `{PACKAGE}` (expected it in `args`)")
        env = entry.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(value, str) for value in env.values()):
            problems.append("`env` is not an object of strings")
        if spec.stdio_type and entry_type is not None and entry_type != spec.stdio_type:
            problems.append(
                f"`type` is {entry_type!r} but the entry has a command (expected {spec.stdio_type!r})"
            )
    elif url_keys:
        if spec.http is None:
            problems.append(
                f"{spec.title} cannot use a URL here; it only starts stdio servers from this file"
            )
        elif spec.http.url_key not in entry:
            problems.append(f"{spec.title} expects `{spec.http.url_key}`, not `{url_keys[0]}`")
        else:
            url = entry[spec.http.url_key]
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                problems.append(f"`{spec.http.url_key}` is not an http(s) URL")
            allowed = {spec.http.type_value, "sse"}
            if spec.http.type_value and entry_type not in allowed:
                problems.append(f"`type` is {entry_type!r}, expected {spec.http.type_value!r}")
    else:
        problems.append("the entry has neither `command` nor a URL")
    return problems


def _mentions_us(name: str | None, entry: Any) -> bool:
    return name == SERVER_NAME or PACKAGE in json.dumps(entry, default=str)


def _json_entries(
    spec: ClientSpec, scope: str, path: Path, keys: tuple[str, ...], which: Which
) -> list[InstalledEntry]:
    try:
        text = read_text(path)
    except UnreadableFileError as exc:
        return [InstalledEntry(spec.name, scope, path, None, None, (str(exc),))]
    if text is None or SERVER_NAME not in text:
        return []
    try:
        root = jsonc.parse(text, jsonc=spec.jsonc)
    except jsonc.JsoncError as exc:
        return [InstalledEntry(spec.name, scope, path, None, None, (f"not valid JSON: {exc}",))]
    servers = jsonc.lookup(root, keys)
    if servers is None:
        return []
    if not isinstance(servers, jsonc.Object):
        return [InstalledEntry(spec.name, scope, path, None, None, (f"`{keys[-1]}` is not an object",))]
    found: list[InstalledEntry] = []
    for member in servers.members:
        entry = jsonc.to_python(member.value)
        if _mentions_us(member.key, entry):
            problems = tuple(entry_problems(spec, entry, which=which))
            found.append(InstalledEntry(spec.name, scope, path, member.key, entry, problems))
    return found


def _continue_entries(scope: str, path: Path, which: Which) -> list[InstalledEntry]:
    try:
        text = read_text(path)
    except UnreadableFileError as exc:
        return [InstalledEntry(CONTINUE.name, scope, path, None, None, (str(exc),))]
    if text is None or SERVER_NAME not in text:
        return []
    try:
        doc = yamldoc.servers_document(yamldoc.load_all(text))
    except yamldoc.YamlError as exc:
        return [InstalledEntry(CONTINUE.name, scope, path, None, None, (f"cannot be read: {exc}",))]
    servers = yamldoc.to_plain(doc.get("mcpServers", [])) if doc is not None else []
    if not isinstance(servers, list):
        return [InstalledEntry(CONTINUE.name, scope, path, None, None, ("`mcpServers` is not a list",))]
    found: list[InstalledEntry] = []
    for item in servers:
        name = item.get("name") if isinstance(item, dict) else None
        if _mentions_us(name if isinstance(name, str) else None, item):
            problems = tuple(entry_problems(CONTINUE, item, which=which))
            found.append(
                InstalledEntry(CONTINUE.name, scope, path, str(name) if name else None, item, problems)
            )
    return found


def _continue_files(puter_yaml: Path) -> list[Path]:
    """Our block file, the other block files beside it, and ~/.continue/config.yaml."""
    folder = puter_yaml.parent
    files = sorted(p for p in folder.iterdir() if p.suffix in {".yaml", ".yml"}) if folder.is_dir() else []
    if puter_yaml not in files:
        files.insert(0, puter_yaml)
    config = folder.parent / "config.yaml"
    return [*files, config]


def find_installed_entries(
    *,
    home: Path | None = None,
    platform: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    which: Which = shutil.which,
) -> list[InstalledEntry]:
    """Every client config entry that is puter-mcp's, each with the problems found in it.

    Without arguments it looks at this machine. A test passes `home` (and usually `platform`,
    `env`, `cwd`); when `home` is given and `env` is not, no real environment variable is used,
    so APPDATA and XDG_CONFIG_HOME resolve inside that home.
    """
    if home is None:
        host = Host.current()
        host = replace(
            host,
            platform=normalise_platform(platform) if platform else host.platform,
            env=env if env is not None else host.env,
            cwd=cwd or host.cwd,
        )
    else:
        host = Host(normalise_platform(platform or sys.platform), home, cwd or home, env or {})
    found: list[InstalledEntry] = []
    seen: set[tuple[Path, tuple[str, ...]]] = set()
    for spec in CLIENTS.values():
        for location in config_locations(spec, host):
            if spec is CONTINUE:
                for path in _continue_files(location.path):
                    if (path, ()) not in seen:
                        seen.add((path, ()))
                        found += _continue_entries(location.scope, path, which)
                continue
            key = (location.path, location.keys)
            if key in seen:  # the project scope is the user scope when cwd is home
                continue
            seen.add(key)
            found += _json_entries(spec, location.scope, location.path, location.keys, which)
    return found
