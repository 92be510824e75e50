"""Storage: where the files of an image live for good, behind one interface.

The services write and read an image's files (stored image, working copies, kept original
upload) through `blobs.BlobStore`, the local file layer, in its layout `ab/cd/<id>.<ext>`,
and ask a `Storage` for the rest:

- `persist(id)` once the files are written locally, before the row commits: after it
  returns they are durable;
- `local(path)` before reading a file: it is on this machine when it returns;
- `delete(id, ext)` after the row is gone;
- `link(path, …)`: a URL that serves the file without PicHub, when the backend answers
  originals with a redirect; `check()` for /healthz.

Two backends:

- `Storage` (filesystem, the default): the `blobs/` directory is the durable home, as it
  always was; `persist` and `local` do nothing, so this mode costs nothing more.
- `storage.s3.S3Storage` (`storage.backend = "s3"`): the bucket is the durable home of
  every file, under the key `<prefix>ab/cd/<id>.<ext>` (the same layout); `blobs/` is a
  read-through cache of them bounded by `local_cache_mb`. See that module.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pichub.blobs import BlobStore
from pichub.config import StorageSettings


class Storage:
    """The filesystem backend: the local blob store is where files live for good."""

    #: True when files may be missing locally (and `local` may fetch them).
    remote = False
    #: True when originals are answered with a redirect to `link`.
    redirects = False

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    async def open(self) -> None:
        """Connect to what the backend needs (nothing here)."""

    async def close(self) -> None:
        """Let go of what `open` took."""

    async def persist(self, image_id: str) -> None:
        """Make the files of `image_id` written to the blob store durable (BlobStore
        writes them durably already)."""

    async def local(self, path: Path) -> Path:
        """The file of the blob store at `path`, present on this machine."""
        return path

    async def local_image(self, image_id: str, ext: str) -> Path:
        """The stored file of `image_id` with its working copies, present on this machine
        (what a transform reads)."""
        return self.blobs.path(image_id, ext)

    async def delete(self, image_id: str, ext: str) -> None:
        """Remove every file of `image_id` (stored file, working copies, kept original)."""
        await asyncio.to_thread(self.blobs.delete, image_id, ext)

    async def link(self, path: Path, *, mime: str | None = None,
                   disposition: str | None = None) -> str | None:
        """A URL serving the file at `path` directly (None: PicHub sends it itself)."""
        return None

    async def check(self) -> dict[str, Any]:
        """The backend's health for /healthz: `{"ok": bool, "backend": …, "error"?: …}`;
        never raises."""
        return {"ok": True, "backend": "filesystem"}


def as_storage(store: BlobStore | Storage) -> Storage:
    """`store` as a Storage (a bare BlobStore is the filesystem backend)."""
    return store if isinstance(store, Storage) else Storage(store)


def storage_for(settings: StorageSettings, root: Path) -> Storage:
    """The backend `settings.backend` names, over the blob store at `root` (not opened)."""
    blobs = BlobStore(root)
    if settings.backend == "s3":
        from pichub.storage.s3 import S3Storage  # noqa: PLC0415 - the S3 code only when chosen

        return S3Storage(blobs, settings.s3)
    return Storage(blobs)


@contextlib.asynccontextmanager
async def opened(settings: StorageSettings, root: Path) -> AsyncIterator[Storage]:
    """`storage_for(settings, root)`, open for the duration (the commands' way)."""
    storage = storage_for(settings, root)
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()
