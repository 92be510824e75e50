"""S3Storage: the bucket is the durable home of every file; `blobs/` is a bounded cache.

Every file of an image (stored file, working copies `<id>.w<level>.<ext>`, kept original
`<id>.orig.<ext>`) is an object under `<prefix>ab/cd/<name>`, the layout of the blob
store. An upload is written to the blob store as ever, then `persist` PUTs each file of
the image; the service commits the row only after that, and deletes the objects again
if the commit fails or the request is cancelled. A crash in between leaves at worst
objects without a row, which the bucket sweep (services/sweep.BucketSweep) removes once
they are older than its grace period: never a row without its objects.

Readers (transforms, backfill, the album zip, the compat APIs, originals served by
proxy) ask `local(path)` first: a file missing locally is fetched from the bucket to a
temp name and renamed into place, once for all concurrent callers of the same key
(single flight). The local copies are kept in least-recently-used order within
`local_cache_mb`; only files known to be in the bucket are counted and evicted (those
PUT by `persist`, fetched by `local`, or found on disk at start-up, which an earlier
process either persisted or left as orphans), and none that a reader was handed in the
last HOLD_S seconds (so a transform or a response never loses its file half-way; the
cache may exceed its size by those for that long).

De-duplication: an upload whose bytes another image already has hard-links the donor's
local copies when they are present (as on the filesystem backend) and writes the bytes
again otherwise; either way `persist` PUTs the new image's own objects, so deleting one
image never touches another's objects.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from pichub.blobs import TMP_PREFIX, BlobStore, owner, working_beside
from pichub.config import S3Settings
from pichub.errors import NotFound, ServiceUnavailable
from pichub.singleflight import SingleFlight
from pichub.storage import Storage
from pichub.storage.objects import Listed, ObjectStore

log = logging.getLogger(__name__)
#: Seconds a local copy handed to a reader is kept even when the cache is over its size.
HOLD_S = 60.0


class LocalCache:
    """The sizes of the local copies known to be in the bucket, least recently used first.

    A file handed to a reader (`touch`) is held for HOLD_S: eviction passes over it, so a
    transform or a response that was just given a path finds the file there even when
    the cache is over its size (which it then is for that long, at most).
    """

    def __init__(self, limit_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit_bytes
        self.clock = clock
        self.files: OrderedDict[Path, int] = OrderedDict()
        self.held: dict[Path, float] = {}  # path → until when it may not be evicted
        self.total = 0

    def __contains__(self, path: object) -> bool:
        return path in self.files

    def add(self, path: Path, size: int) -> None:
        self.discard(path)
        self.files[path] = size
        self.total += size

    def touch(self, path: Path) -> None:
        """`path` was just handed to a reader: most recently used, and held."""
        self.files.move_to_end(path)
        self.held[path] = self.clock() + HOLD_S

    def discard(self, path: Path) -> None:
        self.total -= self.files.pop(path, 0)
        self.held.pop(path, None)

    def overflow(self) -> list[Path]:
        """Forget the least recently used files not held until the rest fits; return them
        (to be unlinked)."""
        victims = []
        now = self.clock()
        for path in list(self.files):
            if self.total <= self.limit:
                break
            if self.held.get(path, 0.0) > now:
                continue
            self.held.pop(path, None)
            victims.append(path)
            self.discard(path)
        return victims


class S3Storage(Storage):
    """The S3 backend (see the module docstring)."""

    remote = True

    def __init__(self, blobs: BlobStore, settings: S3Settings,
                 objects: ObjectStore | None = None) -> None:
        super().__init__(blobs)
        self.settings = settings
        self.objects = objects or ObjectStore(settings)
        self.redirects = settings.serve == "redirect"
        self.cache = LocalCache(settings.local_cache_mb * 2**20)
        self._fetches: SingleFlight[Path, bool] = SingleFlight()

    async def open(self) -> None:
        await self.objects.open()

    async def close(self) -> None:
        await self.objects.close()

    def key(self, path: Path) -> str:
        return self.objects.key(self.blobs.relative(path))

    def _image_prefix(self, image_id: str) -> str:
        """The keys of every file of `image_id` start with this (ids hold no dot)."""
        return self.key(self.blobs.path(image_id, "jpg")).rsplit("/", 1)[0] + f"/{image_id}."

    async def persist(self, image_id: str) -> None:
        """PUT every file of `image_id` in the blob store; ServiceUnavailable if any fails
        (the caller deletes what did go up)."""
        paths = await asyncio.to_thread(self.blobs.files_of, image_id)
        await asyncio.gather(*(self.objects.put_file(self.key(path), path) for path in paths))
        sizes = await asyncio.to_thread(_sizes, paths)
        for path, size in sizes.items():
            self.cache.add(path, size)
        await self._evict()

    async def local(self, path: Path) -> Path:
        """The file at `path`, fetched from the bucket when it is not here; NotFound when
        the bucket has no such object either."""
        if path in self.cache:
            self.cache.touch(path)
            return path
        if not await self._fetches.do(path, lambda: self._fetch(path)):
            raise NotFound("image")
        return path

    async def _fetch(self, path: Path) -> bool:
        size = await asyncio.to_thread(_size, path)
        if size is None:
            if not await self.objects.get_file(self.key(path), path):
                return False
            size = await asyncio.to_thread(_size, path)
            if size is None:
                return False
        self.cache.add(path, size)
        self.cache.touch(path)
        await self._evict()
        return True

    async def local_image(self, image_id: str, ext: str) -> Path:
        """The stored file and, when none is here, the working copies the bucket has."""
        path = await self.local(self.blobs.path(image_id, ext))
        if not await asyncio.to_thread(working_beside, path):
            for key in await self.objects.keys(self._image_prefix(image_id) + "w"):
                copy = path.with_name(key.rsplit("/", 1)[1])
                try:
                    await self.local(copy)
                except NotFound:
                    pass  # deleted meanwhile: the transform reads the stored file
        return path

    async def delete(self, image_id: str, ext: str) -> None:
        """The local copies, then the objects; when the bucket fails, what is left there is
        logged and left to the bucket sweep (it has no row any more, or never had one)."""
        for path in await asyncio.to_thread(self.blobs.files_of, image_id):
            self.cache.discard(path)
        await super().delete(image_id, ext)
        try:
            await self.objects.delete(await self.objects.keys(self._image_prefix(image_id)))
        except ServiceUnavailable:
            log.warning("objects of %s left for the bucket sweep", image_id)

    async def link(self, path: Path, *, mime: str | None = None,
                   disposition: str | None = None) -> str | None:
        if not self.redirects:
            return None
        return await self.objects.presigned_get(self.key(path), self.settings.presign_ttl_s,
                                                mime=mime, disposition=disposition)

    async def check(self) -> dict[str, Any]:
        try:
            await self.objects.check()
        except ServiceUnavailable as exc:
            return {"ok": False, "backend": "s3", "error": str(exc.details)}
        return {"ok": True, "backend": "s3"}

    async def load(self) -> None:
        """Count the files already in `blobs/` into the cache (oldest first), so they are
        evicted like the rest. Run once after start-up, in the background."""
        found = await asyncio.to_thread(_existing, self.blobs)
        for path, size in found:
            if path not in self.cache:
                self.cache.add(path, size)
                self.cache.files.move_to_end(path, last=False)
        await self._evict()

    async def stored(self) -> AsyncIterator[list[tuple[str, Listed]]]:
        """Every object under the prefix, a page at a time, with the image id it belongs
        to (the name before its first dot)."""
        async for page in self.objects.pages(self.objects.prefix):
            yield [(owner(Path(item.key)), item) for item in page]

    async def remove_objects(self, keys: list[str]) -> None:
        await self.objects.delete(keys)

    async def _evict(self) -> None:
        victims = self.cache.overflow()
        if victims:
            await asyncio.to_thread(_unlink_all, victims)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _sizes(paths: list[Path]) -> dict[Path, int]:
    return {path: size for path in paths if (size := _size(path)) is not None}


def _existing(blobs: BlobStore) -> list[tuple[Path, int]]:
    """The files under the store (no temp files), oldest access first."""
    found = []
    for path in blobs.walk():
        if path.name.startswith(TMP_PREFIX):
            continue
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        found.append((st.st_atime, path, st.st_size))
    found.sort()
    return [(path, size) for _, path, size in reversed(found)]


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
