"""Settings: defaults < ``config.toml`` < environment (``PUTER_MCP_*``) < command-line flags.

Every path comes from `platformdirs` (or, for tests and portable installs, from one directory
named by ``PUTER_MCP_HOME``). A broken config file is reported with its path and line, and with
what was expected, because a user who edits TOML by hand needs to know where to look.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from puter_mcp.files import PrivateDirError, ensure_private_dir
from puter_mcp.puter.tiers import StatedTier
from puter_mcp.puter.timeouts import DEFAULT_TIMEOUTS

__all__ = [
    "AccountsSettings",
    "ConfigError",
    "CooldownSettings",
    "GatewaySettings",
    "HttpSettings",
    "Paths",
    "PrivateDirError",
    "RoutingSettings",
    "Settings",
    "TimeoutSettings",
    "ensure_private_dir",
    "load_settings",
    "resolve_paths",
]

APP_NAME = "puter-mcp"


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and what to do."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutSettings(_Section):
    """How long to wait for Puter, in seconds (defaults: the client's own, `DEFAULT_TIMEOUTS`)."""

    connect: float = Field(
        default=DEFAULT_TIMEOUTS.connect, gt=0, description="Opening a connection to Puter."
    )
    first_byte: float = Field(
        default=DEFAULT_TIMEOUTS.first_byte,
        gt=0,
        description="From sending a request to the answer's headers.",
    )
    idle: float = Field(
        default=DEFAULT_TIMEOUTS.idle,
        gt=0,
        description="Longest silence between two lines of a streamed answer.",
    )
    total: float = Field(
        default=DEFAULT_TIMEOUTS.total, gt=0, description="One upstream request from start to end."
    )


class RoutingSettings(_Section):
    """How one request is spread over models and accounts."""

    strategy: Literal["round-robin", "least-recently-used", "fill-first"] = Field(
        default="round-robin", description="How the next account is chosen for a model."
    )
    max_attempts: int = Field(
        default=6, ge=1, le=50, description="Upstream requests one call may make at most."
    )
    deadline: float = Field(
        default=180.0, gt=0, description="Seconds one call may take, waits and retries included."
    )
    max_wait: float = Field(
        default=15.0,
        ge=0,
        description="When every candidate is cooling down, wait for the first to free up only if it "
        "frees up within this many seconds (and within the deadline); else fail at once.",
    )
    slot_lease: float = Field(
        default=900.0,
        gt=0,
        description="Seconds a pacing slot may stay in flight before it stops counting: how long a "
        "process killed without giving its slots back (SIGKILL, a lost host) can hold an account's "
        "in-flight places. Longer than any request should take.",
    )


class CooldownSettings(_Section):
    """How long a failure keeps a model or account out of rotation, in seconds."""

    rate_limited: tuple[float, ...] = Field(
        default=(10.0, 30.0, 60.0, 120.0, 300.0),
        min_length=1,
        description="Escalating steps for repeated 429s.",
    )
    model_down: tuple[float, float] = Field(
        default=(30.0, 60.0), description="Range (jittered) for a failing model."
    )
    model_forbidden: float = Field(
        default=6 * 3600.0, gt=0, description="A subscriber-only model on a free account."
    )
    transport: float = Field(
        default=15.0, gt=0, description="A broken connection to one model on one account."
    )
    credit_recheck: float = Field(
        default=300.0, gt=0, description="How often an empty account's credit is re-read."
    )


class HttpSettings(_Section):
    """Serving HTTP: where to listen, the bearer token, the Host names answered off loopback.

    About serving HTTP in general, not one protocol: the rules behind these keys live in
    `puter_mcp.http_serving` (docs/http.md). `puter-mcp serve --transport http|sse` reads them
    today; a face with settings of its own adds its own section beside this one.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    auth_token: str | None = Field(
        default=None, repr=False, description="Bearer token HTTP clients must send."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Off loopback: the Host header values clients may use (name or name:port; "
        "name:* for any port). Default: the bound address.",
    )


def _comma_list(value: Any) -> Any:
    """A list setting given as one string (an environment variable): comma-separated."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class GatewaySettings(_Section):
    """The HTTP gateway (`puter-mcp gateway`): the OpenAI, Anthropic and Ollama APIs over the
    backend (docs/gateway-reference.md). Serving rules shared with MCP over HTTP (Host and Origin
    checks) live in `puter_mcp.http_serving`; these are the gateway's own."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    require_keys: bool = Field(
        default=False,
        description="Every request needs an API key (`puter-mcp keys create`). Forced on off loopback.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Web origins browsers may call from (["*"] for any); empty: no CORS headers.',
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Off loopback: the Host header values clients may use (as in [http]).",
    )
    mcp: bool = Field(default=False, description="Also serve MCP (streamable HTTP) at /mcp.")
    max_body_mb: float = Field(
        default=32.0, gt=0, description="Largest request body, in MiB (images travel inline)."
    )

    _lists = field_validator("cors_origins", "allowed_hosts", mode="before")(_comma_list)


class AccountsSettings(_Section):
    """Where this process's Puter accounts come from (docs/configuration.md, "Accounts")."""

    file: Path | None = Field(
        default=None,
        description="A read-only accounts file (the JSON the accounts store writes), e.g. a secret "
        "mounted into each gateway replica; it replaces the home's saved accounts and is never "
        "written. PUTER_MCP_ACCOUNTS may hold that JSON itself instead.",
    )


class Settings(BaseModel):
    """Everything puter-mcp can be told; see the README's "Configuration" section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_origin: str = Field(default="https://api.puter.com", description="Puter's API host.")
    gui_origin: str = Field(default="https://puter.com", description="Puter's sign-in host.")
    default_model: str = Field(
        default="auto", min_length=1, description="Model or virtual model used by default."
    )
    fallback_to_free: bool = Field(
        default=True, description="End every chain with the catalogue's free models."
    )
    models_cache_ttl: float = Field(
        default=6 * 3600.0, ge=0, description="Seconds the model catalogue is reused."
    )
    progress_interval: float = Field(
        default=3.0, gt=0, le=5.0, description="Seconds between progress heartbeats."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    state: str = Field(
        default="sqlite",
        description="Where shared state lives: sqlite (one file per user), memory (this process), "
        "or redis://host:port/db (rediss:// for TLS), shared by gateway replicas.",
    )
    state_prefix: str = Field(
        default="puter-mcp:",
        min_length=1,
        description="Redis only: what every key starts with, so that deployments can share one Redis.",
    )
    account_tiers: dict[str, StatedTier] = Field(
        default_factory=dict, description="Tier per account name, when /whoami guesses wrong."
    )
    timeouts: TimeoutSettings = TimeoutSettings()
    routing: RoutingSettings = RoutingSettings()
    cooldowns: CooldownSettings = CooldownSettings()
    http: HttpSettings = HttpSettings()
    gateway: GatewaySettings = GatewaySettings()
    accounts: AccountsSettings = AccountsSettings()
    chains: dict[str, Any] = Field(default_factory=dict, description="User-defined virtual models.")

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        from puter_mcp.routing.redis_url import check_redis_url, is_redis_url, masked_url

        if is_redis_url(value):
            check_redis_url(value)  # its message never shows the password
            return value
        if value.startswith("unix://"):
            raise ValueError(
                "unix:// state stores are reserved for a later version of puter-mcp; use "
                '"sqlite" (the default), "memory" or a redis:// URL'
            )
        if value not in ("sqlite", "memory"):
            raise ValueError(f'must be "sqlite", "memory" or a redis:// URL, got {masked_url(value)!r}')
        return value

    @field_validator("api_origin", "gui_origin")
    @classmethod
    def _origin(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+$", value.rstrip("/")):
            raise ValueError("must be an origin such as https://api.puter.com (scheme and host, no path)")
        return value.rstrip("/")


@dataclass(frozen=True)
class Paths:
    """Where puter-mcp keeps its files.

    The state directory holds the shared state database and nothing else, and the log
    directory is never inside it: deleting the state (the advice for a broken database) must
    not delete the logs that explain what happened. platformdirs puts its log directory inside
    its state directory on Linux, so the state gets a ``state`` subdirectory of its own there.
    """

    config_file: Path
    data_dir: Path
    state_dir: Path
    cache_dir: Path
    log_dir: Path

    @property
    def accounts_file(self) -> Path:
        return self.data_dir / "accounts.json"

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def models_cache(self) -> Path:
        return self.cache_dir / "models.json"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "puter-mcp.log"


def resolve_paths(env: Mapping[str, str] | None = None, config_file: Path | None = None) -> Paths:
    """Find every directory: ``PUTER_MCP_HOME`` puts them all under one folder."""
    env = os.environ if env is None else env
    home = env.get("PUTER_MCP_HOME")
    if home:
        root = Path(home).expanduser()
        paths = Paths(root / "config.toml", root / "data", root / "state", root / "cache", root / "logs")
    else:
        import platformdirs

        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        paths = Paths(
            Path(dirs.user_config_dir) / "config.toml",
            Path(dirs.user_data_dir),
            Path(dirs.user_state_dir) / "state",
            Path(dirs.user_cache_dir),
            Path(dirs.user_log_dir),
        )
    explicit = config_file or (Path(env["PUTER_MCP_CONFIG"]) if env.get("PUTER_MCP_CONFIG") else None)
    if explicit is not None:
        paths = Paths(explicit.expanduser(), paths.data_dir, paths.state_dir, paths.cache_dir, paths.log_dir)
    return paths


# Environment variables and the setting each one sets (dotted for sections).
ENV_VARS: Mapping[str, str] = {
    "PUTER_API_ORIGIN": "api_origin",
    "PUTER_GUI_ORIGIN": "gui_origin",
    "PUTER_MCP_API_ORIGIN": "api_origin",
    "PUTER_MCP_GUI_ORIGIN": "gui_origin",
    "PUTER_MCP_DEFAULT_MODEL": "default_model",
    "PUTER_MCP_FALLBACK_TO_FREE": "fallback_to_free",
    "PUTER_MCP_MODELS_CACHE_TTL": "models_cache_ttl",
    "PUTER_MCP_PROGRESS_INTERVAL": "progress_interval",
    "PUTER_MCP_LOG_LEVEL": "log_level",
    "PUTER_MCP_STATE": "state",
    "PUTER_MCP_STATE_PREFIX": "state_prefix",
    "PUTER_MCP_STRATEGY": "routing.strategy",
    "PUTER_MCP_MAX_ATTEMPTS": "routing.max_attempts",
    "PUTER_MCP_DEADLINE": "routing.deadline",
    "PUTER_MCP_MAX_WAIT": "routing.max_wait",
    "PUTER_MCP_SLOT_LEASE": "routing.slot_lease",
    "PUTER_MCP_TIMEOUT_CONNECT": "timeouts.connect",
    "PUTER_MCP_TIMEOUT_FIRST_BYTE": "timeouts.first_byte",
    "PUTER_MCP_TIMEOUT_IDLE": "timeouts.idle",
    "PUTER_MCP_TIMEOUT_TOTAL": "timeouts.total",
    "PUTER_MCP_HOST": "http.host",
    "PUTER_MCP_PORT": "http.port",
    "PUTER_MCP_AUTH_TOKEN": "http.auth_token",
    "PUTER_MCP_GATEWAY_HOST": "gateway.host",
    "PUTER_MCP_GATEWAY_PORT": "gateway.port",
    "PUTER_MCP_GATEWAY_REQUIRE_KEYS": "gateway.require_keys",
    "PUTER_MCP_GATEWAY_CORS_ORIGINS": "gateway.cors_origins",
    "PUTER_MCP_GATEWAY_ALLOWED_HOSTS": "gateway.allowed_hosts",
    "PUTER_MCP_GATEWAY_MCP": "gateway.mcp",
    "PUTER_MCP_ACCOUNTS_FILE": "accounts.file",
}


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        existing = target.get(part)
        if not isinstance(existing, dict):
            existing = {}
            target[part] = existing
        target = existing
    target[leaf] = value


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best effort: the line of a dotted key in a TOML text, for error messages."""
    section: tuple[str, ...] = ()
    wanted = tuple(str(part) for part in loc)
    header = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
    key_re = re.compile(r"^\s*([A-Za-z0-9_\-\"']+)\s*=")
    best: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if match := header.match(line):
            section = tuple(part.strip().strip("\"'") for part in match.group(1).split("."))
            if section == wanted[: len(section)] and best is None and len(section) == len(wanted):
                best = number
            continue
        if match := key_re.match(line):
            key = match.group(1).strip("\"'")
            if (*section, key) == wanted[: len(section) + 1]:
                return number
    return best


def _format_validation(error: ValidationError, source: str, text: str | None) -> str:
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        where = ".".join(str(part) for part in loc) or "(top level)"
        line = _line_of(text, loc) if text else None
        at = f"{source}, line {line}" if line else source
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling; the README lists every option)"
        lines.append(f"{at}: {where}: {message}")
    return "\n".join(lines)


