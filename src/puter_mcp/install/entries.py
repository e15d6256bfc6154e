"""What we write for the `puter` server: the launcher to run, and the entry in each client's shape."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from urllib.request import url2pathname

from puter_mcp.install.clients import PACKAGE, SERVER_NAME, ClientSpec

Which = Callable[[str], "str | None"]
"""`shutil.which`'s shape; tests pass a fake so no real PATH is consulted."""


@dataclass(frozen=True)
class Launcher:
    """The program a client starts for stdio, its arguments, and why this one was chosen."""

    command: str
    args: tuple[str, ...]
    kind: Literal["uvx", "uvx-from", "script"]
    reason: str = ""


class LauncherNotFoundError(LookupError):
    """Neither uvx nor an installed puter-mcp script could be found."""


Origin = Literal["index", "local", "other"]


@dataclass(frozen=True)
class Installation:
    """Facts about the running puter-mcp that decide which command starts it again.

    `origin` comes from the distribution's `direct_url.json` (PEP 610): absent means it was
    installed from a package index, `dir_info` from a local directory (a checkout, maybe
    editable), `url`/`vcs_info` from an archive or a repository. `source` is what `uvx --from`
    would take to build the same thing; `ephemeral` says the environment is one of uv's cached
    throwaway ones (uvx), whose scripts may vanish at the next `uv cache clean`.
    """

    origin: Origin
    source: str | None = None
    ephemeral: bool = False
    script_dir: Path | None = None


def _script_names() -> tuple[str, ...]:
    return (f"{PACKAGE}.exe", PACKAGE) if os.name == "nt" else (PACKAGE,)


def origin_of(direct_url_json: str | None) -> tuple[Origin, str | None]:
    """Where a distribution came from, per its `direct_url.json` text (None: the file is absent)."""
    if direct_url_json is None:
        return "index", None
    try:
        data = json.loads(direct_url_json)
    except ValueError:
        return "other", None
    if not isinstance(data, dict):
        return "other", None
    url = data.get("url")
    if not isinstance(url, str):
        return "other", None
    if isinstance(data.get("dir_info"), dict):
        parts = urlsplit(url)
        path = url2pathname(parts.path) if parts.scheme == "file" else None
        return "local", path
    vcs = data.get("vcs_info")
    if isinstance(vcs, dict) and isinstance(vcs.get("vcs"), str):
        commit = vcs.get("commit_id")
        return "other", f"{vcs['vcs']}+{url}" + (f"@{commit}" if isinstance(commit, str) else "")
    return "other", url


_UV_CACHE_PART = re.compile(r"(archive|builds|environments)-v\d+")


def is_uv_cache_environment(prefix: Path) -> bool:
    """uvx runs tools in environments under uv's cache (`~/.cache/uv/archive-v0/<hash>`)."""
    parts = [part.lower() for part in prefix.parts]
    return "uv" in parts and any(_UV_CACHE_PART.fullmatch(part) for part in parts)


def current_installation() -> Installation:
    """The facts for the puter-mcp that is running now."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        # Running from a source tree that was never installed: only a script could start it.
        return Installation("other", None, False, Path(sys.executable).parent)
    origin, source = origin_of(dist.read_text("direct_url.json"))
    return Installation(
        origin, source, is_uv_cache_environment(Path(sys.prefix)), Path(sys.executable).parent
    )


def choose_launcher(installation: Installation, *, absolute: bool, which: Which) -> Launcher:
    """The command that starts this very installation of puter-mcp.

    - From a package index: `uvx puter-mcp` runs the same published release, and keeps
      working when this environment is removed.
    - Under uvx from a checkout or URL: `uvx --from <source> puter-mcp`, because the script
      lives in uv's cache, which `uv cache clean` empties.
    - Otherwise (a virtualenv, an editable checkout, pipx): the installed `puter-mcp` script by
      its absolute path; `uvx puter-mcp` would fetch a package that may not be published.

    GUI clients get absolute paths because they do not inherit the shell's PATH. Claude Code
    runs from a shell, so a bare `uvx` is fine there (and survives uv moving).
    """
    uvx = which("uvx")
    uvx_command = (os.path.abspath(uvx) if absolute else "uvx") if uvx else None
    if installation.origin == "index" and uvx_command:
        return Launcher(
            uvx_command,
            (PACKAGE,),
            "uvx",
            "puter-mcp was installed from a package index, so `uvx puter-mcp` starts the same release",
        )
    if installation.ephemeral and installation.source and uvx_command:
        return Launcher(
            uvx_command,
            ("--from", installation.source, PACKAGE),
            "uvx-from",
            f"puter-mcp runs under uvx from {installation.source}, so uvx builds it from there again",
        )
    where = {
        "index": "no `uvx` was found",
        "local": "puter-mcp was installed from a local directory, which no package index has",
        "other": "puter-mcp was not installed from a package index",
    }[installation.origin]
    if installation.script_dir is not None:
        for name in _script_names():
            candidate = installation.script_dir / name
            if candidate.is_file():
                return Launcher(str(candidate.absolute()), (), "script", f"{where}; this is its own script")
    script = which(PACKAGE)
    if script:
        command = os.path.abspath(script) if absolute else PACKAGE
        return Launcher(command, (), "script", f"{where}; this is the `puter-mcp` found on PATH")
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


MCP_REMOTE_AUTH_ENV = "PUTER_MCP_AUTH"
"""The variable a bridged entry keeps its `Bearer <token>` in; mcp-remote expands it in --header."""


def mcp_remote_entry(url: str, token: str | None) -> dict[str, Any]:
    """A stdio entry that bridges to the streamable-HTTP server at `url` with `npx mcp-remote`."""
    args = ["-y", "mcp-remote", url]
    if not token:
        return {"command": "npx", "args": args}
    args += ["--header", f"Authorization:${{{MCP_REMOTE_AUTH_ENV}}}"]
    return {"command": "npx", "args": args, "env": {MCP_REMOTE_AUTH_ENV: f"Bearer {token}"}}


def auth_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
