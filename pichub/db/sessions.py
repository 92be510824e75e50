"""SQL for web sessions: one row per signed-in browser, keyed by the hash of its cookie."""

from __future__ import annotations

from pichub.db.database import Conn, Database, Row


async def create(conn: Conn, id_hash: str, user_id: int, csrf_token: str, created_at: str,
                 expires_at: str) -> None:
    await conn.execute(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (id_hash, user_id, csrf_token, created_at, expires_at),
    )


async def find(db: Database, id_hash: str, now: str) -> Row | None:
    """The live session with this hash, joined with its user's name and admin flag; none of
    a disabled user."""
    return await db.fetchone(
        "SELECT s.*, u.username, u.is_admin FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.id_hash = ? AND s.expires_at > ? AND u.is_active = 1",
        (id_hash, now),
    )


async def delete(conn: Conn, id_hash: str) -> bool:
    cur = await conn.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))
    return cur.rowcount > 0


async def delete_expired(conn: Conn, now: str) -> int:
    cur = await conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
    return cur.rowcount


async def delete_for_user(conn: Conn, user_id: int) -> int:
    """Sign every browser of the user out."""
    cur = await conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
    return cur.rowcount
