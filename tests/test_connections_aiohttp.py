"""What pichub.web.connections relies on inside aiohttp, each checked on a real in-process server.

If an aiohttp upgrade changes how `web.Server` builds its per-connection
`RequestHandler`, which hooks a request goes through, or how a request body's
`StreamReader` applies flow control and errors, one of these fails.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from pichub.errors import RequestTimeout
from pichub.server import Runner
from pichub.web.connections import Limits

Serve = Callable[[web.Application, Limits], Awaitable[tuple[str, Runner]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start an app behind pichub's Runner on 127.0.0.1: its base URL and the runner."""
    runners: list[Runner] = []

    async def start(app: web.Application, limits: Limits) -> tuple[str, Runner]:
        runner = Runner(app, limits, keepalive_timeout=30)
        runners.append(runner)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site.port}", runner

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_each_request_goes_through_the_guarded_server_and_handler(serve: Serve) -> None:
    """`Server.__call__` is the protocol factory; `RequestHandler` calls the server's
    `request_handler` (GuardedServer._begin), which marks the connection busy."""
    async def who(request: web.Request) -> web.Response:
        protocol = request.protocol
        return web.Response(text=f"{type(protocol).__name__} {protocol.in_request}")

    app = web.Application()
    app.router.add_get("/", who)
    base, _ = await serve(app, Limits(10, 10, 100))
    async with aiohttp.ClientSession() as http, http.get(base + "/") as resp:
        assert await resp.text() == "GuardedHandler True"


async def test_a_body_held_back_by_flow_control_is_not_cut(serve: Serve) -> None:
    """A handler busy elsewhere stops reading; aiohttp then pauses the socket through
    `protocol.pause_reading()`, and the silence that follows is not the client's."""
    async def slow_reader(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)  # longer than the body timeout
        return web.Response(text=str(len(await request.read())))

    app = web.Application(client_max_size=16 * 2**20)
    app.router.add_post("/", slow_reader)
    base, _ = await serve(app, Limits(10, 0.3, 100))
    size = 8 * 2**20
    async with aiohttp.ClientSession() as http, \
            http.post(base + "/", data=io.BytesIO(b"x" * size)) as resp:
        assert resp.status == 200 and await resp.text() == str(size)


async def test_a_body_that_stops_fails_its_reads_and_closes_the_connection(serve: Serve) -> None:
    """`StreamReader.set_exception()` reaches the handler's read; after the answer the
    connection closes (`finish_response` runs once the handler returns)."""
    async def reader(request: web.Request) -> web.Response:
        try:
            await request.read()
        except RequestTimeout as exc:
            return web.Response(text=exc.code)
        return web.Response(text="complete")

    app = web.Application()
    app.router.add_post("/", reader)
    base, _ = await serve(app, Limits(10, 0.3, 100))
    port = int(base.rsplit(":", 1)[1])
    stream_reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789")
    answer = await asyncio.wait_for(stream_reader.read(), timeout=20)  # until closed
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert b"Connection: close" in answer and answer.endswith(b"REQUEST_TIMEOUT")


async def test_the_cap_refuses_at_the_protocol_factory(serve: Serve) -> None:
    """Over the cap, `GuardedServer.__call__` hands asyncio a `Refusal` instead."""
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    base, _ = await serve(app, Limits(10, 10, 1))
    port = int(base.rsplit(":", 1)[1])
    _, first = await asyncio.open_connection("127.0.0.1", port)  # holds the only slot
    second_reader, second = await asyncio.open_connection("127.0.0.1", port)
    answer = await asyncio.wait_for(second_reader.read(), timeout=20)
    first.close()
    second.close()
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable")


async def test_a_drain_closes_idle_connections_and_starts_nothing_new(serve: Serve) -> None:
    """The request in flight finishes with `Connection: close`; the one pipelined behind
    it is never started; an idle keep-alive connection closes at once."""
    slow, release = asyncio.Event(), asyncio.Event()
    started: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        started.append(request.path)
        if request.path == "/slow":
            slow.set()
            await release.wait()
        return web.Response(text=request.path)

    app = web.Application()
    app.router.add_get("/{name}", handler)
    base, runner = await serve(app, Limits(10, 10, 100))
    port = int(base.rsplit(":", 1)[1])
    busy_reader, busy = await asyncio.open_connection("127.0.0.1", port)
    busy.write(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    idle_reader, idle = await asyncio.open_connection("127.0.0.1", port)
    idle.write(b"GET /idle HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (await idle_reader.readuntil(b"/idle")).startswith(b"HTTP/1.1 200 OK")
    await asyncio.wait_for(slow.wait(), timeout=20)

    assert runner.guarded.begin_drain() == 1
    assert await asyncio.wait_for(idle_reader.read(), timeout=20) == b""
    release.set()
    answer = await asyncio.wait_for(busy_reader.read(), timeout=20)
    busy.close()
    idle.close()
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in answer
    assert answer.endswith(b"/slow") and answer.count(b"HTTP/1.1") == 1
    assert sorted(started) == ["/idle", "/slow"]
