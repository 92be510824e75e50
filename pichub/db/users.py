"""SQL for users and their API tokens."""

from __future__ import annotations

from pichub.db.database import Conn, Database, Row, insert_id
from pichub.models.base import MAX_ROW_ID
from pichub.timeutil import iso


async def create_user(
    conn: Conn, username: str, password_hash: str, *, is_admin: bool, quota_mb: int | None
) -> int:
    return await insert_id(conn,
        "INSERT INTO users (username, password_hash, is_admin, quota_mb, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (username, password_hash, int(is_admin), quota_mb, iso()))


async def set_password(conn: Conn, user_id: int, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = ? WHERE id = ?",
                       (password_hash, user_id))


async def name_taken(conn: Conn, username: str) -> bool:
    """Whether a user has this name, read inside a transaction."""
    async with conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)) as cur:
        return await cur.fetchone() is not None


async def count_users(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM users"))


async def get_user(db: Database, user_id: int) -> Row | None:
    return await db.fetchone("SELECT * FROM users WHERE id = ?", (user_id,))


async def get_user_by_name(db: Database, username: str) -> Row | None:
    return await db.fetchone("SELECT * FROM users WHERE username = ?", (username,))


async def list_users(db: Database) -> list[Row]:
    """Every user with their stored `image_count` and `used_bytes`."""
    return await db.fetchall("SELECT * FROM users ORDER BY id")


async def image_count(db: Database, user_id: int) -> int:
    """How many images the user has (a stored counter)."""
    return int(await db.fetchval("SELECT image_count FROM users WHERE id = ?", (user_id,)) or 0)


async def used_bytes(conn: Conn, user_id: int) -> int:
    """Bytes of the user's stored originals (a stored counter, kept by triggers)."""
    async with conn.execute("SELECT used_bytes FROM users WHERE id = ?", (user_id,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def quota_mb(conn: Conn, user_id: int) -> int | None:
    async with conn.execute("SELECT quota_mb FROM users WHERE id = ?", (user_id,)) as cur:
        row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


async def create_token(conn: Conn, user_id: int, token_hash: str, name: str, scope: str) -> int:
    return await insert_id(conn,
        "INSERT INTO tokens (user_id, name, token_hash, scope, created_at) VALUES (?, ?, ?, ?, ?)",
        (user_id, name, token_hash, scope, iso()))


async def find_token(db: Database, token_hash: str) -> Row | None:
    """The live token with this hash, joined with its user's name; none of a disabled user."""
    return await db.fetchone(
        "SELECT t.*, u.username, u.is_admin FROM tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = ? AND t.revoked_at IS NULL AND u.is_active = 1",
        (token_hash,),
    )


async def touch_token(conn: Conn, token_id: int) -> None:
    await conn.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", (iso(), token_id))


async def list_tokens(db: Database, user_id: int) -> list[Row]:
    return await db.fetchall(
        "SELECT * FROM tokens WHERE user_id = ? AND revoked_at IS NULL ORDER BY id", (user_id,)
    )


async def revoke_token(conn: Conn, token_id: int, user_id: int | None = None) -> bool:
    """Revoke a live token (of `user_id` when given); False when there was none."""
    if not 1 <= token_id <= MAX_ROW_ID:
        return False
    sql = "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
    params: tuple[object, ...] = (iso(), token_id)
    if user_id is not None:
        sql += " AND user_id = ?"
        params += (user_id,)
    cur = await conn.execute(sql, params)
    return cur.rowcount > 0
