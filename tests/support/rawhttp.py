"""HTTP/1.1 over a raw socket, for requests no well-behaved client would send."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # names lower-cased; the last value of a repeated header
    body: bytes


WAIT_S = 30.0


async def read_response(reader: asyncio.StreamReader) -> RawResponse:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), WAIT_S)
    return RawResponse(status, headers, body)


async def exchange(host: str, port: int, data: bytes) -> RawResponse:
    """Send `data` (a whole request, as is) on a new connection and read one response."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        try:
            await writer.drain()
        except ConnectionError:
            pass  # the server may answer and close before reading everything
        return await read_response(reader)
    finally:
        writer.close()


def multipart_request(path: str, host: str, token: str, body: bytes,
                      boundary: str | None = "b0undary", extra: str = "") -> bytes:
    """A POST of `body` as multipart/form-data (no boundary parameter when `boundary` is None)."""
    content_type = "multipart/form-data" + (f"; boundary={boundary}" if boundary else "")
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{extra}"
            "\r\n").encode() + body
