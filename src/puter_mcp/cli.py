"""The `puter-mcp` command: thin sub-commands over the modules that do the work.

With no sub-command it serves MCP over stdio, which is what every MCP client launches. Only the
protocol goes to stdout there; everything a person reads goes to stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import anyio

from puter_mcp import __version__
from puter_mcp.settings import ConfigError, Paths, Settings, load_settings, resolve_paths

if TYPE_CHECKING:
    from puter_mcp.core import ChatEvent, ChatOutcome

__all__ = ["main"]

logger = logging.getLogger("puter_mcp")


_SANDBOX_COMMANDS = frozenset({"serve", "gateway", "status", "accounts", "models", "chat", "stats"})


def _eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _count(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number within bounds, refused with a message that says so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"{value} is out of range: give a number {bounds}")
        return value

    return parse


def _window(text: str) -> float:
    """An argparse type: a window such as ``24h`` in seconds (`puter_mcp.display.parse_window`)."""
    from puter_mcp.display import parse_window

    try:
        return parse_window(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _print_what_can_be_printed() -> None:
    """An answer may hold any character; a terminal or a file in a narrower encoding (cp1252
    on Windows, ASCII) shows what it cannot hold as '?' instead of stopping mid-answer with a
    traceback. The MCP server writes bytes to its pipe, so this does not touch it."""
    if isinstance(sys.stdout, io.TextIOWrapper) and sys.stdout.errors == "strict":
        sys.stdout.reconfigure(errors="replace")


def _build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line; given the `argv` it will parse, it leaves out the options of
    `install` when `argv` cannot name it: the install package takes ~30 ms to import, and every
    start of the server builds this parser."""
    parser = argparse.ArgumentParser(
        prog="puter-mcp",
        description="Puter.com's AI models inside every MCP client. With no command: serve MCP over stdio.",
    )
    parser.add_argument("--version", action="version", version=f"puter-mcp {__version__}")
    parser.add_argument(
        "--config",
        dest="settings_file",
        metavar="FILE",
        help="Use this config.toml instead of the default one.",
    )
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="How much to log.")
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="Answer from the built-in Puter emulator: no account, no network.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="Serve MCP (stdio by default, or streamable HTTP / SSE).")
    serve.add_argument("--transport", choices=["stdio", "http", "sse"], default="stdio")
    serve.add_argument("--host", help="Address to bind for http/sse (default 127.0.0.1).")
    serve.add_argument("--port", type=int, help="Port for http/sse (default 8000; 0 picks a free one).")
    serve.add_argument(
        "--auth-token-file",
        metavar="PATH",
        help="A file holding the bearer token HTTP clients must send (required off loopback); "
        "or set PUTER_MCP_AUTH_TOKEN, or pass --auth-token - to read it from stdin.",
    )
    serve.add_argument(
        "--auth-token",
        metavar="TOKEN",
        help="'-' reads the bearer token from stdin (http/sse only). A token written here is "
        "visible to other users (ps): prefer --auth-token-file or PUTER_MCP_AUTH_TOKEN.",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        dest="allowed_hosts",
        metavar="NAME[:PORT]",
        help="Off loopback: a Host header clients may use (repeatable; default: the bound address).",
    )
    serve.add_argument(
        "--accounts-file",
        metavar="PATH",
        help="Use the accounts in this read-only file (the accounts.json format) instead of the "
        "saved ones; it is never written (for replicas sharing a mounted secret).",
    )
    serve.add_argument("--sandbox", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    gateway = commands.add_parser(
        "gateway", help="Serve the OpenAI, Anthropic and Ollama APIs over HTTP (docs/gateway-reference.md)."
    )
    gateway.add_argument("--host", help="Address to bind (default 127.0.0.1; elsewhere keys are required).")
    gateway.add_argument("--port", type=int, help="Port (default 8000; 0 picks a free one).")
    gateway.add_argument(
        "--mcp", action="store_true", default=None, help="Also serve MCP (streamable HTTP) at /mcp."
    )
    gateway.add_argument(
        "--accounts-file",
        metavar="PATH",
        help="Use the accounts in this read-only file (the accounts.json format) instead of the "
        "saved ones; it is never written (for replicas sharing a mounted secret).",
    )
    gateway.add_argument("--sandbox", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    login = commands.add_parser("login", help="Sign in to Puter and save the account.")
    login.add_argument("--token-file", metavar="PATH", help="Sign in with the Puter auth token in this file.")
    login.add_argument(
        "--token-from-env",
        action="store_true",
        help="Sign in with the Puter auth token in the PUTER_AUTH_TOKEN environment variable.",
    )
    login.add_argument(
        "--token",
        metavar="TOKEN",
        help="'-' reads a Puter auth token from stdin. A token written here is visible to other "
        "users (ps): prefer --token-file, --token - or --token-from-env.",
    )
    login.add_argument("--name", help="Save the account under this name (default: its Puter username).")
    login.add_argument("--temp", action="store_true", help="Create a temporary Puter account and use it.")
    login.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="How long to wait for the browser (300).",
    )

    logout = commands.add_parser("logout", help="Forget a saved account (or all of them).")
    logout.add_argument("name", nargs="?", help="The account's name (see `puter-mcp accounts`).")
    logout.add_argument("--all", action="store_true", help="Forget every saved account.")

    accounts = commands.add_parser("accounts", help="List saved accounts and their status.")
    accounts.add_argument("--json", action="store_true", help="Print JSON.")
    accounts.add_argument("--sandbox", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    use = commands.add_parser("use", help="Make an account the default.")
    use.add_argument("name")
    rename = commands.add_parser("rename", help="Rename a saved account.")
    rename.add_argument("old")
    rename.add_argument("new")

    status = commands.add_parser("status", help="Accounts, credits, cooldowns.")
    status.add_argument("--json", action="store_true", help="Print JSON.")
    status.add_argument("--sandbox", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    stats = commands.add_parser(
        "stats", help="Requests, failures, latency, tokens and cost per model and account."
    )
    stats.add_argument(
        "--window",
        type=_window,
        metavar="SPAN",
        help="How far back to count, e.g. 24h (default), 90m, 7d, 1w.",
    )
    stats.add_argument("--json", action="store_true", help="Print JSON.")
    stats.add_argument("--sandbox", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    models = commands.add_parser("models", help="Find models.")
    models.add_argument("query", nargs="?", help="Words to find in a model's id, name or aliases.")
    models.add_argument("--provider")
    models.add_argument("--free", action="store_true", default=None, help="Only free models.")
    models.add_argument("--tools", action="store_true", default=None, help="Only models that can call tools.")
    models.add_argument("--images", action="store_true", default=None, help="Only models that accept images.")
    models.add_argument("--virtual", action="store_true", help="List virtual models (chains) instead.")
    models.add_argument(
        "--limit", type=_count(1, 500), default=20, help="Records per page (1-500, default 20)."
    )
    models.add_argument("--offset", type=_count(0), default=0, help="Records to skip (paging).")
    models.add_argument("--json", action="store_true", help="Print JSON.")
    models.add_argument("--sandbox", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    chat = commands.add_parser("chat", help="Ask a model; the answer streams to the terminal.")
    chat.add_argument("prompt", help="The question; '-' reads it from stdin.")
    chat.add_argument("-m", "--model", help="Model, virtual model or auto (default from config).")
    chat.add_argument("--system", help="A system prompt.")
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--reasoning-effort", choices=["low", "medium", "high"])
    chat.add_argument("--no-fallback", action="store_true", help="Do not fall back to free models.")
    chat.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="PATH",
        help="A text file to include as context (repeatable).",
    )
    chat.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="PATH_OR_URL",
        help="An image for the model (repeatable).",
    )
    chat.add_argument("--json", action="store_true", help="Print the whole result as JSON at the end.")
    chat.add_argument("--sandbox", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    config = commands.add_parser("config", help="Show the effective settings and where files live.")
    config.add_argument("--json", action="store_true", help="Print JSON.")

    from puter_mcp import logs

    install = commands.add_parser("install", help="Add puter-mcp to an MCP client's configuration.")
    if argv is None or "install" in argv:
        from puter_mcp.install import cli as install_cli

        install_cli.configure_parser(install)
    # doctor's options are declared here: importing doctor itself (the Puter client and every
    # check) would slow the start-up of the server, which builds this parser too.
    doctor = commands.add_parser("doctor", help="Check the whole set-up; a fix for each problem.")
    doctor.add_argument("--json", action="store_true", help="Print the report as JSON (for scripts).")
    doctor.add_argument(
        "--strict", action="store_true", help="Exit non-zero on warnings too, not only on problems."
    )
    logs.configure_parser(commands.add_parser("logs", help="Print the log file's path and its last lines."))
    # API keys of the HTTP gateway (docs/gateway-keys.md).
    from puter_mcp.gateway import keys_cli

    keys_cli.configure_parser(
        commands.add_parser("keys", help="Create, list and revoke the gateway's API keys.")
    )

    commands.add_parser(
        "emulator", help="Run the Puter emulator standalone (see `puter-mcp emulator --help`)."
    )
    return parser


def _configure_logging(settings: Settings, paths: Paths) -> None:
    """Log to stderr and the rotating log file (never stdout); mask every secret we know."""
    from puter_mcp.logs import configure_logging, register_secret
    from puter_mcp.routing.redis_url import PASSWORD_ENV, url_password

    configure_logging(settings.log_level, paths.log_file)
    for secret in (
        settings.http.auth_token,
        os.environ.get("PUTER_AUTH_TOKEN"),
        url_password(settings.state),
        os.environ.get(PASSWORD_ENV),
    ):
        if secret:
            register_secret(secret)


def _read_secrets(args: argparse.Namespace) -> None:
    """Replace the secret options by the secrets they point to (a file, stdin), in place."""
    from puter_mcp.secret_input import read_secret

    if args.command == "serve" or args.command is None:
        if getattr(args, "auth_token", None) == "-" and getattr(args, "transport", "stdio") == "stdio":
            raise _Failure(
                "--auth-token - reads stdin, which the stdio transport uses: give --auth-token-file", 2
            )
        args.auth_token = read_secret(
            value=getattr(args, "auth_token", None),
            file=getattr(args, "auth_token_file", None),
            what="the bearer token",
            flag="--auth-token",
            safer="--auth-token-file PATH, --auth-token - or PUTER_MCP_AUTH_TOKEN",
            warn=_eprint,
        )
    elif args.command == "login":
        token = read_secret(
            value=args.token,
            file=args.token_file,
            what="the Puter token",
            flag="--token",
            safer="--token-file PATH, --token - or --token-from-env",
            warn=_eprint,
        )
        if args.token_from_env:
            if token is not None:
                raise _Failure("give one of --token, --token-file and --token-from-env", 2)
            token = os.environ.get("PUTER_AUTH_TOKEN", "").strip()
            if not token:
                raise _Failure("--token-from-env: the PUTER_AUTH_TOKEN environment variable is not set", 2)
        args.token = token


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "gateway":
        return {
            "log_level": getattr(args, "log_level", None),
            "gateway.host": args.host,
            "gateway.port": args.port,
            "gateway.mcp": args.mcp,
            "accounts.file": args.accounts_file,
        }
    return {
        "log_level": getattr(args, "log_level", None),
        "http.host": getattr(args, "host", None),
        "http.port": getattr(args, "port", None),
        "http.auth_token": getattr(args, "auth_token", None),
        "http.allowed_hosts": getattr(args, "allowed_hosts", None),
        "accounts.file": getattr(args, "accounts_file", None),
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _print_what_can_be_printed()
    if argv[:1] == ["emulator"]:
        # The emulator has its own options (and --help); hand them over untouched.
        from puter_mcp.emulator.runner import main as emulator_main

        return emulator_main(argv[1:])
    parser = _build_parser(argv)
    args = parser.parse_args(argv)
    command = args.command or "serve"
    if getattr(args, "sandbox", False) and command not in _SANDBOX_COMMANDS:
        # Refuse rather than ignore: `--sandbox logout --all` must not touch the real accounts.
        _eprint(
            f"puter-mcp: --sandbox works with {', '.join(sorted(_SANDBOX_COMMANDS))}; "
            f"`{command}` acts on your real files, so run it without --sandbox."
        )
        return 2
    from puter_mcp.secret_input import SecretInputError

    try:
        _read_secrets(args)
    except SecretInputError as exc:
        _eprint(f"puter-mcp: {exc}")
        return 2
    except _Failure as exc:
        _eprint(f"puter-mcp: {exc}")
        return exc.exit_code
    if command == "install":
        # Needs no settings: a broken config.toml must not stop anyone from installing.
        from puter_mcp.install import cli as install_cli

        return install_cli.run(args)
    from pathlib import Path

    paths = resolve_paths(config_file=Path(args.settings_file) if args.settings_file else None)
    if command == "logs":
        from puter_mcp import logs

        return logs.run(args, paths)
    try:
        settings, paths = load_settings(paths=paths, overrides=_overrides(args))
    except (ConfigError, ValueError) as exc:
        if not isinstance(exc, ConfigError) and not _is_chain_error(exc):
            raise
        if command == "doctor":
            # Doctor's job is to report this, and to check everything else all the same.
            from puter_mcp import doctor

            return doctor.run(args, None, paths)
        _eprint(f"puter-mcp: {exc}")
        return 2
    _configure_logging(settings, paths)
    if command == "doctor":
        from puter_mcp import doctor

        return doctor.run(args, settings, paths)
    handler = _COMMANDS[command]
    try:
        return handler(args, settings, paths)
    except KeyboardInterrupt:
        return 130
    except _Failure as exc:
        _eprint(f"puter-mcp: {exc}")
        return exc.exit_code


def _is_chain_error(exc: Exception) -> bool:
    # Imported only on failure: the chains module is not needed to start a server without chains.
    from puter_mcp.routing.chains import ChainConfigError

    return isinstance(exc, ChainConfigError)


class _Failure(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _run(coro_fn: Callable[[], Any]) -> Any:
    """Run a coroutine; the errors meant for people become a message and exit code 1."""
    from puter_mcp.core import BackendError
    from puter_mcp.wording import CLI_MODELS_HINT, describe_error

    try:
        return anyio.run(coro_fn)
    except BackendError as exc:
        raise _Failure(describe_error(exc, models_hint=CLI_MODELS_HINT)) from exc
    except Exception as exc:
        # Imported only on failure: the sign-in module pulls in the Puter client and the
        # routing state, which a starting server does not need yet (its start-up is measured).
        from puter_mcp.accounts.login import LoginError
        from puter_mcp.accounts.store import AccountsError

        if isinstance(exc, LoginError | AccountsError):
            raise _Failure(str(exc)) from exc
        raise


# -- serving -----------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    from puter_mcp.runtime import SANDBOX_NOTICE, open_backend
    from puter_mcp.server import serve_http, serve_stdio

    transport = getattr(args, "transport", "stdio")
    sandbox = bool(getattr(args, "sandbox", False))
    if sandbox:
        _eprint(SANDBOX_NOTICE)
    if transport != "stdio":
        from puter_mcp.http_serving import ServingError, check_binding

        try:
            check_binding(settings.http.host, settings.http.auth_token)
        except ServingError as exc:
            raise _Failure(str(exc), exit_code=2) from exc

    async def run() -> None:
        async with open_backend(settings, paths, sandbox=sandbox) as backend:
            if transport == "stdio":
                await serve_stdio(backend)
            else:
                await serve_http(
                    backend,
                    transport="sse" if transport == "sse" else "http",
                    host=settings.http.host,
                    port=settings.http.port,
                    auth_token=settings.http.auth_token,
                    allowed_hosts=settings.http.allowed_hosts,
                    on_ready=lambda url: _eprint(f"puter-mcp: serving MCP at {url}"),
                )

    _run(run)
    return 0


def _cmd_gateway(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    from puter_mcp.gateway.serve import binding_problem, serve_gateway
    from puter_mcp.runtime import SANDBOX_NOTICE, open_backend

    sandbox = bool(getattr(args, "sandbox", False))
    problem = binding_problem(settings.gateway)
    if problem:
        raise _Failure(problem, exit_code=2)
    if sandbox:
        _eprint(SANDBOX_NOTICE)

    def announce(urls: list[tuple[str, str]]) -> None:
        width = max(len(what) for what, _url in urls)
        _eprint("puter-mcp: the gateway is ready. Base URLs for your clients:")
        for what, url in urls:
            _eprint(f"  {what.ljust(width)}  {url}")

    async def run() -> None:
        async with open_backend(settings, paths, sandbox=sandbox) as backend:
            await serve_gateway(backend, settings.gateway, on_ready=announce)

    _run(run)
    return 0


# -- accounts ----------------------------------------------------------------------------


def _cmd_login(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    from puter_mcp.accounts.login import run_login
    from puter_mcp.core.stores import open_store

    _refuse_fixed_accounts(settings, "login")
    token = args.token  # read by `_read_secrets`
    if token is not None and args.temp:
        raise _Failure("give either a token or --temp, not both", 2)

    async def run() -> str:
        return await run_login(
            settings,
            paths,
            token=token,
            temp=args.temp,
            name=args.name,
            timeout=args.timeout,
            on_notice=_eprint,
            # The account's cooldowns are cleared in the store every process uses.
            open_state=lambda: open_store(settings, paths, on_warning=_eprint),
        )

    print(_run(run))
    return 0


def _refuse_fixed_accounts(settings: Settings, command: str) -> None:
    """`login`, `logout`, `use` and `rename` change the home's accounts file; when this
    process's accounts come from elsewhere (read-only), say so rather than change a file no
    process here reads."""
    from puter_mcp.accounts.store import fixed_accounts_source

    source = fixed_accounts_source(settings.accounts.file, os.environ)
    if source is not None:
        raise _Failure(
            f"`puter-mcp {command}` cannot change these accounts: they come from {source}, which "
            'is read-only (docs/configuration.md, "Accounts"). Edit that source, or run the '
            "command without it (unset PUTER_MCP_ACCOUNTS, or leave out --accounts-file / "
            "[accounts] file)."
        )


def _store(settings: Settings, paths: Paths, command: str) -> Any:
    from puter_mcp.accounts.store import AccountsStore

    _refuse_fixed_accounts(settings, command)
    return AccountsStore(paths.accounts_file)


def _account_errors() -> tuple[type[Exception], ...]:
    from puter_mcp.accounts.store import AccountsError

    return (AccountsError,)


def _cmd_logout(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    store = _store(settings, paths, "logout")
    try:
        if args.all:
            store.remove_all()
            print("Forgot every saved account.")
        elif args.name:
            store.remove(args.name)
            print(f"Forgot the account {args.name}.")
        else:
            raise _Failure("name an account (`puter-mcp accounts` lists them) or pass --all", 2)
    except _account_errors() as exc:
        raise _Failure(str(exc)) from exc
    return 0


def _cmd_use(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    try:
        _store(settings, paths, "use").set_default(args.name)
    except _account_errors() as exc:
        raise _Failure(str(exc)) from exc
    print(f"{args.name} is now the default account.")
    return 0


def _cmd_rename(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    try:
        _store(settings, paths, "rename").rename(args.old, args.new)
    except _account_errors() as exc:
        raise _Failure(str(exc)) from exc
    print(f"Renamed {args.old} to {args.new}.")
    return 0


def _cmd_status(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    from puter_mcp.display import CLI_WORDS, accounts_text
    from puter_mcp.runtime import open_backend

    sandbox = bool(getattr(args, "sandbox", False))

    async def run() -> Any:
        async with open_backend(settings, paths, sandbox=sandbox) as backend:
            return await backend.accounts_overview()

    overview = _run(run)
    print(
        overview.model_dump_json(indent=2)
        if getattr(args, "json", False)
        else accounts_text(overview, CLI_WORDS)
    )
    return 0


DEFAULT_STATS_WINDOW = 86400.0


def _cmd_stats(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    """Usage from the shared attempt log: no gateway needs to run (it opens the state as
    `status` does), and it counts every process using the same state database."""
    import time

    from puter_mcp.display import usage_text
    from puter_mcp.runtime import open_backend

    sandbox = bool(getattr(args, "sandbox", False))
    window = args.window or DEFAULT_STATS_WINDOW

    async def run() -> Any:
        async with open_backend(settings, paths, sandbox=sandbox) as backend:
            report = await backend.usage_stats(time.time() - window)
        # A sandbox has no keys; and it must not read the real ones.
        return report, None if sandbox else await _key_usage(settings, paths, report.since)

    report, keys = _run(run)
    if args.json:
        # The shape of the gateway's GET /stats.
        by_key = {
            name: {"requests": n, "rate_limited": refused} for name, (n, refused) in (keys or {}).items()
        }
        print(json.dumps({**report.model_dump(mode="json"), "window_s": window, "keys": by_key}, indent=2))
    else:
        print(usage_text(report, keys))
    return 0


async def _key_usage(settings: Settings, paths: Paths, since: float) -> dict[str, tuple[int, int]] | None:
    """Each gateway API key's requests and 429s since `since`, from the key store the settings
    name, or None when no key was ever created on this machine (the file is not made for a
    look)."""
    from puter_mcp.gateway.keyplace import keys_in_redis, open_key_store
    from puter_mcp.gateway.keystore import KeyStoreError, key_store_file

    if not keys_in_redis(settings) and not key_store_file(paths).exists():
        return None
    store = open_key_store(settings, paths)
    try:
        rows = await store.usage(since)
    except KeyStoreError as exc:
        _eprint(f"puter-mcp: the keys' usage is left out: {exc}")
        return None
    finally:
        await store.aclose()
    return {row.name: (row.requests, row.rate_limited) for row in rows}


# -- models and chat ---------------------------------------------------------------------


def _cmd_models(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    from puter_mcp.core import ModelsQuery
    from puter_mcp.display import CLI_WORDS, models_text
    from puter_mcp.runtime import SANDBOX_NOTICE, open_backend

    sandbox = bool(getattr(args, "sandbox", False))
    if sandbox:
        _eprint(SANDBOX_NOTICE)
    query = ModelsQuery(
        query=args.query,
        provider=args.provider,
        free=args.free,
        tool_calling=args.tools,
        image_input=args.images,
        virtual=args.virtual,
        limit=args.limit,
        offset=args.offset,
    )

    async def run() -> Any:
        async with open_backend(settings, paths, sandbox=sandbox) as backend:
            return await backend.list_models(query)

    page = _run(run)
    print(page.model_dump_json(indent=2) if args.json else models_text(page, CLI_WORDS))
    return 0


def _cmd_chat(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    from pathlib import Path

    from puter_mcp.core import ChatCall
    from puter_mcp.runtime import SANDBOX_NOTICE, open_backend

    sandbox = bool(getattr(args, "sandbox", False))
    if sandbox:
        _eprint(SANDBOX_NOTICE)
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        source = "stdin" if args.prompt == "-" else "the command line"
        raise _Failure(
            f"the question from {source} is empty: write it after `chat`, or pipe it to `chat -`", 2
        )

    # A terminal's relative paths are the person's own: made absolute from where they stand.
    files = [str(Path(path).absolute()) for path in args.file]
    images = [image if "://" in image else str(Path(image).absolute()) for image in args.image]

    async def run() -> Any:
        call = ChatCall.build(
            message=prompt,
            model=args.model,
            system=args.system,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            reasoning_effort=args.reasoning_effort,
            fallback=False if args.no_fallback else None,
            files=files,
            images=images,
        )
        async with open_backend(settings, paths, sandbox=sandbox) as backend:
            return await _print_stream(
                backend.chat_stream(call, restart_after_output=True), echo=not args.json
            )

    outcome = _run(run)
    if args.json:
        print(outcome.model_dump_json(indent=2))
        return 0
    sys.stdout.write("\n")
    sys.stdout.flush()  # before the notes on stderr, so that a terminal shows them after the answer
    if outcome.fallback:
        _eprint(f"[{outcome.fallback}]")
    cost = "unknown cost" if outcome.cost_usd is None else f"${outcome.cost_usd:.6f}"
    _eprint(f"[{outcome.model} via {outcome.account}: {outcome.usage.total_tokens} tokens, {cost}]")
    return 0


async def _print_stream(events: AsyncGenerator[ChatEvent, None], *, echo: bool) -> ChatOutcome:
    """Print the answer's text as it arrives (unless `echo` is off: with --json, stdout
    carries the JSON alone) and return the finished outcome."""
    from puter_mcp.core import AttemptStarted, Finished, StreamFailed, TextDelta

    model, printed = "", False
    async with aclosing(events):
        async for event in events:
            if isinstance(event, TextDelta):
                if echo:
                    printed = True
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
            elif isinstance(event, AttemptStarted):
                # Only an attempt that already printed text broke off in front of the user; one
                # refused before its first token (a 429, a model that is down) printed nothing.
                if printed:
                    sys.stdout.write(_broke_off(model, event.previous_failure, event.model))
                model, printed = event.model, False
            elif isinstance(event, Finished):
                return event.outcome
            elif isinstance(event, StreamFailed):
                raise event.error
    raise _Failure("the answer ended without its closing event (a bug in puter-mcp: please report it)")


def _broke_off(model: str, why: str, next_model: str) -> str:
    """The line between an answer that broke off in the terminal and the next attempt's answer."""
    because = f" ({why})" if why else ""
    return f"\n[{model} broke off{because}; answering with {next_model}]\n"


def _cmd_config(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    from puter_mcp.accounts.secrets import mask_token
    from puter_mcp.routing.redis_url import masked_url

    shown = settings.model_dump(mode="json")
    if shown["http"].get("auth_token"):
        shown["http"]["auth_token"] = mask_token(shown["http"]["auth_token"])
    shown["state"] = masked_url(shown["state"])  # a redis:// URL may hold a password
    where = {
        "config_file": str(paths.config_file),
        "config_file_exists": paths.config_file.exists(),
        "accounts_file": str(paths.accounts_file),
        "state_db": str(paths.state_db),
        "models_cache": str(paths.models_cache),
        "log_file": str(paths.log_file),
    }
    if args.json:
        print(json.dumps({"settings": shown, "paths": where}, indent=2))
        return 0
    print("Files:")
    for key, value in where.items():
        print(f"  {key}: {value}")
    print("Effective settings (defaults < config.toml < environment < flags):")
    print(json.dumps(shown, indent=2))
    return 0


def _cmd_keys(args: argparse.Namespace, settings: Settings, paths: Paths) -> int:
    from puter_mcp.gateway import keys_cli

    return keys_cli.run(args, settings, paths)


_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings, Paths], int]] = {
    "serve": _cmd_serve,
    "gateway": _cmd_gateway,
    "login": _cmd_login,
    "logout": _cmd_logout,
    "accounts": _cmd_status,
    "use": _cmd_use,
    "rename": _cmd_rename,
    "status": _cmd_status,
    "stats": _cmd_stats,
    "models": _cmd_models,
    "chat": _cmd_chat,
    "config": _cmd_config,
    "keys": _cmd_keys,
}
