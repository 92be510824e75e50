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
    #: public | unlisted | private (the `is_public` column follows it, see migration 0007).
    visibility: str = "public"
    #: When the image expires (ISO 8601 UTC), and how many views it allows; None: no limit.
    expires_at: str | None = None
    max_views: int | None = None
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
        " width, height, frames, size, sha256, visibility, expires_at, max_views, created_at,"
        " original_format, original_size, original_sha256, duplicate_of,"
        f" {', '.join(_META_COLUMNS)})"
        f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
        f"{', ?' * len(_META_COLUMNS)})",
        (
            image.id, image.user_id, image.album_id, image.filename, image.original_name,
            image.description, image.format, image.width, image.height, image.frames, image.size,
            image.sha256, image.visibility, image.expires_at, image.max_views, iso(),
            image.original_format,
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


def shared_in_album(album_id: int, now: str) -> Listing:
    """An album's images that its page shows (public and unlisted, not expired), newest
    first: read from the `images_album` index."""
    return Listing("images", KEY, ("album_id = ?", "visibility != 'private'",
                                   "(expires_at IS NULL OR expires_at > ?)"), (album_id, now))


async def shared_in_album_count(db: Database, album_id: int, now: str) -> int:
    """How many images `shared_in_album` lists (counted over the album's index range)."""
    return int(await db.fetchval(
        "SELECT COUNT(*) FROM images WHERE album_id = ? AND visibility != 'private'"
        " AND (expires_at IS NULL OR expires_at > ?)", (album_id, now)))


async def ids_in_album(db: Database, album_id: int) -> list[str]:
    """The ids of every image in an album (to forget what /img remembers of them)."""
    rows = await db.fetchall("SELECT id FROM images WHERE album_id = ?", (album_id,))
    return [row["id"] for row in rows]


async def public_count(db: Database) -> int:
    """How many images are public (a stored counter)."""
    return int(await db.fetchval("SELECT value FROM counters WHERE name = 'public_images'"))


_UPDATABLE = frozenset({"album_id", "visibility", "description", "expires_at", "max_views",
                        "views"})


async def update(conn: Conn, image_id: str, user_id: int, changes: dict[str, Any]) -> bool:
    """Change the given columns (of _UPDATABLE; None is stored as NULL); False when the user
    has no such image."""
    if not changes:
        return await get(conn, image_id, user_id) is not None
    columns, values = set_clause(changes, _UPDATABLE)
    cur = await conn.execute(f"UPDATE images SET {columns} WHERE id = ? AND user_id = ?",
                             (*values, image_id, user_id))
    return cur.rowcount > 0


async def delete(conn: Conn, image_id: str) -> None:
    await conn.execute("DELETE FROM images WHERE id = ?", (image_id,))


async def expired(db: Database, now: str, limit: int) -> list[str]:
    """The ids of up to `limit` images whose `expires_at` is `now` or earlier, soonest
    first (the expiry index)."""
    rows = await db.fetchall(
        "SELECT id FROM images WHERE expires_at IS NOT NULL AND expires_at <= ?"
        " ORDER BY expires_at LIMIT ?", (now, limit))
    return [str(row[0]) for row in rows]


async def next_expiry(db: Database) -> str | None:
    """The earliest `expires_at` of any image (the expiry index), or None."""
    value = await db.fetchval("SELECT MIN(expires_at) FROM images WHERE expires_at IS NOT NULL")
    return None if value is None else str(value)


async def count_view(conn: Conn, image_id: str, now: str) -> bool:
    """Count one view of an image with `max_views`: False when none was left. The last one
    allowed also sets `expires_at` to `now`, so the expiry sweep removes the image."""
    cur = await conn.execute(
        "UPDATE images SET views = views + 1, expires_at = CASE WHEN views + 1 >= max_views"
        " THEN CASE WHEN expires_at < ? THEN expires_at ELSE ? END ELSE expires_at END"
        " WHERE id = ? AND max_views IS NOT NULL AND views < max_views", (now, now, image_id))
    return cur.rowcount > 0


async def after(db: Database, after_seq: int, limit: int) -> list[Row]:
    """Images in insertion order after `after_seq`, with what a back-fill needs to know: for
    back-fills that resume where they stopped."""
    return await db.fetchall(
        "SELECT seq, id, format, width, height, frames, meta_version FROM images"
        " WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))


async def count(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM images"))


#: Ids per query of `existing` (well under SQLite's limit of bound parameters).
EXISTING_CHUNK = 500


async def existing(db: Database, ids: set[str]) -> set[str]:
    """Which of `ids` have an image row: one indexed lookup per id, EXISTING_CHUNK a query."""
    wanted = sorted(ids)
    found: set[str] = set()
    for start in range(0, len(wanted), EXISTING_CHUNK):
        chunk = wanted[start:start + EXISTING_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = await db.fetchall(f"SELECT id FROM images WHERE id IN ({marks})", chunk)
        found.update(row[0] for row in rows)
    return found
