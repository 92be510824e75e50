"""Albums of a user: create, list, read, change, delete, expire; each change with its
outbox event.

Every query is scoped by owner, so another user's album does not exist (404,
never 403). `require_album` is the one ownership check the other services use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pichub.db import albums as albums_db
from pichub.db import events as events_db
from pichub.db import images as images_db
from pichub.db.database import Conn, Database
from pichub.errors import NotFound
from pichub.hashing import hash_password
from pichub.models.albums import Album, AlbumCreate, AlbumUpdate
from pichub.models.base import changes
from pichub.models.sharing import expiry_of, visibility_of
from pichub.services.common import Page, PageRequest, read_page
from pichub.timeutil import Clock, iso, now

#: The most albums an album picker of the web UI lists.
MAX_CHOICES = 500


async def require_album(db: Database | Conn, user_id: int, album_id: int | None) -> None:
    """Nothing when `album_id` is None or one of the user's albums; else 404 album."""
    if album_id is not None and not await albums_db.exists(db, user_id, album_id):
        raise NotFound("album")


class Albums:
    """Album rules; `on_change` wakes the webhook worker after a commit with an event;
    `forget` drops what /img remembers of an image (who may see it changed: the album's
    visibility or password); `on_expiry` wakes the expiry sweep (an expiry was set)."""

    def __init__(self, db: Database, on_change: Callable[[], None],
                 forget: Callable[[str], None] = lambda image_id: None, clock: Clock = now,
                 on_expiry: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.on_change = on_change
        self.forget = forget
        self.clock = clock
        self.on_expiry = on_expiry

    async def create(self, user_id: int, body: AlbumCreate, base_url: str) -> Album:
        expires_at = expiry_of(body.expires_in, body.expires_at, self.clock())
        hashed = None if body.password is None else await _hash(body.password)
        async with self.db.transaction() as conn:
            visibility = visibility_of(body.visibility, body.is_public) or "public"
            album_id = await albums_db.create(conn, user_id, body.name, body.description,
                                              visibility, expires_at)
            if hashed is not None:
                await albums_db.set_password(conn, user_id, album_id, hashed)
            album = await self._read(conn, user_id, album_id, base_url)
            await events_db.record(conn, user_id, "album.created", album.model_dump())
        self.on_change()
        if expires_at is not None:
            self.on_expiry()
        return album

    async def page(self, user_id: int, base_url: str, request: PageRequest) -> Page[Album]:
        """The user's albums, newest first."""
        return await read_page(self.db, albums_db.listing(user_id), albums_db.KEY_SHAPE,
                               request, await albums_db.count(self.db, user_id),
                               lambda row: Album.from_row(row, base_url))

    async def get(self, user_id: int, album_id: int, base_url: str) -> Album:
        return await self._read(self.db, user_id, album_id, base_url)

    async def locked(self, album_id: int | None) -> bool:
        """Whether the album (None: no album) has a password."""
        return await albums_db.password_hash(self.db, album_id) is not None

    async def choices(self, user_id: int) -> list[tuple[int, str]]:
        """(id, name) of the user's newest albums, for pickers."""
        window = await albums_db.listing(user_id).window(self.db, MAX_CHOICES)
        return [(row["id"], row["name"]) for row in window.rows]

    async def update(self, user_id: int, album_id: int, body: AlbumUpdate,
                     base_url: str) -> Album:
        fields = changes(body, "name, description, visibility or is_public, password, "
                               "expires_in or expires_at")
        visibility = visibility_of(fields.pop("visibility", None), fields.pop("is_public", None))
        new_expiry = "expires_in" in fields or "expires_at" in fields
        expires_at = expiry_of(fields.pop("expires_in", None), fields.pop("expires_at", None),
                               self.clock())
        new_password = "password" in fields
        password = fields.pop("password", None)
        hashed = None if password is None else await _hash(password)
        async with self.db.transaction() as conn:
            if not await albums_db.update(conn, user_id, album_id, visibility=visibility,
                                          **fields):
                raise NotFound("album")
            if new_password:
                await albums_db.set_password(conn, user_id, album_id, hashed)
            if new_expiry:
                await albums_db.set_expiry(conn, user_id, album_id, expires_at)
            album = await self._read(conn, user_id, album_id, base_url)
            await events_db.record(conn, user_id, "album.updated", album.model_dump())
        self.on_change()
        if expires_at is not None:
            self.on_expiry()
        if new_password or visibility is not None:
            for image_id in await images_db.ids_in_album(self.db, album_id):
                self.forget(image_id)
        return album

    async def delete(self, user_id: int, album_id: int, base_url: str) -> None:
        """Its images stay, out of any album (and out of its password)."""
        image_ids = await images_db.ids_in_album(self.db, album_id)
        async with self.db.transaction() as conn:
            album = await self._read(conn, user_id, album_id, base_url)
            await albums_db.delete(conn, user_id, album_id)
            await events_db.record(conn, user_id, "album.deleted",
                                   {**album.model_dump(), "reason": "deleted"})
        self.on_change()
        for image_id in image_ids:
            self.forget(image_id)

    async def expire(self, album_id: int, base_url: str) -> bool:
        """Delete an album whose expiry has come, as its owner's DELETE does (its images
        stay, out of any album), with `album.deleted` (`reason: expired`) in the same
        transaction; False when its expiry was moved or removed meanwhile (or it is gone)."""
        image_ids = await images_db.ids_in_album(self.db, album_id)
        async with self.db.transaction() as conn:
            row = await albums_db.find(conn, album_id)
            expires = None if row is None else row["expires_at"]
            if row is None or expires is None or expires > iso(self.clock()):
                return False
            album = Album.from_row(row, base_url)
            await albums_db.delete(conn, row["user_id"], album_id)
            await events_db.record(conn, row["user_id"], "album.deleted",
                                   {**album.model_dump(), "reason": "expired"})
        self.on_change()
        for image_id in image_ids:
            self.forget(image_id)
        return True

    @staticmethod
    async def _read(db: Database | Conn, user_id: int, album_id: int, base_url: str) -> Album:
        row = await albums_db.get(db, user_id, album_id)
        if row is None:
            raise NotFound("album")
        return Album.from_row(row, base_url)


async def _hash(password: str) -> str:
    """The password's hash (scrypt, as user passwords: hashing.hash_password), computed in a
    thread: it takes tens of milliseconds of CPU."""
    return await asyncio.to_thread(hash_password, password)
