"""Responses that send image files: originals and cached variants, with sendfile.

Ids never change content, so the ETag and Last-Modified of these answers
describe the content (not the file's mtime, which the variant cache touches
to track recency), and the bytes go out with sendfile(2).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter

CACHE_FOREVER = "public, max-age=31536000, immutable"


class ImmutableFileResponse(web.FileResponse):
    """A FileResponse (sendfile) whose ETag and Last-Modified describe the content.

    aiohttp derives both from the file's mtime, which the variant cache touches
    to track recency; a content ETag stays the same for the life of the id.
    Used for originals and for the requests only FileResponse answers in full
    (Range, If-Range, If-Match, If-Unmodified-Since).
    """

    def __init__(self, path: Path, *, etag: str, modified: datetime,
                 headers: dict[str, str]) -> None:
        super().__init__(path, headers=headers)
        self._content_etag = etag
        self._modified = modified

    @property
    def etag(self) -> Any:
        return super().etag

    @etag.setter
    def etag(self, value: Any) -> None:
        web.StreamResponse.etag.fset(self, self._content_etag)  # type: ignore[attr-defined]

    @property
    def last_modified(self) -> Any:
        return super().last_modified

    @last_modified.setter
    def last_modified(self, value: Any) -> None:
        web.StreamResponse.last_modified.fset(self, self._modified)  # type: ignore[attr-defined]


class VariantResponse(web.StreamResponse):
    """A cached variant, already open, sent whole with sendfile and then closed.

    aiohttp's FileResponse stats and opens the file in a thread and closes it
    in another: two thread round trips that cost more than the rest of a cache
    hit. A variant is an immutable file the cache indexes, opened on the loop
    (its inode looked up in a thread first unless recently used, see
    CacheHit.recent), so only the sending is left (`send_file`). It holds a
    bare descriptor (`open_variant`): a Python file object cost more to make
    than the opening itself.
    """

    def __init__(self, fd: int, size: int, headers: dict[str, str]) -> None:
        super().__init__(headers=headers)
        self._fd = fd
        self.content_length = size

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        try:
            writer = await super().prepare(request)
            size = self.content_length or 0
            if request.method != hdrs.METH_HEAD and size:
                transport = request.transport
                if transport is None or transport.is_closing():
                    raise ConnectionResetError("Connection lost")
                await send_file(transport, self._fd, size)
            await super().write_eof()
            return writer
        finally:
            os.close(self._fd)


async def send_file(transport: asyncio.Transport, fd: int, size: int) -> None:
    """Send the first `size` bytes of the file `fd` on `transport`, after what it already sent.

    `loop.sendfile` cost about a third of a whole cache hit: it stops and
    restarts reading the socket (two epoll changes) and, even when one
    sendfile(2) sent everything, waits a loop iteration for writability (two
    more) before it returns. A variant (tens of KB) usually fits in the
    socket's send buffer, so one direct sendfile(2), when nothing is queued
    ahead of it on a plain TCP transport, ends most hits; whatever it could
    not send goes through `loop.sendfile`, which waits for the socket.
    """
    sent = 0
    sock = transport.get_extra_info("socket")
    if (sock is not None and transport.get_extra_info("ssl_object") is None
            and transport.get_write_buffer_size() == 0):
        try:
            sent = os.sendfile(sock.fileno(), fd, 0, size)
        except (BlockingIOError, InterruptedError):
            sent = 0
    if sent < size:
        with open(fd, "rb", closefd=False) as file:  # noqa: ASYNC230 - no I/O: a wrapper
            await asyncio.get_running_loop().sendfile(transport, file, sent, size - sent)


def open_variant(path: Path) -> tuple[int, int]:
    """The variant file's descriptor and size (raises FileNotFoundError once purged)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fd, os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        raise


@functools.lru_cache(maxsize=1024)
def http_date(moment: datetime) -> str:
    """Last-Modified for a (UTC, whole-second) creation time; the same few on every hit."""
    return format_datetime(moment, usegmt=True)


def variant_headers(mime: str, etag: str, modified: datetime, vary: bool,
                    cache: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers of a variant sent whole (the view's and the cache-hit lane's); `cache`:
    the caching headers, when not those of a shared image (CACHE_FOREVER)."""
    headers: dict[str, str] = {
        **(cache or {hdrs.CACHE_CONTROL: CACHE_FOREVER}), hdrs.CONTENT_TYPE: mime,
        hdrs.ETAG: etag, hdrs.LAST_MODIFIED: http_date(modified),
        hdrs.ACCEPT_RANGES: "bytes",  # as FileResponse, which answers Range requests
    }
    if vary:
        headers[hdrs.VARY] = "Accept"
    return headers
