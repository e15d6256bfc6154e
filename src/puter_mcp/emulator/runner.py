"""Running the emulator on a loopback port: in a task, in a thread, or as a command.

uvicorn binds the socket itself and the real port is read back from it, rather than
pre-binding one to learn a free port: a socket made with protocol 0 makes asyncio skip
TCP_NODELAY, and every kept-alive response then stalls ~40 ms (docs/architecture.md, "Pitfalls").

- `async with serve_emulator(state) as base_url:` for async tests and the product's
  `--sandbox` mode;
- `EmulatorThread(state)` (`.start() -> base_url`, `.stop()`, or `with ... as base_url:`) for
  synchronous fixtures and tests that drive a subprocess;
- `main(argv)` for `puter-mcp emulator`: seeds a paid, a free and a temporary account, prints
  `PUTER_EMULATOR_URL=...` and one `PUTER_EMULATOR_TOKEN_<TIER>=...` line per account on
  stdout, and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Generator
from types import TracebackType

import anyio
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from .app import create_app
from .state import DEFAULT_CREDITS_USD, EmulatorState, Tier

__all__ = ["EmulatorThread", "main", "serve_emulator"]

DEFAULT_PORT = 4180
_START_TIMEOUT = 10.0


class _Server(uvicorn.Server):
    """uvicorn's server, reporting when it listens (or fails to), optionally leaving signals alone."""

    def __init__(
        self, config: uvicorn.Config, *, on_ready: Callable[[], None], capture_signals: bool
    ) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._capture = capture_signals
        self.failure: BaseException | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._on_ready()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # An emulator inside a test process must not take over Ctrl-C.
        if self._capture:
            with super().capture_signals():
                yield
        else:
            yield

    async def main_loop(self) -> None:
        # uvicorn looks at `should_exit` every 100 ms; an embedded emulator is started and
        # stopped once per test, so it looks every 5 ms (uvicorn's tick still runs each 100 ms).
        if self._capture:
            await super().main_loop()
            return
        counter = 0
        while not await self.on_tick(counter):
            for _ in range(20):
                await anyio.sleep(0.005)
                if self.should_exit:
                    break
            counter = (counter + 1) % 864_000

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's shutdown always sleeps 100 ms; embedded, close idle connections, give busy
        # ones until the graceful timeout, then cut them.
        if self._capture:
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        with anyio.move_on_after(self.config.timeout_graceful_shutdown or 1):
            while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110 (uvicorn offers no event)
                await anyio.sleep(0.005)
            for server in self.servers:
                await server.wait_closed()
        for task in list(self.server_state.tasks):
            task.cancel()
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()

    async def serve_reporting(self) -> None:
        """`serve()`, but a startup failure (uvicorn calls sys.exit) is kept, not raised."""
        try:
            await self.serve()
        except SystemExit as exc:
            self.failure = exc
        finally:
            if not self.started:
                self._on_ready()

    @property
    def port(self) -> int:
        return self.servers[0].sockets[0].getsockname()[1]


def _build_server(
    state: EmulatorState,
    host: str,
    port: int,
    *,
    on_ready: Callable[[], None],
    capture_signals: bool = False,
    log_level: str = "warning",
    quiet_logging_config: bool = True,
    http: str = "h11",
) -> _Server:
    config = uvicorn.Config(
        create_app(state),
        host=host,
        port=port,
        http=http,
        ws="none",
        lifespan="off",
        access_log=False,
        log_level=log_level,
        # Inside tests, leave the process's logging configuration alone.
        log_config=None if quiet_logging_config else LOGGING_CONFIG,
        # Stalled answers must not hold a shutdown for long.
        timeout_graceful_shutdown=1,
    )
    return _Server(config, on_ready=on_ready, capture_signals=capture_signals)


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _startup_error(server: _Server) -> RuntimeError:
    return RuntimeError(f"the Puter emulator could not start (uvicorn exited with {server.failure!r})")


