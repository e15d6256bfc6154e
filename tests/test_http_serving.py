"""The HTTP rules every face shares (`http_serving`), on an app that is not MCP: a body that
arrives too slowly, the Host/Origin rules, the binding check, the served URL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from puter_mcp.http_serving import (
    MIN_PUBLIC_TOKEN_LENGTH,
    HostOriginCheck,
    HostRules,
    ServingError,
    check_binding,
    serve_asgi,
    served_url,
)

pytestmark = pytest.mark.anyio


class EchoApp:
    """A Starlette app that answers a POST with the length of its body, and says how each
    request ended for it (read, or the client gone)."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.finished = anyio.Event()
        self.asgi = Starlette(routes=[Route("/echo", self._echo, methods=["POST"])])

    async def _echo(self, request: Request) -> JSONResponse:
        try:
            body = await request.body()
        except ClientDisconnect:
            self.outcomes.append("disconnected")
            raise
        else:
            self.outcomes.append("read")
            return JSONResponse({"length": len(body)})
        finally:
            self.finished.set()


@asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[int]:
    """`serve_asgi` on a free loopback port in this process; yields the port."""
    ports: list[int] = []
    ready = anyio.Event()

    def on_ready(port: int) -> None:
        ports.append(port)
        ready.set()

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: serve_asgi(app, host="127.0.0.1", port=0, on_ready=on_ready, **options))
        with anyio.fail_after(10):
            await ready.wait()
        yield ports[0]
        group.cancel_scope.cancel()


async def connect(port: int) -> anyio.abc.SocketStream:
    return await anyio.connect_tcp("127.0.0.1", port)


async def read_until_closed(stream: anyio.abc.ByteStream) -> bytes:
    seen = b""
    for _ in range(1000):  # a response is a few chunks; the bound only stops a runaway peer
        try:
            seen += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
            break
    return seen


