"""Start a client's `puter` entry the way the client would, and ask it for its tools (for `doctor`).

Reading a config proves only that it parses; a client shows "server failed" when the command
is missing, uvx cannot find the package, or the server crashes at start. So doctor runs each
entry: stdio entries are started with a bare environment (GUI clients do not inherit the
shell's), sent `initialize` and `tools/list`, and stopped; HTTP entries are connected to with
their headers. Every exchange is bounded by a timeout, and the failure is told as the client
would meet it: command not found, the exit code with the last lines of stderr, or no answer.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from puter_mcp import __version__
from puter_mcp.install.clients import ClientSpec

BARE_PATH = "/usr/bin:/bin"
"""The PATH a GUI client (started by the desktop, not a shell) typically gives its servers."""

PROBE_TIMEOUT = 20.0
_STDERR_LINES = 8
_PROTOCOL_VERSION = "2025-06-18"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    tools: tuple[str, ...] = ()


def client_environment(home: str, entry_env: Mapping[str, str], *, path: str = BARE_PATH) -> dict[str, str]:
    """What a client gives the server: HOME, a bare PATH, and the entry's own `env`."""
    return {"HOME": home, "PATH": path, **entry_env}


def _request(request_id: int, method: str, params: dict[str, Any]) -> bytes:
    return (
        json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}) + "\n"
    ).encode()


async def _answer(reader: BufferedByteReceiveStream, request_id: int) -> dict[str, Any]:
    """The response to `request_id`; log lines and notifications on stdout are skipped."""
    while True:
        line = await reader.receive_until(b"\n", 4 * 1024 * 1024)
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("id") == request_id:
            return message


def _tail(lines: deque[str]) -> str:
    shown = [line for line in lines if line.strip()]
    return ("; stderr: " + " | ".join(shown)) if shown else "; stderr was empty"


async def _exchange(process: Process) -> tuple[str, ...]:
    assert process.stdin is not None and process.stdout is not None
    reader = BufferedByteReceiveStream(process.stdout)
    init = {
        "protocolVersion": _PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "puter-mcp-doctor", "version": __version__},
    }
    await process.stdin.send(_request(1, "initialize", init))
    answer = await _answer(reader, 1)
    if "error" in answer:
        raise _ServerError(f"initialize was refused: {answer['error']}")
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    await process.stdin.send((json.dumps(note) + "\n").encode())
    await process.stdin.send(_request(2, "tools/list", {}))
    answer = await _answer(reader, 2)
    if "error" in answer:
        raise _ServerError(f"tools/list was refused: {answer['error']}")
    tools = answer.get("result", {}).get("tools", [])
    return tuple(str(tool.get("name")) for tool in tools if isinstance(tool, dict))


class _ServerError(Exception):
    pass


async def _collect(stream: Any, into: deque[str], drained: anyio.Event) -> None:
    try:
        await _read_lines(stream, into)
    finally:
        drained.set()


async def _read_lines(stream: Any, into: deque[str]) -> None:
    reader = BufferedByteReceiveStream(stream)
    try:
        while True:
            into.append((await reader.receive_until(b"\n", 1024 * 1024)).decode("utf-8", "replace").rstrip())
    except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError, anyio.BrokenResourceError):
        rest = reader.buffer.decode("utf-8", "replace")
        if rest.strip():
            into.append(rest)
    except anyio.DelimiterNotFound:
        return


def resolve_command(command: str, env: Mapping[str, str], cwd: Path) -> str | None:
    """The program the client would run: an absolute path as is, a bare name on the env's PATH."""
    if os.path.isabs(command):
        return command if os.path.isfile(command) else None
    if os.sep in command or "/" in command:
        candidate = cwd / command
        return str(candidate) if candidate.is_file() else None
    return shutil.which(command, path=env.get("PATH", BARE_PATH))


