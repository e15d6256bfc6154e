"""What we write for the `puter` server: the launcher to run, and the entry in each client's shape."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from puter_mcp.install.clients import PACKAGE, SERVER_NAME, ClientSpec

Which = Callable[[str], "str | None"]
"""`shutil.which`'s shape; tests pass a fake so no real PATH is consulted."""


@dataclass(frozen=True)
class Launcher:
    """The program a client starts for stdio, and its arguments."""

    command: str
    args: tuple[str, ...]
    kind: Literal["uvx", "script"]


class LauncherNotFoundError(LookupError):
    """Neither uvx nor an installed puter-mcp script could be found."""


def _script_names() -> tuple[str, ...]:
    return (f"{PACKAGE}.exe", PACKAGE) if os.name == "nt" else (PACKAGE,)


def resolve_launcher(*, absolute: bool, which: Which, script_dir: Path | None) -> Launcher:
    """Prefer `uvx puter-mcp` (always the published release), else the installed script.

    GUI clients get absolute paths because they do not inherit the shell's PATH. Claude Code
    runs from a shell, so the bare name is fine (and survives uv or the venv moving), but only
    when the name is really on PATH: a script found only next to the running interpreter (a
    virtualenv that is not activated) must be written with its full path.
    """
    uvx = which("uvx")
    if uvx:
        return Launcher(os.path.abspath(uvx) if absolute else "uvx", (PACKAGE,), "uvx")
    script = which(PACKAGE)
    if script:
        return Launcher(os.path.abspath(script) if absolute else PACKAGE, (), "script")
    if script_dir is not None:
        for name in _script_names():
            candidate = script_dir / name
            if candidate.is_file():
                return Launcher(str(candidate.absolute()), (), "script")
    raise LauncherNotFoundError(
        "neither `uvx` nor an installed `puter-mcp` script was found on PATH. Install uv "
        "(https://docs.astral.sh/uv/) or `pipx install puter-mcp`, then run this again."
    )


def stdio_entry(spec: ClientSpec, launcher: Launcher, env: Mapping[str, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if spec.named_items:
        entry["name"] = SERVER_NAME
    if spec.stdio_type:
        entry["type"] = spec.stdio_type
    entry["command"] = launcher.command
    # Always write `args`, even empty: some clients' schemas have required it.
    entry["args"] = list(launcher.args)
    if env:
        entry["env"] = dict(env)
    return entry


def http_entry(spec: ClientSpec, url: str, headers: Mapping[str, str]) -> dict[str, Any]:
    if spec.http is None:
        raise ValueError(f"{spec.title} has no HTTP entry")
    entry: dict[str, Any] = {}
    if spec.named_items:
        entry["name"] = SERVER_NAME
    if spec.http.type_value:
        entry["type"] = spec.http.type_value
    entry[spec.http.url_key] = url
    if headers:
        target = entry
        for key in spec.http.headers_path[:-1]:
            target = target.setdefault(key, {})
        target[spec.http.headers_path[-1]] = dict(headers)
    return entry


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