def head_of(length: int) -> bytes:
    return (
        f"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


# --- the body deadline ----------------------------------------------------------------------------


async def test_a_body_that_arrives_too_slowly_gets_a_408_and_frees_the_app() -> None:
    app = EchoApp()
    async with serving(app.asgi, body_timeout=0.3) as port, await connect(port) as slow:
        await slow.send(head_of(100) + b'{"part": ')  # and the rest never comes
        with anyio.fail_after(10):  # far above the deadline: only a hang fails here
            answer = await read_until_closed(slow)
            await app.finished.wait()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    error = json.loads(body)
    assert error["error"] == "request_timeout"
    assert "did not arrive within 0.3 s" in error["error_description"]
    assert app.outcomes == ["disconnected"]  # the app's read ended, it did not hang


async def test_a_body_trickled_in_parts_is_held_to_one_deadline() -> None:
    app = EchoApp()
    async with serving(app.asgi, body_timeout=0.3) as port, await connect(port) as slow:
        await slow.send(head_of(100))

        async def trickle() -> None:
            # A byte every 0.1 s: each part in time, the whole body never.
            for _ in range(99):
                await anyio.sleep(0.1)
                try:
                    await slow.send(b" ")
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    return

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(trickle)
                answer = await read_until_closed(slow)
                group.cancel_scope.cancel()
            await app.finished.wait()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert app.outcomes == ["disconnected"]


async def test_a_body_in_time_is_read_and_answered() -> None:
    app = EchoApp()
    async with serving(app.asgi) as port, httpx2.AsyncClient() as http:
        response = await http.post(f"http://127.0.0.1:{port}/echo", content=b"x" * 5000)
    assert response.status_code == 200
    assert response.json() == {"length": 5000}
    assert app.outcomes == ["read"]


async def test_an_app_that_answered_before_the_body_is_not_answered_twice() -> None:
    # A response sent before the body is read (a refusal, say) ends the exchange: the deadline
    # then only closes the connection, it never answers a second time.
    refuse = Starlette(routes=[Route("/echo", lambda _request: Response(status_code=401), methods=["POST"])])
    async with serving(refuse, body_timeout=0.3) as port, await connect(port) as slow:
        await slow.send(head_of(100))
        with anyio.fail_after(10):
            answer = await read_until_closed(slow)
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"408" not in answer


# --- kept-alive connections ------------------------------------------------------------------------


async def answer_on(connection: anyio.abc.SocketStream, request: bytes) -> bytes:
    """Send one whole request on a kept-alive connection and read its (small) answer."""
    await connection.send(request)
    with anyio.fail_after(10):
        return await connection.receive()


async def test_an_idle_kept_alive_connection_outlives_the_header_deadline() -> None:
    # Idle between two requests is not a slow head: only the keep-alive limit ends it, so a
    # client's pool (5-15 s for the usual ones) always lets go of it first.
    request = head_of(2) + b"{}"
    async with serving(EchoApp().asgi, header_timeout=0.2) as port, await connect(port) as conn:
        assert (await answer_on(conn, request)).startswith(b"HTTP/1.1 200 ")
        await anyio.sleep(0.5)
        assert (await answer_on(conn, request)).startswith(b"HTTP/1.1 200 ")


async def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_limit() -> None:
    async with serving(EchoApp().asgi, keep_alive=0.2) as port, await connect(port) as conn:
        assert (await answer_on(conn, head_of(2) + b"{}")).startswith(b"HTTP/1.1 200 ")
        with anyio.fail_after(10):  # far above the limit: only a hang fails here
            assert await read_until_closed(conn) == b""


async def test_a_slow_head_on_a_kept_alive_connection_is_held_to_the_header_deadline() -> None:
    async with (
        serving(EchoApp().asgi, header_timeout=0.2, keep_alive=60) as port,
        await connect(port) as conn,
    ):
        assert (await answer_on(conn, head_of(2) + b"{}")).startswith(b"HTTP/1.1 200 ")
        await conn.send(b"POST /echo HTTP/1.1\r\n")  # and the rest of the head never comes
        with anyio.fail_after(10):
            assert await read_until_closed(conn) == b""


# --- Host and Origin --------------------------------------------------------------------------------


def test_loopback_answers_the_loopback_names_with_any_port() -> None:
    rules = HostRules.for_binding("127.0.0.1")
    assert rules.allows_host("127.0.0.1:8000")
    assert rules.allows_host("localhost:1234")
    assert rules.allows_host("[::1]:8000")
    assert not rules.allows_host("evil.example:8000")
    assert not rules.allows_host(None)
    assert rules.allows_origin(None)  # not from a browser page
    assert rules.allows_origin("http://localhost:5173")
    assert not rules.allows_origin("http://evil.example")


def test_off_loopback_only_the_listed_names_are_answered() -> None:
    bound = HostRules.for_binding("192.0.2.7")
    assert bound.allows_host("192.0.2.7:8000")
    assert bound.allows_host("192.0.2.7")
    assert not bound.allows_host("localhost:8000")
    assert bound.allows_origin("https://192.0.2.7:8000")

    listed = HostRules.for_binding("0.0.0.0", ["mcp.example.org", "box:8443"])
    assert listed.allows_host("mcp.example.org:8000")
    assert listed.allows_host("box:8443")
    assert not listed.allows_host("box:9000")  # a name given with a port means that port
    assert not listed.allows_host("0.0.0.0:8000")
    assert not listed.allows_host("mcp.example.org.evil.example:80")


async def test_the_middleware_refuses_a_foreign_host_and_origin() -> None:
    app = EchoApp()
    guarded = HostOriginCheck(app.asgi, HostRules.for_binding("127.0.0.1"))
    transport = httpx2.ASGITransport(app=guarded)
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        fine = await http.post("/echo", content=b"{}")
        foreign_host = await http.post("/echo", content=b"{}", headers={"Host": "evil.example:8000"})
        foreign_page = await http.post("/echo", content=b"{}", headers={"Origin": "https://evil.example"})
    assert fine.status_code == 200
    assert foreign_host.status_code == 421
    assert "allowed_hosts" in foreign_host.json()["error_description"]
    assert foreign_page.status_code == 403
    assert app.outcomes == ["read"]  # the refused requests never reached the app


# --- binding and address -----------------------------------------------------------------------------


def test_check_binding_refuses_an_open_address_without_a_strong_token() -> None:
    check_binding("127.0.0.1", None)
    check_binding("0.0.0.0", "x" * MIN_PUBLIC_TOKEN_LENGTH)
    with pytest.raises(ServingError, match="without a bearer token"):
        check_binding("0.0.0.0", None)
    with pytest.raises(ServingError, match=f"at least {MIN_PUBLIC_TOKEN_LENGTH} characters"):
        check_binding("0.0.0.0", "short")


def test_served_url_brackets_an_ipv6_host() -> None:
    assert served_url("127.0.0.1", 8000, "/mcp") == "http://127.0.0.1:8000/mcp"
    assert served_url("::1", 8000, "/sse") == "http://[::1]:8000/sse"
