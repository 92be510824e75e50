"""Reading an upload's multipart body: files streamed to `tmp/`, fields kept, all bounded.

Options may arrive after the files (the seed's JS client appends them last), so
every file part is streamed to a temp file, never more than the size limit per
file, and the upload service runs once the whole form has been read.

Bounds, so no body can make the server hold more than a few hundred KB in memory
or more than the limits on disk: at most `max_files_per_request` files of
`max_upload_mb` each; at most MAX_FIELDS other fields, each at most
MAX_FIELD_BYTES and all together at most MAX_FIELDS_BYTES; each part's headers
are bounded by aiohttp (8190 bytes a line, 128 lines). A body that is not
well-formed multipart is a 400; a disk that fills up while a file arrives is a
507; either way the temp files of the request are removed. `url`/`urls[]` fields
(each may repeat) are kept in order in `Form.urls`, for `web/fetch.py`.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from pichub.config import StorageSettings
from pichub.errors import (
    BadRequest,
    InsufficientStorage,
    PayloadTooLarge,
    ValidationError,
    is_disk_full,
)
from pichub.models.uploads import URL_FIELDS
from pichub.services.uploads import MB, Received

FILE_FIELDS = frozenset({"files[]", "files", "file", "image", "image[]"})
MAX_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS_BYTES = 256 * 1024
CHUNK = 256 * 1024
FLUSH_BYTES = 4 * CHUNK
TMP_PREFIX = "upload-"


@dataclass
class Form:
    """A read multipart form: its files (on disk), its URLs to fetch, its other fields."""

    files: list[Received] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    urls: list[str] = field(default_factory=list)  # every `url`/`urls[]` field, in order
    complete: bool = True  # False when reading stopped early (connection should close)
    field_bytes: int = 0

    def cleanup(self) -> None:
        """Remove every temp file of the form (after processing, or on failure)."""
        for item in self.files:
            if item.path is not None:
                item.path.unlink(missing_ok=True)


async def read_upload(request: web.Request, tmp_dir: Path, storage: StorageSettings) -> Form:
    """The request's multipart form; 400 when the body is not well-formed multipart."""
    if not request.content_type.startswith("multipart/"):
        raise BadRequest("Upload must be multipart/form-data")
    form = Form()
    try:
        reader = await request.multipart()
        await _read_parts(reader, form, tmp_dir, storage, request.content_length)
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        form.cleanup()
        raise BadRequest("Malformed multipart body",
                         "The body is not valid multipart/form-data") from exc
    except OSError as exc:
        form.cleanup()
        if is_disk_full(exc):
            raise InsufficientStorage.disk_full() from exc
        raise
    except BaseException:
        form.cleanup()
        raise
    return form


async def _read_parts(reader: MultipartReader, form: Form, tmp_dir: Path,
                      storage: StorageSettings, content_length: int | None) -> None:
    limit = storage.max_upload_mb * MB
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise BadRequest("Nested multipart bodies are not supported")
        if part.name in FILE_FIELDS and part.filename is not None:
            if len(form.files) >= storage.max_files_per_request:
                raise ValidationError.field(
                    "files", f"at most {storage.max_files_per_request} files per request")
            item = Received(len(form.files), original_name(part.filename))
            form.files.append(item)
            item.path = tmp_dir / f"{TMP_PREFIX}{secrets.token_hex(8)}"
            try:
                await stream_file(part, item.path, limit, storage.min_free_mb * MB)
            except PayloadTooLarge:
                item.path.unlink(missing_ok=True)
                item.path = None
                known = _declared_length(part) or content_length or limit + 1
                item.error = PayloadTooLarge.file(storage.max_upload_mb, known)
                if not await drain_part(part, limit):
                    form.complete = False
                    return
        elif part.name:
            await read_field(part, form)


async def drain_part(part: BodyPartReader, budget: int) -> bool:
    """Discard the rest of a part, reading at most `budget` bytes; True if it ended."""
    while budget >= 0:
        chunk = await part.read_chunk(CHUNK)
        if not chunk:
            return True
        budget -= len(chunk)
    return False


def _write_block(fh: BinaryIO, data: bytes, reserve: int) -> None:
    """Append `data`, then check that the disk keeps its free-space reserve (in a thread).

    The check runs as the file grows, so concurrent uploads and other writers are
    accounted for by the file system itself rather than by a guess made up front.
    """
    fh.write(data)
    if reserve:
        stat = os.statvfs(fh.fileno())
        if stat.f_bavail * stat.f_frsize < reserve:
            raise InsufficientStorage.disk_full()


async def stream_file(part: BodyPartReader, dest: Path, limit: int, reserve: int) -> int:
    """Copy the part into `dest`, stopping as soon as it passes `limit` bytes.

    Returns the size; raises PayloadTooLarge when over, InsufficientStorage when the
    disk's reserve would be crossed, OSError (ENOSPC) when the disk is full.
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
            if len(buffer) >= FLUSH_BYTES:
                await asyncio.to_thread(_write_block, fh, bytes(buffer), reserve)
                buffer.clear()
        if buffer:
            await asyncio.to_thread(_write_block, fh, bytes(buffer), reserve)
    finally:
        await asyncio.to_thread(fh.close)
    return size


async def read_field(part: BodyPartReader, form: Form) -> None:
    if len(form.fields) + len(form.urls) >= MAX_FIELDS:
        raise PayloadTooLarge("Too many form fields",
                              f"At most {MAX_FIELDS} form fields besides the files")
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise PayloadTooLarge(f"Form field {part.name!r} is too long",
                                  f"At most {MAX_FIELD_BYTES // 1024} KB per field")
        if form.field_bytes + len(data) > MAX_FIELDS_BYTES:
            raise PayloadTooLarge("Form fields are too large",
                                  f"At most {MAX_FIELDS_BYTES // 1024} KB of fields in all")
    form.field_bytes += len(data)
    assert part.name is not None
    text = data.decode("utf-8", errors="replace")
    if part.name in URL_FIELDS:
        form.urls.append(text)
    else:
        form.fields[part.name] = text


def original_name(raw: str) -> str:
    """The uploaded name; aiohttp-based clients percent-encode it, browsers send it raw."""
    return unquote(raw) if _PERCENT.search(raw) else raw


def _declared_length(part: BodyPartReader) -> int | None:
    raw = part.headers.get("Content-Length", "")
    return int(raw) if re.fullmatch(r"[0-9]{1,15}", raw) else None


_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
