"""SQL for images. Lists are newest first, ties broken by insertion sequence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pichub.db.database import Conn, Database, Row, fetch_one, set_clause
from pichub.db.keyset import Listing
from pichub.timeutil import iso


@dataclass(frozen=True)
class Meta:
    """The columns computed from the pixels and EXIF (migration 0005): placeholders, the
    EXIF summary as a JSON object without GPS, the GPS position (only when the stored file
    keeps it), and `version`, the computation that filled them (0: not yet)."""

    blurhash: str | None = None
    dominant_color: str | None = None
    exif: str | None = None
    gps_latitude: float | None = None
    gps_longitude: float | None = None
    gps_altitude: float | None = None
    version: int = 0

    def values(self) -> tuple[object, ...]:
        return (self.blurhash, self.dominant_color, self.exif, self.gps_latitude,
                self.gps_longitude, self.gps_altitude, self.version)


_META_COLUMNS = ("blurhash", "dominant_color", "exif", "gps_latitude", "gps_longitude",
                 "gps_altitude", "meta_version")


@dataclass(frozen=True)
class NewImage:
    id: str
    user_id: int
    album_id: int | None
    filename: str
    original_name: str
    description: str
    format: str
    width: int
    height: int
    frames: int
    size: int
    sha256: str
    is_public: bool
    #: The kept original upload (a HEIC beside its WebP/JPEG), if any.
    original_format: str | None = None
    original_size: int = 0
    original_sha256: str | None = None
    #: The uploader's own image with the same bytes, when there was one.
    duplicate_of: str | None = None
    meta: Meta = Meta()


async def insert(conn: Conn, image: NewImage) -> None:
    await conn.execute(
        "INSERT INTO images (id, user_id, album_id, filename, original_name, description, format,"
        " width, height, frames, size, sha256, is_public, created_at, original_format,"
        f" original_size, original_sha256, duplicate_of, {', '.join(_META_COLUMNS)})"
        f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
        f"{', ?' * len(_META_COLUMNS)})",
        (
            image.id, image.user_id, image.album_id, image.filename, image.original_name,
            image.description, image.format, image.width, image.height, image.frames, image.size,
            image.sha256, int(image.is_public), iso(), image.original_format,
            image.original_size, image.original_sha256, image.duplicate_of,
            *image.meta.values(),
        ),
    )


async def same_bytes(db: Database, sha256: str, user_id: int) -> Row | None:
    """An image whose stored bytes have this sha256, `user_id`'s own first (the oldest),
    else another user's: the donor of a de-duplicated upload."""
    return await db.fetchone(
        "SELECT id, user_id, original_sha256 FROM images WHERE sha256 = ?"
        " ORDER BY user_id = ? DESC, seq LIMIT 1", (sha256, user_id))


async def set_meta(conn: Conn, image_id: str, meta: Meta) -> bool:
    """Store the computed columns of an image; False when it is gone."""
    columns = ", ".join(f"{name} = ?" for name in _META_COLUMNS)
    cur = await conn.execute(f"UPDATE images SET {columns} WHERE id = ?",
                             (*meta.values(), image_id))
    return cur.rowcount > 0


async def get(db: Database | Conn, image_id: str, user_id: int | None = None) -> Row | None:
    """One image; with `user_id`, only if that user owns it."""
    if user_id is None:
        return await fetch_one(db, "SELECT * FROM images WHERE id = ?", (image_id,))
    return await fetch_one(db, "SELECT * FROM images WHERE id = ? AND user_id = ?",
                           (image_id, user_id))


#: The key of every image list, and its types (for cursors).
KEY = ("created_at", "seq")
KEY_SHAPE = (str, int)


def listing(*, user_id: int | None = None, album_id: int | None = None,
            public_only: bool = False) -> Listing:
    """A list of images, newest first; each filter combination reads one index."""
    filters: list[str] = []
    params: list[object] = []
    if user_id is not None:
        filters.append("user_id = ?")
        params.append(user_id)
    if album_id is not None:
        filters.append("album_id = ?")
        params.append(album_id)
    if public_only:
        filters.append("is_public = 1")
    return Listing("images", KEY, tuple(filters), tuple(params))


async def public_count(db: Database) -> int:
    """How many images are public (a stored counter)."""
    return int(await db.fetchval("SELECT value FROM counters WHERE name = 'public_images'"))


_UNSET: Any = object()
_UPDATABLE = frozenset({"album_id", "is_public", "description"})


async def update(conn: Conn, image_id: str, user_id: int, *, album_id: int | None = _UNSET,
                 is_public: bool | None = None, description: str | None = None) -> bool:
    """Change the given fields (`album_id` None = out of any album; the others None =
    unchanged); False when the user has no such image."""
    changes: dict[str, Any] = {} if album_id is _UNSET else {"album_id": album_id}
    if is_public is not None:
        changes["is_public"] = int(is_public)
    if description is not None:
        changes["description"] = description
    if not changes:
        return await get(conn, image_id, user_id) is not None
    columns, values = set_clause(changes, _UPDATABLE)
    cur = await conn.execute(f"UPDATE images SET {columns} WHERE id = ? AND user_id = ?",
                             (*values, image_id, user_id))
    return cur.rowcount > 0


async def delete(conn: Conn, image_id: str) -> None:
    await conn.execute("DELETE FROM images WHERE id = ?", (image_id,))


async def all_ids(db: Database) -> set[str]:
    return {row[0] for row in await db.fetchall("SELECT id FROM images")}


async def after(db: Database, after_seq: int, limit: int) -> list[Row]:
    """Images in insertion order after `after_seq`, with what a back-fill needs to know: for
    back-fills that resume where they stopped."""
    return await db.fetchall(
        "SELECT seq, id, format, width, height, frames, meta_version FROM images"
        " WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))


async def count(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM images"))
