"""The upload service (SPEC §3): stream parts to disk, validate options, store each file.

Options may arrive after the files (the seed's JS client appends them last), so
every file part is first streamed to a temp file, never more than the size
limit per file, and processed once the whole form has been read.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import shutil
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, MultipartReader

from pichub.blobs import BlobStore
from pichub.config import Settings
from pichub.db import albums as albums_db
from pichub.db import events as events_db
from pichub.db import images as images_db
from pichub.db import users as users_db
from pichub.db.database import Database, Row
from pichub.errors import (
    BadRequest,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    PichubError,
    ValidationError,
)
from pichub.imaging.formats import UPLOAD_FORMATS, canonical, ext_of
from pichub.imaging.ops import UploadResult, process_upload
from pichub.serialize import image_obj
from pichub.validate import Problems, form_bool, form_int

FILE_FIELDS = frozenset({"files[]", "files", "file", "image", "image[]"})
MAX_FIELD_BYTES = 64 * 1024
CHUNK = 256 * 1024
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


@dataclass
class Form:
    files: list[Received] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    complete: bool = True  # False when reading stopped early (connection should close)

    def cleanup(self) -> None:
        for item in self.files:
            if item.path is not None:
                item.path.unlink(missing_ok=True)


def parse_options(fields: dict[str, str], settings: Settings) -> UploadOptions:
    """The form's options, every bad one reported in a single 422."""
    problems = Problems()
    album_raw = fields.get("album_id", "").strip()
    album_id = None
    if album_raw:
        try:
            album_id = int(album_raw)
        except ValueError:
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


async def _drain_part(part: BodyPartReader, budget: int) -> bool:
    """Discard the rest of a part, reading at most `budget` bytes; True if it ended."""
    while budget >= 0:
        chunk = await part.read_chunk(CHUNK)
        if not chunk:
            return True
        budget -= len(chunk)
    return False


async def _stream_file(part: BodyPartReader, dest: Path, limit: int) -> int:
    """Copy the part into `dest`, stopping as soon as it passes `limit` bytes.

    Returns the size; raises PayloadTooLarge with what was seen so far when over.
    """
    size = 0
    buffer = bytearray()
    fh = await asyncio.to_thread(open, dest, "wb")
    try:
        while chunk := await part.read_chunk(CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge()
            buffer += chunk
            if len(buffer) >= 4 * CHUNK:
                await asyncio.to_thread(fh.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await asyncio.to_thread(fh.write, bytes(buffer))
    finally:
        await asyncio.to_thread(fh.close)
    return size


async def _read_field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise BadRequest(f"Form field {part.name!r} is too long")
    return data.decode("utf-8", errors="replace")


async def receive(reader: MultipartReader, tmp_dir: Path, settings: Settings,
                  content_length: int | None) -> Form:
    """Read the whole multipart form: files to temp files (bounded), fields to a dict."""
    storage = settings.storage
    limit = storage.max_upload_mb * MB
    form = Form()
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("Nested multipart bodies are not supported")
            if part.name in FILE_FIELDS and part.filename is not None:
                if len(form.files) >= storage.max_files_per_request:
                    raise ValidationError.field(
                        "files", f"at most {storage.max_files_per_request} files per request")
                item = Received(len(form.files), original_name(part.filename))
                form.files.append(item)
                item.path = tmp_dir / f"upload-{secrets.token_hex(8)}"
                try:
                    await _stream_file(part, item.path, limit)
                except PayloadTooLarge:
                    item.path.unlink(missing_ok=True)
                    item.path = None
                    known = _declared_length(part) or content_length or limit + 1
                    item.error = too_large(storage.max_upload_mb, known)
                    if not await _drain_part(part, limit):
                        form.complete = False
                        break
            elif part.name:
                form.fields[part.name] = await _read_field(part)
    except BaseException:
        form.cleanup()
        raise
    return form


def original_name(raw: str) -> str:
    """The uploaded name; aiohttp-based clients percent-encode it, browsers send it raw."""
    return unquote(raw) if _PERCENT.search(raw) else raw


def _declared_length(part: BodyPartReader) -> int | None:
    raw = part.headers.get("Content-Length")
    return int(raw) if raw and raw.isdigit() else None


_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
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
            raise InsufficientStorage(
                "Insufficient storage", "The server's free disk space is below its reserve"
            )

    async def check_album(self, user_id: int, album_id: int | None) -> None:
        if album_id is not None and await albums_db.get(self.db, user_id, album_id) is None:
            raise NotFound("album")

    async def store_all(self, user_id: int, options: UploadOptions, form: Form,
                        base_url: str) -> Stored:
        stored = Stored([], [])
        for item in form.files:
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
        data = result.data
        if data is None:
            data = await asyncio.to_thread(item.path.read_bytes)
        self.check_free_space(len(data))
        image_id = secrets.token_urlsafe(9)
        ext = ext_of(result.format)
        await asyncio.to_thread(self.blobs.put, image_id, ext, data)
        record = images_db.NewImage(
            id=image_id, user_id=user_id, album_id=options.album_id,
            filename=safe_filename(item.original_name, result.format, options.auto_rename),
            original_name=item.original_name[:255], description=options.description,
            format=result.format, width=result.width, height=result.height,
            frames=result.frames, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
            is_public=options.is_public,
        )
        try:
            return await self._commit(record, base_url)
        except BaseException:
            await asyncio.to_thread(self.blobs.delete, image_id, ext)
            raise

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
            row = await images_db.fetch(conn, record.id)
            assert row is not None
            await events_db.record(conn, record.user_id, "image.uploaded",
                                   image_obj(row, base_url))
        self.on_change()
        return row
