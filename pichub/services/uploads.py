"""Uploads: process and store the files a request brought, each standing or falling alone.

The web layer has already streamed each file to a temp file (`Received`) and
validated the options (`UploadForm`). Here each file is checked and
re-encoded in the image pool (`imaging.ops`), its blob written durably (a
kept original is moved into place, never read into memory; a HEIC upload is
stored converted and its own bytes are moved in beside, counted in the
quota with it), and its row
committed with the `image.uploaded` event in one transaction, after the
album and quota checks (with the S3 backend the files are PUT to the bucket
first, `Storage.persist`, and deleted again when the transaction fails). A
crash at any point leaves the whole image or nothing visible: the start-up
sweep removes a blob without its row. Each image gets a delete link in that
transaction: a random token, stored as its SHA-256 only, whose URL is in the
upload answer and nowhere else (not in the event).

The pass in the image pool also finds the image's placeholders and EXIF summary, from
the pixels and EXIF it reads anyway; they go into the row (`services.describe`).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import shutil
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pichub.blobs import BlobStore, sha256_file
from pichub.config import StorageSettings
from pichub.db import delete_links as links_db
from pichub.db import events as events_db
from pichub.db import images as images_db
from pichub.db import users as users_db
from pichub.db.database import Conn, Database, Row
from pichub.errors import InsufficientStorage, PichubError, ValidationError, is_disk_full
from pichub.hashing import hash_secret
from pichub.imaging.budget import conversion_bytes
from pichub.imaging.formats import ext_of, source_ext
from pichub.imaging.ops import UploadResult, probe, process_upload
from pichub.models.common import UploadFailure
from pichub.models.images import Image, UploadedImage
from pichub.models.sharing import expiry_of
from pichub.models.uploads import UploadForm
from pichub.services.albums import require_album
from pichub.services.describe import stored_meta
from pichub.storage import Storage, as_storage
from pichub.timeutil import Clock, now

MB: Final = 2**20
DELETE_PATH: Final = "/delete/"  # + the token: the delete link's page (`web/ui/deletelinks`)
#: Runs a conversion of about `estimate` bytes of memory (first argument) in the image pool,
#: once the upload memory budget has room for it, after the variants waiting for a thread.
Convert = Callable[..., Awaitable[Any]]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Received:
    """One file of the request: on disk at `path`, or refused while it arrived (`error`)."""

    index: int
    original_name: str
    path: Path | None = None
    error: PichubError | None = None


@dataclass
class _Written:
    """What `_put_blob` stores: the stored file, and the kept original (size 0: none)."""

    size: int
    sha256: str
    original_size: int = 0
    original_sha256: str | None = None


@dataclass
class Outcome:
    """What became of each file: the stored images, in request order, and the failures."""

    images: list[UploadedImage] = field(default_factory=list)
    errors: list[tuple[int, str, PichubError]] = field(default_factory=list)

    def failures(self) -> list[UploadFailure]:
        return [UploadFailure(index=index, filename=name, code=exc.code, message=exc.message,
                              details=exc.details) for index, name, exc in self.errors]


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


class Uploads:
    """The upload rules for the API and the dashboard alike."""

    def __init__(self, db: Database, blobs: BlobStore | Storage, storage: StorageSettings,
                 default_quality: int, convert: Convert,
                 on_change: Callable[[], None], signing_key: str | None = None, *,
                 clock: Clock = now, on_expiry: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.files = as_storage(blobs)  # where the files live for good (disk or bucket)
        self.blobs = self.files.blobs  # where they are written first
        self.storage = storage
        self.default_quality = default_quality
        self._convert = convert
        self.on_change = on_change
        self.signing_key = signing_key  # `images.signing_key`: variant URLs are signed
        self.clock = clock
        self.on_expiry = on_expiry  # wakes the expiry sweep when an upload expires

    def check_free_space(self, extra: int = 0) -> None:
        """507 when storing `extra` more bytes would take the disk below its reserve."""
        free = shutil.disk_usage(self.blobs.root).free
        if free - extra < self.storage.min_free_mb * MB:
            raise InsufficientStorage.disk_full()

    async def store(self, user_id: int, form: UploadForm, files: Sequence[Received],
                    base_url: str) -> Outcome:
        """Store every good file; the others are reported in `errors` (in request order).

        The files are processed side by side (the image pool and the upload memory
        budget bound how many at once), then committed one after the other in request
        order, so their rows, events and answers keep the order they were sent in.
        """
        if not files:
            raise ValidationError.field("files[]", "at least one file is required")
        await require_album(self.db, user_id, form.album_id)
        expires_at = expiry_of(form.expires_in, form.expires_at, self.clock())  # 422 first
        form = form.model_copy(update={"expires_in": None, "expires_at": expires_at})
        prepared = await self._prepare_all(user_id, form, files)
        outcome = Outcome()
        for position, (item, ready) in enumerate(zip(files, prepared, strict=True)):
            try:
                if isinstance(ready, PichubError):
                    raise ready
                outcome.images.append(await self._commit(ready, base_url))
            except PichubError as exc:
                outcome.errors.append((item.index, item.original_name, exc))
            except BaseException:
                await self._discard(prepared[position + 1:])
                raise
        return outcome

    async def _prepare_all(self, user_id: int, form: UploadForm,
                           files: Sequence[Received]) -> list[images_db.NewImage | PichubError]:
        """Every file processed and written, or its error; on anything unexpected, what was
        written is removed again."""
        tasks = [asyncio.ensure_future(self._prepare(user_id, form, item)) for item in files]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await self._discard(await asyncio.gather(*tasks, return_exceptions=True))
            raise

    async def _prepare(self, user_id: int, form: UploadForm,
                       item: Received) -> images_db.NewImage | PichubError:
        """Process the file and write its blob durably; its row, or why it failed."""
        if item.error is not None:
            return item.error
        try:
            return await self._process(user_id, form, item)
        except PichubError as exc:
            return exc

    async def _process(self, user_id: int, form: UploadForm,
                       item: Received) -> images_db.NewImage:
        assert item.path is not None
        storage = self.storage
        declared = await asyncio.to_thread(probe, item.path)
        estimate = 0
        if declared is not None:
            width, height, source = declared
            estimate = conversion_bytes(width, height, form.target_format(), source)
        result: UploadResult = await self._convert(
            estimate, process_upload, item.path, target=form.target_format(),
            quality=form.quality or self.default_quality, remove_exif=form.remove_exif,
            keep_location=form.keep_location, max_pixels=storage.max_pixels,
            max_frames=storage.max_frames, max_decode_bytes=storage.max_decode_mb * MB,
        )
        image_id = secrets.token_urlsafe(9)
        ext = ext_of(result.format)
        written = await asyncio.to_thread(_fingerprint, item.path, result)
        donor = await images_db.same_bytes(self.db, written.sha256, user_id)
        try:
            await asyncio.to_thread(self._put_blob, image_id, ext, item.path, result, written,
                                    donor)
        except OSError as exc:
            if is_disk_full(exc):
                raise InsufficientStorage.disk_full() from None
            raise
        try:
            await self.files.persist(image_id)  # durable (in the bucket) before the row
        except BaseException:
            await self._remove(image_id, ext)
            raise
        return images_db.NewImage(
            id=image_id, user_id=user_id, album_id=form.album_id,
            filename=safe_filename(item.original_name, result.format, form.auto_rename),
            original_name=item.original_name[:255], description=form.description,
            format=result.format, width=result.width, height=result.height,
            frames=result.frames, size=written.size, sha256=written.sha256,
            visibility=form.stored_visibility(), expires_at=form.expires_at,
            max_views=form.max_views, original_format=result.original_format,
            original_size=written.original_size, original_sha256=written.original_sha256,
            duplicate_of=donor["id"] if donor is not None and donor["user_id"] == user_id
            else None,
            meta=stored_meta(result.placeholder, result.exif),
        )

    async def _discard(self, prepared: Sequence[object]) -> None:
        """Remove the blobs of prepared images that will not be committed."""
        for ready in prepared:
            if isinstance(ready, images_db.NewImage):
                await self._remove(ready.id, ext_of(ready.format))

    async def _remove(self, image_id: str, ext: str) -> None:
        """Remove the files of an image that will not be committed, also when the request
        is being cancelled (shielded: the removal finishes on its own)."""
        await asyncio.shield(self.files.delete(image_id, ext))

    def _put_blob(self, image_id: str, ext: str, received: Path, result: UploadResult,
                  written: _Written, donor: Row | None) -> None:
        """Blocking: store the image's files. When `donor` (an image with the same bytes)
        is given they are shared with it (hard links); otherwise, or where that fails, the
        re-encoded bytes are written, or (None) the received file itself is moved into
        place without reading it into memory; then the working copies beside it; a HEIC's
        received file is kept beside as its original."""
        try:
            shared = donor is not None and self.blobs.share(donor["id"], image_id, ext)
            if not shared:
                if result.data is None:
                    self.blobs.put_file(image_id, ext, received)
                else:
                    self.check_free_space(len(result.data))
                    self.blobs.put(image_id, ext, result.data)
            present = self.blobs.working_copies(image_id)
            for copy in result.working:
                if copy.level not in present:
                    self.blobs.put_working(image_id, copy.level, copy.ext, copy.data)
            if result.original_format is not None:
                original_ext = source_ext(result.original_format)
                if not (shared and donor is not None
                        and donor["original_sha256"] == written.original_sha256
                        and self.blobs.share_original(donor["id"], image_id, original_ext)):
                    self.blobs.put_original_file(image_id, original_ext, received)
        except BaseException:
            self.blobs.delete(image_id, ext)  # no working copy or original without the image
            raise

    async def _commit(self, record: images_db.NewImage, base_url: str) -> UploadedImage:
        """Row, delete link and event in one transaction; the blob goes again when that
        fails."""
        delete_token = secrets.token_urlsafe(32)
        try:
            async with self.db.transaction() as conn:
                await require_album(conn, record.user_id, record.album_id)
                await _check_quota(conn, record.user_id, record.size + record.original_size)
                await images_db.insert(conn, record)
                await links_db.insert(conn, record.id, hash_secret(delete_token))
                row = await images_db.get(conn, record.id)
                assert row is not None
                image = Image.from_row(row, base_url, self.signing_key)
                await events_db.record(conn, record.user_id, "image.uploaded",
                                       image.model_dump())
        except BaseException:
            await self._remove(record.id, ext_of(record.format))
            raise
        self.on_change()
        if record.expires_at is not None:
            self.on_expiry()
        return UploadedImage.of(image, f"{base_url}{DELETE_PATH}{delete_token}")


def _fingerprint(received: Path, result: UploadResult) -> _Written:
    """Blocking: the sizes and sha256s of what will be stored (the bytes `url` serves: the
    re-encoded ones, or the received file when it is kept as it came) and of a kept
    original."""
    if result.data is None:
        return _Written(received.stat().st_size, sha256_file(received))
    written = _Written(len(result.data), hashlib.sha256(result.data).hexdigest())
    if result.original_format is not None:
        written.original_size = received.stat().st_size
        written.original_sha256 = sha256_file(received)
    return written


async def _check_quota(conn: Conn, user_id: int, size: int) -> None:
    quota = await users_db.quota_mb(conn, user_id)
    if quota is None:
        return
    used = await users_db.used_bytes(conn, user_id)
    if used + size > quota * MB:
        raise InsufficientStorage(
            "Storage quota exceeded",
            f"Quota is {quota}MB; {round(used / MB)}MB used, this file needs "
            f"{max(1, round(size / MB))}MB")