def _check_chains(chains: Any, source: str, text: str | None) -> None:
    """Check the ``[chains.*]`` tables here, where the file's text is at hand, so that each
    problem names the user's file and the line of its chain (the server checks them again
    later, when only the parsed settings are left: in the sandbox, far from the user's file).

    Raises:
        ChainConfigError: every problem, each after the line of its chain.
    """
    from puter_mcp.routing.chains import ChainConfigError, parse_user_chains

    tables = list(chains.items()) if isinstance(chains, dict) else [(None, chains)]
    problems: list[str] = []
    for name, body in tables:
        line = _line_of(text, ("chains", str(name))) if text and name is not None else None
        try:
            parse_user_chains({name: body} if name is not None else body, source=source)
        except ChainConfigError as exc:
            problems += [f"line {line}: {problem}" if line else problem for problem in exc.problems]
    if problems:
        raise ChainConfigError(source, problems)


def _read_config(path: Path) -> tuple[dict[str, Any], str | None]:
    try:
        # "-sig": a byte-order mark (Notepad writes one) is not part of the TOML.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc}") from exc
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"the config file {path} is not valid TOML: {exc}. Fix that line, or move the file away "
            "to start from the defaults (`puter-mcp config` shows them)."
        ) from exc


def load_settings(
    *,
    paths: Paths | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[Settings, Paths]:
    """Build the effective settings.

    Args:
        paths: where to look (default: `resolve_paths`).
        env: the environment (default: `os.environ`).
        overrides: values from command-line flags, by dotted name (``"http.port"``); `None`
            values are ignored so that unset flags do not hide the config file.

    Raises:
        ConfigError: the config file or a variable is wrong; the message names it.
        ChainConfigError: a ``[chains.*]`` table is wrong; the message names the file and line.
    """
    env = os.environ if env is None else env
    paths = paths or resolve_paths(env)
    data, text = _read_config(paths.config_file)
    source = str(paths.config_file)
    try:
        Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"the config file has a mistake:\n{_format_validation(exc, source, text)}") from exc
    if data.get("chains"):
        _check_chains(data["chains"], source, text)

    merged: dict[str, Any] = {
        key: (dict(value) if isinstance(value, dict) else value) for key, value in data.items()
    }
    for name, dotted in ENV_VARS.items():
        if env.get(name):
            _set_dotted(merged, dotted, env[name])
    try:
        Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            "an environment variable has a wrong value:\n"
            + _format_validation(exc, "environment", None)
            + f"\n(variables: {', '.join(n for n in ENV_VARS if env.get(n))})"
        ) from exc
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(merged, dotted, value)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(
            "a command-line option has a wrong value:\n" + _format_validation(exc, "flag", None)
        ) from exc
    return settings, paths
