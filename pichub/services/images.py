"""Images of a user, and the public square: list, read, change, delete.

Deleting commits the row and its `image.deleted` event first (the commit
point), then removes the cached variants and the blob; a crash in between
leaves an orphan blob that the start-up sweep removes, never a row without
its bytes. The event's data is the image with a `reason`: `deleted` (its owner
or its delete link) or `expired` (the expiry sweep, services/expiry.py).
Changing an image records no event (the event list has no `image.updated`).
A delete link (handed out once, in the upload answer) deletes its image the
same way, without signing in; only its SHA-256 is stored.

Who may open an image, and signed links to private ones: services/sharing.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pichub.blobs import BlobStore
from pichub.db import albums as albums_db
from pichub.db import delete_links as links_db
from pichub.db import events as events_db
from pichub.db import images as images_db
from pichub.db import users as users_db
from pichub.db.database import Conn, Database, Row
from pichub.db.keyset import Listing
from pichub.errors import Gone, NotFound
from pichub.hashing import hash_secret
from pichub.imaging.formats import ext_of, mime_of, source_ext, source_mime
from pichub.imaging.spec import TransformSpec
from pichub.models.base import changes
from pichub.models.images import Image, ImageUpdate
from pichub.models.sharing import LinkRequest, SignedLink, expiry_of, visibility_of
from pichub.services.albums import require_album
from pichub.services.common import Page, PageRequest, read_page
from pichub.services.sharing import LinkSigner
from pichub.storage import Storage, as_storage
from pichub.timeutil import Clock, iso, now

Purge = Callable[[str], Awaitable[object]]


@dataclass(frozen=True)
class OriginalFile:
    """The file `GET /images/{id}/original` answers: the kept original upload (`kept`), or
    the stored file when the image has none."""

    path: Path
    mime: str
    filename: str
    kept: bool


class Images:
    """Image rules; `purge_variants` drops an image's cached variants, `on_change` wakes the
    webhook worker after a commit with an event."""

    def __init__(self, db: Database, blobs: BlobStore | Storage, purge_variants: Purge,
                 on_change: Callable[[], None], signing_key: str | None = None, *,
                 links: LinkSigner | None = None, clock: Clock = now,
                 forget: Callable[[str], None] = lambda image_id: None,
                 on_expiry: Callable[[], None] = lambda: None,
                 max_dimension: int = 4096) -> None:
        self.db = db
        self.files = as_storage(blobs)  # where the files live for good (disk or bucket)
        self.blobs = self.files.blobs
        self.purge_variants = purge_variants
        self.on_change = on_change
        self.signing_key = signing_key  # `images.signing_key`: variant URLs are signed
        self.links = links  # signs links to images (the instance's `link_key`)
        self.clock = clock
        self.forget = forget  # drops what /img remembers of an image (its access facts)
        self.on_expiry = on_expiry  # wakes the expiry sweep: an expiry was set or reached
        self.max_dimension = max_dimension

    def image(self, row: Row, base_url: str) -> Image:
        """A row as the API shows it, its variant URLs signed when they must be."""
        return Image.from_row(row, base_url, self.signing_key)

    async def page(self, user_id: int, base_url: str, request: PageRequest,
                   album_id: int | None = None) -> Page[Image]:
        """The user's images (in `album_id`, one of theirs, when given), newest first."""
        if album_id is None:
            total = await users_db.image_count(self.db, user_id)
        else:
            album = await albums_db.get(self.db, user_id, album_id)
            if album is None:
                raise NotFound("album")
            total = album["image_count"]
        listing = images_db.listing(user_id=user_id, album_id=album_id)
        return await self._page(listing, request, total, base_url)

    async def square(self, base_url: str, request: PageRequest) -> Page[Image]:
        """Everyone's public images, newest first."""
        total = await images_db.public_count(self.db)
        return await self._page(images_db.listing(public_only=True), request, total, base_url)

    async def get(self, user_id: int, image_id: str, base_url: str, *,
                  include_gps: bool = False) -> Image:
        """The user's image; `include_gps` adds its stored GPS position (only this route
        ever answers it, and only to the owner who asks)."""
        row = await images_db.get(self.db, image_id, user_id)
        if row is None:
            raise NotFound("image")
        return Image.from_row(row, base_url, self.signing_key, include_gps=include_gps)

    async def original(self, user_id: int, image_id: str) -> OriginalFile:
        """The user's image as uploaded: the kept original (a HEIC), else the stored file,
        which then is the upload or the only version PicHub has. Not theirs → 404."""
        row = await images_db.get(self.db, image_id, user_id)
        if row is None:
            raise NotFound("image")
        stem = row["filename"].rsplit(".", 1)[0]
        fmt = row["original_format"]
        if fmt is None:
            return OriginalFile(self.blobs.path(image_id, ext_of(row["format"])),
                                mime_of(row["format"]), row["filename"], kept=False)
        ext = source_ext(fmt)
        return OriginalFile(self.blobs.original_path(image_id, ext), source_mime(fmt),
                            f"{stem}.{ext}", kept=True)

    async def find(self, image_id: str) -> Row | None:
        """Any user's image by its (unguessable) id, as stored."""
        return await images_db.get(self.db, image_id)

    async def update(self, user_id: int, image_id: str, body: ImageUpdate,
                     base_url: str) -> Image:
        fields = changes(body, "album_id, visibility, is_public, description, expires_in, "
                               "expires_at or max_views")
        columns = self._columns(fields)
        async with self.db.transaction() as conn:
            if await images_db.get(conn, image_id, user_id) is None:
                raise NotFound("image")
            if "album_id" in columns:
                await require_album(conn, user_id, columns["album_id"])
            await images_db.update(conn, image_id, user_id, columns)
            row = await images_db.get(conn, image_id, user_id)
        assert row is not None
        self.forget(image_id)  # /img must not answer from what it knew before
        if columns.get("expires_at") is not None:
            self.on_expiry()
        return self.image(row, base_url)

    def _columns(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The columns a PATCH body changes (its aliases and relative times resolved)."""
        columns: dict[str, Any] = {name: fields[name] for name in ("album_id", "description")
                                   if name in fields}
        if fields.get("description", "") is None:
            columns["description"] = ""
        visibility = visibility_of(fields.get("visibility"), fields.get("is_public"))
        if visibility is not None:
            columns["visibility"] = visibility
        if "expires_in" in fields or "expires_at" in fields:
            columns["expires_at"] = expiry_of(fields.get("expires_in"),
                                              fields.get("expires_at"), self.clock())
        if "max_views" in fields:
            columns["max_views"] = fields["max_views"]
            columns["views"] = 0
        return columns

    async def delete(self, user_id: int, image_id: str, base_url: str) -> None:
        """Row and event first (the commit point), then the variants and the blob."""
        async with self.db.transaction() as conn:
            row = await images_db.get(conn, image_id, user_id)
            if row is None:
                raise NotFound("image")
            await images_db.delete(conn, image_id)
            await self.record_deleted(conn, row, base_url, "deleted")
        await self._remove_files(row)

    async def expire(self, image_id: str, base_url: str) -> bool:
        """Delete an image whose expiry has come, as `delete` does, with `reason: expired`;
        False when its expiry was moved or removed meanwhile (or it is gone)."""
        async with self.db.transaction() as conn:
            row = await images_db.get(conn, image_id)
            expires = None if row is None else row["expires_at"]
            if row is None or expires is None or expires > iso(self.clock()):
                return False
            await images_db.delete(conn, image_id)
            await self.record_deleted(conn, row, base_url, "expired")
        await self._remove_files(row)
        return True

    async def record_deleted(self, conn: Conn, row: Row, base_url: str, reason: str) -> None:
        """The `image.deleted` event of `row`, in the caller's transaction (the outbox)."""
        data = {**self.image(row, base_url).model_dump(), "reason": reason}
        await events_db.record(conn, row["user_id"], "image.deleted", data)

    async def _remove_files(self, row: Row) -> None:
        """After the commit: wake the webhook worker, drop the variants, then the blob (its
        working copies and kept original too; a shared blob only loses these names)."""
        self.on_change()
        await self.discard_files(row)

    async def discard_files(self, row: Row) -> None:
        """Remove the files of an image whose row is gone (committed): its cached variants,
        then its names in the blob store (working copies and kept original included; a
        de-duplicated file's bytes stay while another image has a name for them)."""
        try:  # variants first: the pipeline also forgets what it remembered of the image
            await self.purge_variants(row["id"])
        finally:
            await self.files.delete(row["id"], ext_of(row["format"]))

    async def count_view(self, image_id: str) -> None:
        """Count one view of an image with `max_views`; Gone (410) when none was left. The
        last view expires the image (and wakes the sweep)."""
        async with self.db.transaction() as conn:
            counted = await images_db.count_view(conn, image_id, iso(self.clock()))
            row = await images_db.get(conn, image_id)
        self.forget(image_id)
        if not counted:
            raise Gone("image") if row is not None else NotFound("image")
        if row is not None and row["expires_at"] is not None:
            self.on_expiry()

    async def link(self, user_id: int, image_id: str, body: LinkRequest,
                   base_url: str) -> SignedLink:
        """A signed link to the user's image (its variant, when the body names one) that
        works for `expires_in` seconds; 404 when it is not theirs."""
        row = await images_db.get(self.db, image_id, user_id)
        if row is None or self.links is None:
            raise NotFound("image")
        variant = body.variant_query()
        spec = TransformSpec.parse(variant, None, row["format"], self.max_dimension)  # 400 if bad
        variant.pop("fm", None)  # the extension names the format
        path = f"/img/{image_id}.{ext_of(spec.fm)}"
        expires = self.clock() + timedelta(seconds=body.expires_in)
        query = self.links.query(path, variant, expires)
        return SignedLink(url=f"{base_url}{path}?{urlencode(query)}",
                          expires_at=iso(datetime.fromtimestamp(int(query["exp"]), UTC)))

    async def find_by_delete_link(self, token: str) -> Row | None:
        """The image a delete link's token deletes; None for a wrong or used token."""
        return await links_db.find_image(self.db, hash_secret(token))

    async def delete_by_link(self, token: str, base_url: str) -> Row:
        """Delete the image of a delete link, as its owner's delete would (event, variants,
        blob); 404 for a wrong or already used token. Returns the deleted row."""
        row = await self.find_by_delete_link(token)
        if row is None:
            raise NotFound("delete link")
        await self.delete(row["user_id"], row["id"], base_url)
        return row

    async def _page(self, listing: Listing, request: PageRequest, total: int,
                    base_url: str) -> Page[Image]:
        return await read_page(self.db, listing, images_db.KEY_SHAPE, request, total,
                               lambda row: self.image(row, base_url))
