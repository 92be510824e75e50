"""Changes to images and albums, each committed with its outbox event (SPEC §4, §7)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pichub.blobs import BlobStore
from pichub.db import albums as albums_db
from pichub.db import events as events_db
from pichub.db import images as images_db
from pichub.db.database import Database, Row
from pichub.errors import NotFound
from pichub.imaging.formats import ext_of
from pichub.serialize import album_obj, image_obj

log = logging.getLogger(__name__)
Purge = Callable[[str], Awaitable[object]]


class Gallery:
    """Image and album changes. `on_change` wakes the webhook worker after a commit."""

    def __init__(self, db: Database, blobs: BlobStore, purge_variants: Purge,
                 on_change: Callable[[], None]) -> None:
        self.db = db
        self.blobs = blobs
        self.purge_variants = purge_variants
        self.on_change = on_change

    async def require_album(self, user_id: int, album_id: int) -> None:
        if await albums_db.get(self.db, user_id, album_id) is None:
            raise NotFound("album")

    async def update_image(self, user_id: int, image_id: str, changes: dict[str, Any]) -> Row:
        async with self.db.transaction() as conn:
            row = await images_db.fetch(conn, image_id)
            if row is None or row["user_id"] != user_id:
                raise NotFound("image")
            album_id = changes.get("album_id")
            if album_id is not None and not await albums_db.exists(conn, user_id, album_id):
                raise NotFound("album")
            await images_db.update(conn, image_id, user_id, changes)
            row = await images_db.fetch(conn, image_id)
            assert row is not None
        return row

    async def delete_image(self, user_id: int, image_id: str, base_url: str) -> None:
        """Row and event first (the commit point), then the blob and its variants."""
        async with self.db.transaction() as conn:
            row = await images_db.fetch(conn, image_id)
            if row is None or row["user_id"] != user_id:
                raise NotFound("image")
            await images_db.delete(conn, image_id)
            await events_db.record(conn, user_id, "image.deleted", image_obj(row, base_url))
        self.on_change()
        try:  # variants first: the pipeline also forgets what it remembered of the image
            await self.purge_variants(image_id)
        finally:
            await asyncio.to_thread(self.blobs.delete, image_id, ext_of(row["format"]))

    async def create_album(self, user_id: int, fields: dict[str, Any], base_url: str) -> Row:
        async with self.db.transaction() as conn:
            album_id = await albums_db.create(
                conn, user_id, fields["name"], fields.get("description", ""),
                bool(fields.get("is_public", 1)),
            )
            row = await albums_db.get(conn, user_id, album_id)
            assert row is not None
            await events_db.record(conn, user_id, "album.created", album_obj(row, base_url))
        self.on_change()
        return row

    async def update_album(self, user_id: int, album_id: int, fields: dict[str, Any],
                           base_url: str) -> Row:
        async with self.db.transaction() as conn:
            if not await albums_db.update(conn, user_id, album_id, fields):
                raise NotFound("album")
            row = await albums_db.get(conn, user_id, album_id)
            assert row is not None
            await events_db.record(conn, user_id, "album.updated", album_obj(row, base_url))
        self.on_change()
        return row

    async def delete_album(self, user_id: int, album_id: int, base_url: str) -> None:
        async with self.db.transaction() as conn:
            row = await albums_db.get(conn, user_id, album_id)
            if row is None:
                raise NotFound("album")
            await albums_db.delete(conn, user_id, album_id)
            await events_db.record(conn, user_id, "album.deleted", album_obj(row, base_url))
        self.on_change()