async def probe_stdio(
    command: str, args: list[str], env: Mapping[str, str], *, cwd: Path, seconds: float = PROBE_TIMEOUT
) -> ProbeResult:
    program = resolve_command(command, env, cwd)
    if program is None:
        where = "" if os.path.isabs(command) else f" on the client's PATH ({env.get('PATH', BARE_PATH)})"
        return ProbeResult(False, f"command not found: {command}{where}")
    stderr: deque[str] = deque(maxlen=_STDERR_LINES)
    drained = anyio.Event()
    try:
        process = await anyio.open_process([program, *args], env=dict(env), cwd=cwd)
    except OSError as exc:
        return ProbeResult(False, f"cannot start {command}: {exc.strerror or exc}")
    async with process:
        tools: tuple[str, ...] = ()
        failure: str | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(_collect, process.stderr, stderr, drained)
            try:
                with anyio.fail_after(seconds):
                    tools = await _exchange(process)
            except TimeoutError:
                failure = f"no answer to initialize/tools/list within {seconds:g} s"
            except (
                anyio.EndOfStream,
                anyio.IncompleteRead,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
            ):
                failure = "exited before answering"
            except _ServerError as exc:
                failure = str(exc)
            if failure == "exited before answering" and process.returncode is None:
                # Its output closed: it is ending. Let asyncio's child watcher collect its
                # status first: `terminate` polls the process (so as not to signal a reused
                # pid), which would collect it instead, and asyncio would then report 255.
                with anyio.move_on_after(2):
                    await process.wait()
            if process.returncode is None:
                process.terminate()
            with anyio.move_on_after(5):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            # Let the stderr reader take in the process's last words (a grandchild may keep
            # the pipe open, hence the bound).
            with anyio.move_on_after(2):
                await drained.wait()
            group.cancel_scope.cancel()
        code = process.returncode
        if failure is not None:
            if failure == "exited before answering":
                failure = f"exited with code {code} before answering"
            return ProbeResult(False, failure + _tail(stderr))
    return ProbeResult(True, f"started and listed {len(tools)} tools: {', '.join(tools)}", tools)


async def probe_http(url: str, headers: Mapping[str, str], *, seconds: float = PROBE_TIMEOUT) -> ProbeResult:
    try:
        with anyio.fail_after(seconds):
            async with (
                httpx2.AsyncClient(headers=dict(headers), timeout=seconds) as http,
                Client(streamable_http_client(url, http_client=http)) as client,
            ):
                tools = tuple(tool.name for tool in (await client.list_tools()).tools)
    except TimeoutError:
        return ProbeResult(False, f"no answer from {url} within {seconds:g} s")
    except Exception as exc:  # every transport or protocol failure is the finding itself
        return ProbeResult(False, f"cannot list tools at {url}: {_describe(exc)}")
    return ProbeResult(True, f"{url} listed {len(tools)} tools: {', '.join(tools)}", tools)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _describe(exc.exceptions[0])
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def probe_entry(
    spec: ClientSpec, entry: Any, *, home: Path, cwd: Path, shell_path: str, seconds: float = PROBE_TIMEOUT
) -> ProbeResult | None:
    """Start or connect to `entry` as `spec` would; None when the entry has no runnable shape
    (its static problems already say why).

    GUI clients get the bare PATH; Claude Code is started from a shell and passes that shell's
    PATH (`shell_path`) on to its servers.
    """
    if not isinstance(entry, dict):
        return None
    command = entry.get("command")
    if isinstance(command, str) and command.strip():
        args = entry.get("args", [])
        env = entry.get("env", {})
        if not isinstance(args, list) or not isinstance(env, dict):
            return None
        environment = client_environment(
            str(home), {str(k): str(v) for k, v in env.items()}, path=BARE_PATH if spec.gui else shell_path
        )
        return await probe_stdio(command, [str(arg) for arg in args], environment, cwd=cwd, seconds=seconds)
    if spec.http is not None and isinstance(entry.get(spec.http.url_key), str):
        headers: Any = entry
        for key in spec.http.headers_path:
            headers = headers.get(key, {}) if isinstance(headers, dict) else {}
        if not isinstance(headers, dict):
            headers = {}
        shown = {str(k): str(v) for k, v in headers.items()}
        return await probe_http(entry[spec.http.url_key], shown, seconds=seconds)
    return None


async def probe_entries(
    jobs: list[tuple[ClientSpec, Any]],
    *,
    home: Path,
    cwd: Path,
    shell_path: str,
    seconds: float = PROBE_TIMEOUT,
) -> list[ProbeResult | None]:
    """Probe every entry concurrently (a few at a time); results in the order of `jobs`."""
    results: list[ProbeResult | None] = [None] * len(jobs)
    limiter = anyio.CapacityLimiter(4)

    async def one(index: int) -> None:
        async with limiter:
            spec, entry = jobs[index]
            results[index] = await probe_entry(
                spec, entry, home=home, cwd=cwd, shell_path=shell_path, seconds=seconds
            )

    async with anyio.create_task_group() as group:
        for index in range(len(jobs)):
            group.start_soon(one, index)
    return results
