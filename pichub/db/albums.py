"""SQL for albums. Every query is scoped by owner: another user's album does not exist."""

from __future__ import annotations

from pichub.db.database import Conn, Database, Row, fetch_one, insert_id, set_clause
from pichub.db.keyset import Listing
from pichub.models.base import MAX_ROW_ID
from pichub.timeutil import iso

#: The key of the album list, and its types (for cursors).
KEY = ("created_at", "id")
KEY_SHAPE = (str, int)
_UPDATABLE = frozenset({"name", "description", "visibility"})


def _storable(album_id: int) -> bool:
    """Ids from clients may be any integer; one SQLite cannot hold names no album."""
    return 1 <= album_id <= MAX_ROW_ID


async def create(conn: Conn, user_id: int, name: str, description: str, visibility: str,
                 expires_at: str | None = None) -> int:
    """A new album; its `is_public` follows `visibility` (migration 0007)."""
    now = iso()
    return await insert_id(conn,
        "INSERT INTO albums (user_id, name, description, visibility, expires_at, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (user_id, name, description, visibility, expires_at, now, now))


async def get(db: Database | Conn, user_id: int, album_id: int) -> Row | None:
    if not _storable(album_id):
        return None
    return await fetch_one(db, "SELECT * FROM albums WHERE id = ? AND user_id = ?",
                           (album_id, user_id))


async def find(db: Database | Conn, album_id: int) -> Row | None:
    """Any user's album by id (for its public page), as stored."""
    if not _storable(album_id):
        return None
    return await fetch_one(db, "SELECT * FROM albums WHERE id = ?", (album_id,))


async def password_hash(db: Database | Conn, album_id: int | None) -> str | None:
    """The album's password hash; None when it has none (or there is no album)."""
    if album_id is None:
        return None
    found = await fetch_one(db, "SELECT password_hash FROM albums WHERE id = ?", (album_id,))
    return None if found is None else found["password_hash"]


async def set_password(conn: Conn, user_id: int, album_id: int, hashed: str | None) -> bool:
    """Set (or with None remove) the album's password hash; False when not the user's."""
    if not _storable(album_id):
        return False
    cur = await conn.execute(
        "UPDATE albums SET password_hash = ?, updated_at = ? WHERE id = ? AND user_id = ?",
        (hashed, iso(), album_id, user_id))
    return cur.rowcount > 0


async def set_expiry(conn: Conn, user_id: int, album_id: int, expires_at: str | None) -> bool:
    """Set (or with None remove) the album's expiry; False when not the user's."""
    if not _storable(album_id):
        return False
    cur = await conn.execute(
        "UPDATE albums SET expires_at = ?, updated_at = ? WHERE id = ? AND user_id = ?",
        (expires_at, iso(), album_id, user_id))
    return cur.rowcount > 0


async def expired(db: Database, now: str, limit: int) -> list[int]:
    """The ids of up to `limit` albums whose `expires_at` is `now` or earlier, soonest
    first (the expiry index of migration 0014)."""
    rows = await db.fetchall(
        "SELECT id FROM albums WHERE expires_at IS NOT NULL AND expires_at <= ?"
        " ORDER BY expires_at LIMIT ?", (now, limit))
    return [int(row[0]) for row in rows]


async def next_expiry(db: Database) -> str | None:
    """The earliest `expires_at` of any album, or None."""
    value = await db.fetchval("SELECT MIN(expires_at) FROM albums WHERE expires_at IS NOT NULL")
    return None if value is None else str(value)


async def exists(db: Database | Conn, user_id: int, album_id: int) -> bool:
    if not _storable(album_id):
        return False
    found = await fetch_one(db, "SELECT 1 FROM albums WHERE id = ? AND user_id = ?",
                            (album_id, user_id))
    return found is not None


def listing(user_id: int) -> Listing:
    """The user's albums, newest first; `image_count` and `cover` are stored columns."""
    return Listing("albums", KEY, ("user_id = ?",), (user_id,))


async def count(db: Database, user_id: int) -> int:
    """How many albums the user has (a stored counter)."""
    return int(await db.fetchval("SELECT album_count FROM users WHERE id = ?", (user_id,)) or 0)


async def update(conn: Conn, user_id: int, album_id: int, *, name: str | None = None,
                 description: str | None = None, visibility: str | None = None) -> bool:
    """Change the given fields (None = unchanged); False when the user has no such album."""
    changes = {k: v for k, v in (("name", name), ("description", description),
                                 ("visibility", visibility)) if v is not None}
    if not _storable(album_id):
        return False
    if not changes:
        return await exists(conn, user_id, album_id)
    columns, values = set_clause(changes, _UPDATABLE)
    cur = await conn.execute(
        f"UPDATE albums SET {columns}, updated_at = ? WHERE id = ? AND user_id = ?",
        (*values, iso(), album_id, user_id),
    )
    return cur.rowcount > 0


async def delete(conn: Conn, user_id: int, album_id: int) -> bool:
    """Delete the album; its images stay, with `album_id` set to NULL by the foreign key."""
    cur = await conn.execute("DELETE FROM albums WHERE id = ? AND user_id = ?", (album_id, user_id))
    return cur.rowcount > 0
