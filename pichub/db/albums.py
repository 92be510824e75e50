"""SQL for albums. Every query is scoped by owner: another user's album does not exist."""

from __future__ import annotations

from typing import Any

from pichub.db.database import Conn, Database, Row
from pichub.timeutil import iso
from pichub.validate import MAX_ROW_ID

_SELECT = (
    "SELECT a.*, (SELECT COUNT(*) FROM images i WHERE i.album_id = a.id) AS image_count,"
    " (SELECT i.id || '.' || i.format FROM images i WHERE i.album_id = a.id"
    "  ORDER BY i.created_at DESC, i.seq DESC LIMIT 1) AS cover"
    " FROM albums a"
)


async def create(conn: Conn, user_id: int, name: str, description: str, is_public: bool) -> int:
    now = iso()
    cur = await conn.execute(
        "INSERT INTO albums (user_id, name, description, is_public, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, name, description, int(is_public), now, now),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def _storable(album_id: int) -> bool:
    """Ids from clients may be any integer; one SQLite cannot hold names no album."""
    return 1 <= album_id <= MAX_ROW_ID


async def get(db: Database | Conn, user_id: int, album_id: int) -> Row | None:
    if not _storable(album_id):
        return None
    sql = f"{_SELECT} WHERE a.id = ? AND a.user_id = ?"
    if isinstance(db, Database):
        return await db.fetchone(sql, (album_id, user_id))
    async with db.execute(sql, (album_id, user_id)) as cur:
        row: Row | None = await cur.fetchone()
        return row


async def exists(conn: Conn, user_id: int, album_id: int) -> bool:
    if not _storable(album_id):
        return False
    async with conn.execute(
        "SELECT 1 FROM albums WHERE id = ? AND user_id = ?", (album_id, user_id)
    ) as cur:
        return await cur.fetchone() is not None


async def page(db: Database, user_id: int, limit: int, offset: int) -> tuple[list[Row], int]:
    rows = await db.fetchall(
        f"{_SELECT} WHERE a.user_id = ? ORDER BY a.created_at DESC, a.id DESC LIMIT ? OFFSET ?",
        (user_id, limit, offset),
    )
    total = await db.fetchval("SELECT COUNT(*) FROM albums WHERE user_id = ?", (user_id,))
    return rows, int(total)


async def update(conn: Conn, user_id: int, album_id: int, changes: dict[str, Any]) -> bool:
    if not changes:
        return await exists(conn, user_id, album_id)
    columns = ", ".join(f"{name} = ?" for name in changes)
    cur = await conn.execute(
        f"UPDATE albums SET {columns}, updated_at = ? WHERE id = ? AND user_id = ?",
        (*changes.values(), iso(), album_id, user_id),
    )
    return cur.rowcount > 0


async def delete(conn: Conn, user_id: int, album_id: int) -> bool:
    """Delete the album; its images stay, with `album_id` set to NULL by the foreign key."""
    cur = await conn.execute("DELETE FROM albums WHERE id = ? AND user_id = ?", (album_id, user_id))
    return cur.rowcount > 0
