"""A zip archive written to an HTTP response as it is made, in bounded memory.

`zipfile` writes the archive in a worker thread into `_ChunkWriter`, which hands chunks of
CHUNK bytes to the event loop through a queue of DEPTH chunks; the view writes each to the
response. So at most (DEPTH + 2) × CHUNK bytes are held whatever the album's size, a slow
client slows the thread down (the queue is full), and files are read in the thread, never
on the loop. Members are stored (`ZIP_STORED`): images are compressed already. The output
stream cannot seek, so `zipfile` writes each member's CRC and sizes in a data descriptor
after its bytes, and ZIP64 records when a member or the archive needs them.

When the client goes away, the view stops the thread: its next hand-over raises `_Stopped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import zipfile
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from aiohttp import web

from pichub.errors import NotFound
from pichub.services.albumpages import ZipEntry
from pichub.storage import Storage

CHUNK = 256 * 1024
DEPTH = 4


class _Stopped(Exception):
    """The response is gone: the thread must stop writing."""


class _ChunkWriter:
    """A write-only, unseekable file for `zipfile` that queues CHUNK-sized pieces."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None],
                 stop: threading.Event) -> None:
        self._loop = loop
        self._queue = queue
        self._stop = stop
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            self._hand_over(bytes(self._buffer))
            self._buffer.clear()
        return len(data)

    def flush(self) -> None:
        """Nothing: pieces go out when CHUNK bytes are in (`close` sends the rest)."""

    def close(self) -> None:
        if self._buffer:
            self._hand_over(bytes(self._buffer))
            self._buffer.clear()

    def _hand_over(self, piece: bytes | None) -> None:
        if self._stop.is_set():
            raise _Stopped
        asyncio.run_coroutine_threadsafe(self._queue.put(piece), self._loop).result()
        if self._stop.is_set():
            raise _Stopped

    def finish(self) -> None:
        self.close()
        self._hand_over(None)


def _date_time(stamp: str) -> tuple[int, int, int, int, int, int]:
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    return (max(moment.year, 1980), moment.month, moment.day, moment.hour, moment.minute,
            moment.second)


def write_zip(entries: Iterable[ZipEntry], out: _ChunkWriter,
              fetch: Callable[[Path], object] | None = None) -> None:
    """The archive of `entries` (in the thread); a file deleted meanwhile is left out. The
    end (None) is always handed over, so the view never waits for a thread that failed."""
    try:
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED,
                             allowZip64=True) as archive:
            for entry in entries:
                try:
                    if fetch is not None:
                        fetch(entry.path)  # the bucket's file, brought here first
                except NotFound:
                    continue
                _add(archive, entry)
    finally:
        with contextlib.suppress(_Stopped):
            out.finish()


def _add(archive: zipfile.ZipFile, entry: ZipEntry) -> None:
    try:
        source = open(entry.path, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return
    with source:
        info = zipfile.ZipInfo(entry.name, _date_time(entry.modified))
        info.compress_type = zipfile.ZIP_STORED
        info.file_size = entry.size  # lets zipfile decide on ZIP64 up front
        with archive.open(info, "w") as member:
            shutil.copyfileobj(source, member, CHUNK)


async def stream_zip(request: web.Request, response: web.StreamResponse,
                     entries: list[ZipEntry], storage: Storage | None = None
                     ) -> web.StreamResponse:
    """Prepare `response` and write the zip of `entries` to it, chunk by chunk; with a
    remote `storage`, each file is made local (fetched) just before it is added."""
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(DEPTH)
    stop = threading.Event()
    writer = _ChunkWriter(loop, queue, stop)
    def fetch(path: Path) -> object:  # in the thread: wait for the loop to fetch the file
        if storage is None or not storage.remote:
            return None
        return asyncio.run_coroutine_threadsafe(storage.local(path), loop).result()

    worker = asyncio.ensure_future(asyncio.to_thread(write_zip, entries, writer, fetch))
    try:
        while (piece := await queue.get()) is not None:
            await response.write(piece)
        await worker  # raises what the thread raised
    finally:
        if not worker.done():
            stop.set()
            while not worker.done():  # let a hand-over under way complete, then stop
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), 0.05)
            with contextlib.suppress(_Stopped):
                await worker
    await response.write_eof()
    return response
