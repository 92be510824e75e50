"""An HTTP origin for upload-by-URL tests: a few lines of HTTP/1.1 on raw asyncio streams.

Raw, so that a test controls every byte the "remote site" sends (a `Content-Length`
of 2 GB, a body that never ends, a stall after the headers, a trickle) and sees
every TCP connection made to it, also those that never got as far as a request.
One request per connection; the server closes it after answering.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Responder = Callable[[asyncio.StreamWriter], Awaitable[None]]
BLOCK = 64 * 1024


def head(status: int = 200, headers: dict[str, str] | None = None) -> bytes:
    reason = {200: "OK", 301: "Moved Permanently", 302: "Found", 303: "See Other",
              307: "Temporary Redirect", 308: "Permanent Redirect",
              404: "Not Found"}.get(status, "Whatever")
    lines = [f"HTTP/1.1 {status} {reason}", "Connection: close",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def body(data: bytes, content_type: str = "application/octet-stream",
         **headers: str) -> Responder:
    """200 with `data` and its length."""
    async def respond(writer: asyncio.StreamWriter) -> None:
        extra = {k.replace("_", "-"): v for k, v in headers.items()}
        writer.write(head(200, {"Content-Type": content_type,
                                "Content-Length": str(len(data)), **extra}) + data)
        await writer.drain()
    return respond


def redirect(location: str, status: int = 302) -> Responder:
    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(head(status, {"Location": location, "Content-Length": "0"}))
        await writer.drain()
    return respond


def status(code: int) -> Responder:
    """`code` with a short text body."""
    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(head(code, {"Content-Length": "12"}) + b"nothing here")
        await writer.drain()
    return respond


def stall(after_headers: bool = True) -> Responder:
    """Headers (or nothing at all), then silence."""
    async def respond(writer: asyncio.StreamWriter) -> None:
        if after_headers:
            writer.write(head(200, {"Content-Length": "100000"}))
            await writer.drain()
        await asyncio.sleep(3600)
    return respond


def trickle(data: bytes, every_s: float) -> Responder:
    """`data`, one byte every `every_s` seconds: never idle long, never done."""
    async def respond(writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, {"Content-Length": str(len(data))}))
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every_s)
    return respond


def endless(start: bytes, declared: int | None = None) -> Responder:
    """`start`, then zeros for as long as the client reads: with a `Content-Length` of
    `declared`, else chunked (no length)."""
    async def respond(writer: asyncio.StreamWriter) -> None:
        if declared is not None:
            writer.write(head(200, {"Content-Length": str(declared)}) + start)
            while True:
                writer.write(bytes(BLOCK))
                await writer.drain()
        writer.write(head(200, {"Transfer-Encoding": "chunked"}))
        writer.write(b"%x\r\n%s\r\n" % (len(start), start))
        while True:
            writer.write(b"%x\r\n%s\r\n" % (BLOCK, bytes(BLOCK)))
            await writer.drain()
    return respond


@dataclass
class Origin:
    """`routes` maps a path to its responder; unknown paths are 404."""

    host: str = "127.0.0.1"
    routes: dict[str, Responder] = field(default_factory=dict)
    connections: int = 0
    requests: list[str] = field(default_factory=list)  # request targets, in order
    sent: int = 0  # bytes of responses written (drained: at most 64 KB not yet in the kernel)
    closed_early: int = 0  # responses the client cut off
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    async def start(self) -> Origin:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        counting = _Counting(writer, self)
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            target = request.split(b" ", 2)[1].decode("latin-1")
            self.requests.append(target)
            respond = self.routes.get(target.split("?", 1)[0], status(404))
            await respond(counting)  # type: ignore[arg-type]
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed_early += 1
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()


class _Counting:
    """The writer a responder gets: counts the bytes it hands to the kernel."""

    def __init__(self, writer: asyncio.StreamWriter, origin: Origin) -> None:
        self._writer = writer
        self._origin = origin

    def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise ConnectionResetError("client went away")
        self._writer.write(data)
        self._origin.sent += len(data)

    async def drain(self) -> None:
        await self._writer.drain()
