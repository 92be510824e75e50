"""SQL for web sessions: one row per signed-in browser, keyed by the hash of its cookie."""

from __future__ import annotations

from pichub.db.database import Conn, Database, Row


async def create(conn: Conn, id_hash: str, user_id: int, csrf_token: str, created_at: str,
                 expires_at: str, *, method: str, user_agent: str = "", ip: str = "") -> None:
    await conn.execute(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at,"
        " last_seen_at, user_agent, ip, method) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (id_hash, user_id, csrf_token, created_at, expires_at, created_at, user_agent, ip,
         method),
    )


async def find(db: Database, id_hash: str, now: str) -> Row | None:
    """The live session with this hash, joined with its user's name and admin flag, and
    whether the user has two-factor sign-in on (`has_totp`); none of a disabled user."""
    return await db.fetchone(
        "SELECT s.*, u.username, u.is_admin, CAST(EXISTS (SELECT 1 FROM totp t"
        "  WHERE t.user_id = s.user_id AND t.confirmed_at IS NOT NULL) AS INTEGER) AS has_totp"
        " FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.id_hash = ? AND s.expires_at > ? AND u.is_active = 1",
        (id_hash, now),
    )


async def touch(conn: Conn, id_hash: str, now: str) -> None:
    await conn.execute("UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?", (now, id_hash))


async def list_for_user(db: Database, user_id: int, now: str) -> list[Row]:
    """A user's live sessions, most recently seen first; `id` is the session's number."""
    return await db.fetchall(
        "SELECT id, id_hash, created_at, last_seen_at, expires_at, user_agent, ip"
        " FROM sessions WHERE user_id = ? AND expires_at > ?"
        " ORDER BY COALESCE(last_seen_at, created_at) DESC, id DESC",
        (user_id, now),
    )


async def delete_by_id(conn: Conn, user_id: int, session_id: int) -> bool:
    """End one of `user_id`'s sessions by its number; False when it is not theirs."""
    cur = await conn.execute("DELETE FROM sessions WHERE id = ? AND user_id = ?",
                             (session_id, user_id))
    return cur.rowcount > 0


async def delete_for_user(conn: Conn, user_id: int, keep_hash: str | None = None) -> int:
    """End every session of `user_id` (sign every browser out) except the one with
    `keep_hash`."""
    cur = await conn.execute(
        "DELETE FROM sessions WHERE user_id = ? AND id_hash IS DISTINCT FROM ?",
        (user_id, keep_hash))
    return cur.rowcount


async def delete(conn: Conn, id_hash: str) -> bool:
    cur = await conn.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))
    return cur.rowcount > 0


async def delete_expired(conn: Conn, now: str) -> int:
    cur = await conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
    return cur.rowcount
