"""The upload service: validate options, then process and store each received file.

The web layer (`views.multipart`) has already streamed each file to a temp file;
here each one is checked and re-encoded in the image pool, written durably,
and committed with its `image.uploaded` event. Each file stands or falls alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import shutil
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pichub.blobs import BlobStore, sha256_file
from pichub.config import Settings
from pichub.db import albums as albums_db
from pichub.db import events as events_db
from pichub.db import images as images_db
from pichub.db import users as users_db
from pichub.db.database import Database, Row
from pichub.errors import (
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    PichubError,
    is_disk_full,
)
from pichub.imaging.formats import UPLOAD_FORMATS, canonical, ext_of
from pichub.imaging.ops import UploadResult, process_upload
from pichub.serialize import image_obj
from pichub.validate import Problems, form_bool, form_int, parse_int

MB = 2**20


@dataclass
class UploadOptions:
    album_id: int | None
    quality: int
    target: str | None  # None keeps the source format
    remove_exif: bool
    keep_location: bool
    auto_rename: bool
    is_public: bool
    description: str


@dataclass
class Received:
    """One file part: on disk at `path`, or refused while reading (`error`)."""

    index: int
    original_name: str
    path: Path | None = None
    error: PichubError | None = None


def parse_options(fields: dict[str, str], settings: Settings) -> UploadOptions:
    """The form's options, every bad one reported in a single 422."""
    problems = Problems()
    album_raw = fields.get("album_id", "").strip()
    album_id = None
    if album_raw:
        album_id = parse_int(album_raw)
        if album_id is None:
            problems.add("album_id", "must be an integer")
    quality = form_int(problems, fields, "quality", settings.images.default_quality, 1, 100)
    fmt_raw = fields.get("format", "auto").strip().lower() or "auto"
    fmt = None if fmt_raw == "auto" else canonical(fmt_raw)
    if fmt_raw != "auto" and fmt not in UPLOAD_FORMATS:
        problems.add("format", "must be auto, jpeg, jpg, png or webp")
    remove_exif = form_bool(problems, fields, "remove_exif", False)
    keep_location = form_bool(problems, fields, "keep_location", False)
    to_webp = form_bool(problems, fields, "convertToWebP", True)
    auto_rename = form_bool(problems, fields, "auto_rename", False)
    is_public = form_bool(problems, fields, "is_public", True)
    description = fields.get("description", "")
    if len(description) > 1000:
        problems.add("description", "must be at most 1000 characters")
    problems.raise_if_any()
    target = fmt or ("webp" if to_webp else None)
    assert quality is not None
    return UploadOptions(album_id, quality, target, remove_exif, keep_location, auto_rename,
                         is_public, description)


def too_large(limit_mb: int, size: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        "File size exceeds maximum limit",
        f"Maximum file size is {limit_mb}MB. Your file is {round(size / MB)}MB.",
    )


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(original: str, fmt: str, auto_rename: bool) -> str:
    """A name safe in URLs and file systems, with the stored format's extension."""
    ext = ext_of(fmt)
    if auto_rename:
        return f"{secrets.token_hex(8)}.{ext}"
    base = original.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base else base
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE.sub("_", ascii_stem).strip("._")[:100] or "image"
    return f"{cleaned}.{ext}"


Blocking = Callable[..., Awaitable[Any]]


@dataclass
class Stored:
    images: list[dict[str, Any]]
    errors: list[tuple[int, str, PichubError]]


class Uploader:
    """Stores received files for one user; each file stands or falls alone."""

    def __init__(self, db: Database, blobs: BlobStore, settings: Settings, run: Blocking,
                 on_change: Callable[[], None]) -> None:
        self.db = db
        self.on_change = on_change
        self.blobs = blobs
        self.settings = settings
        self._run = run  # runs blocking work (Pillow) in the thread pool

    def check_free_space(self, extra: int = 0) -> None:
        free = shutil.disk_usage(self.blobs.root).free
        if free - extra < self.settings.storage.min_free_mb * MB:
            raise InsufficientStorage.disk_full()

    async def check_album(self, user_id: int, album_id: int | None) -> None:
        if album_id is not None and await albums_db.get(self.db, user_id, album_id) is None:
            raise NotFound("album")

    async def store_all(self, user_id: int, options: UploadOptions, files: Sequence[Received],
                        base_url: str) -> Stored:
        stored = Stored([], [])
        for item in files:
            try:
                if item.error is not None:
                    raise item.error
                row = await self.store_one(user_id, options, item, base_url)
                stored.images.append(image_obj(row, base_url))
            except PichubError as exc:
                stored.errors.append((item.index, item.original_name, exc))
        return stored

    async def store_one(self, user_id: int, options: UploadOptions, item: Received,
                        base_url: str) -> Row:
        """Process, write the blob durably, then commit row and event in one transaction."""
        storage = self.settings.storage
        assert item.path is not None
        result: UploadResult = await self._run(
            process_upload, item.path, target=options.target, quality=options.quality,
            remove_exif=options.remove_exif, keep_location=options.keep_location,
            max_pixels=storage.max_pixels, max_frames=storage.max_frames,
            max_decode_bytes=storage.max_decode_mb * MB,
        )
        image_id = secrets.token_urlsafe(9)
        ext = ext_of(result.format)
        try:
            size, digest = await asyncio.to_thread(self._put_blob, image_id, ext, item.path,
                                                   result.data)
        except OSError as exc:
            if is_disk_full(exc):
                raise InsufficientStorage.disk_full() from None
            raise
        record = images_db.NewImage(
            id=image_id, user_id=user_id, album_id=options.album_id,
            filename=safe_filename(item.original_name, result.format, options.auto_rename),
            original_name=item.original_name[:255], description=options.description,
            format=result.format, width=result.width, height=result.height,
            frames=result.frames, size=size, sha256=digest, is_public=options.is_public,
        )
        try:
            return await self._commit(record, base_url)
        except BaseException:
            await asyncio.to_thread(self.blobs.delete, image_id, ext)
            raise

    def _put_blob(self, image_id: str, ext: str, received: Path,
                  data: bytes | None) -> tuple[int, str]:
        """Blocking: store the re-encoded `data`, or (None) the received file itself, moved
        into place without reading it into memory. Returns the stored size and sha256."""
        if data is None:
            digest, size = sha256_file(received), received.stat().st_size
            self.blobs.put_file(image_id, ext, received)
            return size, digest
        self.check_free_space(len(data))
        self.blobs.put(image_id, ext, data)
        return len(data), hashlib.sha256(data).hexdigest()

    async def _commit(self, record: images_db.NewImage, base_url: str) -> Row:
        async with self.db.transaction() as conn:
            if record.album_id is not None and not await albums_db.exists(
                conn, record.user_id, record.album_id
            ):
                raise NotFound("album")
            quota = await users_db.quota_mb(conn, record.user_id)
            if quota is not None:
                used = await users_db.used_bytes(conn, record.user_id)
                if used + record.size > quota * MB:
                    raise InsufficientStorage(
                        "Storage quota exceeded",
                        f"Quota is {quota}MB; {round(used / MB)}MB used, this file needs "
                        f"{max(1, round(record.size / MB))}MB",
                    )
            await images_db.insert(conn, record)
            row = await images_db.get(conn, record.id)
            assert row is not None
            await events_db.record(conn, record.user_id, "image.uploaded",
                                   image_obj(row, base_url))
        self.on_change()
        return row