@contextlib.asynccontextmanager
async def serve_emulator(state: EmulatorState, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve `state` on `host:port` (0: a free port) for the duration of the block; yields the base URL."""
    ready = anyio.Event()
    server = _build_server(state, host, port, on_ready=ready.set)
    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve_reporting)
        with anyio.fail_after(_START_TIMEOUT):
            await ready.wait()
        if not server.started:
            raise _startup_error(server)
        try:
            yield _base_url(host, server.port)
        except Exception as exc:
            # Re-raised below, outside the task group, so that the caller sees its own
            # exception rather than an exception group.
            failure = exc
        finally:
            server.should_exit = True
    if failure is not None:
        raise failure


class EmulatorThread:
    """The emulator served from a background thread with its own event loop.

    `start()` returns the base URL once the port listens; `stop()` shuts the server down and
    joins the thread. As a context manager it yields the base URL.
    """

    def __init__(self, state: EmulatorState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self.host = host
        self._ready = threading.Event()
        self._server = _build_server(state, host, port, on_ready=self._ready.set)
        self._thread = threading.Thread(target=self._run, name="puter-emulator", daemon=True)
        self.base_url: str | None = None

    def _run(self) -> None:
        anyio.run(self._server.serve_reporting)

    def start(self) -> str:
        if self.base_url is not None:
            return self.base_url
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT) or not self._server.started:
            self._server.should_exit = True
            self._thread.join(_START_TIMEOUT)
            raise _startup_error(self._server)
        self.base_url = _base_url(self.host, self._server.port)
        return self.base_url

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(_START_TIMEOUT)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="puter-mcp emulator",
        description="Run a local Puter emulator (for tests and sandboxes) until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: any)"
    )
    parser.add_argument("--stream-delay", type=float, default=0.0, help="seconds between streamed lines")
    parser.add_argument(
        "--seed-credits",
        type=float,
        default=DEFAULT_CREDITS_USD[Tier.PAID],
        help="US dollars on the seeded paid account (the free and temporary ones get Puter's allowances)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for tokens, so that they repeat across runs"
    )
    parser.add_argument("--signup-captcha", action="store_true", help="refuse POST /signup as puter.com does")
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="serve with httptools and uvloop (when installed) instead of h11 and asyncio: a "
        "fraction of the CPU per request, for benchmarks that need the upstream to cost little",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """`puter-mcp emulator`: serve seeded accounts until interrupted. Returns the exit status."""
    args = _parser().parse_args(argv)
    state = EmulatorState(
        seed=args.seed, stream_delay=args.stream_delay, signup_captcha_required=args.signup_captcha
    )
    accounts = state.seed_default_accounts(paid_credits_usd=args.seed_credits)

    def announce() -> None:
        if not server.started:
            return
        print(f"PUTER_EMULATOR_URL={_base_url(args.host, server.port)}")
        for account in accounts:
            print(f"PUTER_EMULATOR_TOKEN_{account.tier.value.upper()}={account.token}")
        sys.stdout.flush()
        print("Puter emulator ready; Ctrl-C to stop.", file=sys.stderr, flush=True)

    fast = args.fast and _installed("httptools") and _installed("uvloop")
    server = _build_server(
        state,
        args.host,
        args.port,
        on_ready=announce,
        capture_signals=True,
        log_level=args.log_level,
        quiet_logging_config=False,
        http="httptools" if fast else "h11",
    )
    if args.fast and not fast:
        print("puter-mcp emulator: --fast needs httptools and uvloop; serving with h11", file=sys.stderr)
    try:
        anyio.run(server.serve_reporting, backend_options={"use_uvloop": fast})
    except KeyboardInterrupt:
        return 0
    if server.failure is not None:
        print(f"puter-mcp emulator: could not start on {args.host}:{args.port}", file=sys.stderr)
        return 1
    return 0
