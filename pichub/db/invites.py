"""SQL for invites: single-use sign-up links (0010_invites.sql)."""

from __future__ import annotations

from pichub.db.database import Conn, Database, Row, insert_id
from pichub.models.base import MAX_ROW_ID

#: An invite as the lists show it: with the names of who made it and who used it.
_SELECT = ("SELECT i.*, c.username AS created_by_name, u.username AS used_by_name"
           " FROM invites i LEFT JOIN users c ON c.id = i.created_by"
           " LEFT JOIN users u ON u.id = i.used_by")


async def create(conn: Conn, token_hash: str, *, note: str, quota_mb: int | None,
                 created_by: int | None, created_at: str, expires_at: str) -> int:
    return await insert_id(conn,
        "INSERT INTO invites (token_hash, note, quota_mb, created_by, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (token_hash, note, quota_mb, created_by, created_at, expires_at))


async def get(db: Database, invite_id: int) -> Row | None:
    return await db.fetchone(_SELECT + " WHERE i.id = ?", (invite_id,))


async def find(db: Database, token_hash: str) -> Row | None:
    """The invite with this hash, whatever its state."""
    return await db.fetchone("SELECT * FROM invites WHERE token_hash = ?", (token_hash,))


async def listing(db: Database, limit: int) -> list[Row]:
    """The newest `limit` invites that were not revoked, newest first."""
    return await db.fetchall(_SELECT + " WHERE i.revoked_at IS NULL ORDER BY i.id DESC LIMIT ?",
                             (limit,))


async def revoke(conn: Conn, invite_id: int, at: str) -> bool:
    """Revoke an invite not used yet; False when there is none."""
    if not 1 <= invite_id <= MAX_ROW_ID:
        return False
    cur = await conn.execute(
        "UPDATE invites SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
        " AND used_at IS NULL", (at, invite_id))
    return cur.rowcount > 0


async def claim(conn: Conn, token_hash: str, at: str) -> Row | None:
    """Mark the invite used, if it is still usable at `at`: the one statement that decides
    which of two racing sign-ups gets it. Returns the invite's row, or None."""
    async with conn.execute(
            "UPDATE invites SET used_at = ? WHERE token_hash = ? AND used_at IS NULL"
            " AND revoked_at IS NULL AND expires_at > ? RETURNING *",
            (at, token_hash, at)) as cur:
        row: Row | None = await cur.fetchone()
    return row


async def set_used_by(conn: Conn, invite_id: int, user_id: int) -> None:
    await conn.execute("UPDATE invites SET used_by = ? WHERE id = ?", (user_id, invite_id))
