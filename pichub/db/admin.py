"""SQL of the admin pages and API: users by id, every user's images and tokens, the overview.

Lists are keyset listings (`db.keyset`) like every other list; totals come from the stored
counters of 0003 (`users.image_count`, `users.used_bytes`) and the uploads per day of 0008,
never from counting or summing the images.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pichub.db.database import Conn, Database, Row, set_clause
from pichub.db.keyset import Listing

#: The key of the user and token lists (newest first), and its types (for cursors).
ID_KEY = ("id",)
ID_KEY_SHAPE = (int,)
_USER_COLUMNS = frozenset({"is_active", "is_admin", "quota_mb", "password_hash"})


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own `%`, `_` and `\\` taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def users_listing(q: str = "") -> Listing:
    """Users newest first; `q` keeps those whose name contains it (any case)."""
    if not q:
        return Listing("users", ID_KEY)
    return Listing("users", ID_KEY, ("lower(username) LIKE lower(?) ESCAPE '\\'",), (_like(q),))


async def count_users(db: Database, q: str = "") -> int:
    """How many users (whose name contains `q`). The users table is small: one per person."""
    if not q:
        return int(await db.fetchval("SELECT COUNT(*) FROM users"))
    return int(await db.fetchval(
        "SELECT COUNT(*) FROM users WHERE lower(username) LIKE lower(?) ESCAPE '\\'",
        (_like(q),)))


async def update_user(conn: Conn, user_id: int, changes: dict[str, Any]) -> bool:
    """Set `is_active`, `is_admin`, `quota_mb` and/or `password_hash`; False when no such
    user."""
    columns, values = set_clause(changes, _USER_COLUMNS)
    cur = await conn.execute(f"UPDATE users SET {columns} WHERE id = ?", (*values, user_id))
    return cur.rowcount > 0


async def user_in(conn: Conn, user_id: int) -> Row | None:
    """A user, read inside a transaction."""
    async with conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)) as cur:
        row: Row | None = await cur.fetchone()
    return row


async def images_of(conn: Conn, user_id: int) -> list[Row]:
    """Every image of the user (oldest first), read inside the transaction that deletes them."""
    async with conn.execute("SELECT * FROM images WHERE user_id = ? ORDER BY seq",
                            (user_id,)) as cur:
        return list(await cur.fetchall())


async def other_admins(conn: Conn, user_id: int) -> int:
    """Active admins other than `user_id`, counted inside a transaction."""
    async with conn.execute("SELECT COUNT(*) FROM users WHERE is_admin = 1 AND is_active = 1"
                            " AND id != ?", (user_id,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def delete_user(conn: Conn, user_id: int) -> bool:
    """Delete the user; the foreign keys cascade to their images, albums, tokens, webhooks (and
    their deliveries), sessions and delete links, and the counter triggers run per row. Their
    events stay in the outbox with no user (only the global endpoint receives them)."""
    cur = await conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
    return cur.rowcount > 0


async def usernames(db: Database, user_ids: Iterable[int]) -> dict[int, str]:
    """The names of these users (the owners on one page of a list)."""
    wanted = sorted(set(user_ids))
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    rows = await db.fetchall(f"SELECT id, username FROM users WHERE id IN ({marks})", wanted)
    return {row["id"]: row["username"] for row in rows}


def tokens_listing(user_id: int | None = None) -> Listing:
    """Every live token (of `user_id` when given), newest first."""
    filters: tuple[str, ...] = ("revoked_at IS NULL",)
    params: tuple[object, ...] = ()
    if user_id is not None:
        filters, params = (*filters, "user_id = ?"), (user_id,)
    return Listing("tokens", ID_KEY, filters, params)


async def count_tokens(db: Database, user_id: int | None = None) -> int:
    """Live tokens (of `user_id`): a handful per person, counted at request time."""
    if user_id is None:
        return int(await db.fetchval("SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL"))
    return int(await db.fetchval(
        "SELECT COUNT(*) FROM tokens WHERE revoked_at IS NULL AND user_id = ?", (user_id,)))


@dataclass(frozen=True)
class Totals:
    """Users, images and stored bytes of the whole instance."""

    users: int
    active_users: int
    images: int
    bytes: int


async def totals(db: Database) -> Totals:
    """From the per-user stored counters: one row per user, none per image."""
    row = await db.fetchone("SELECT COUNT(*), COALESCE(SUM(is_active), 0),"
                            " COALESCE(SUM(image_count), 0), COALESCE(SUM(used_bytes), 0)"
                            " FROM users")
    assert row is not None
    return Totals(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


async def uploads_since(db: Database, first_day: str) -> dict[str, int]:
    """Uploads per day (`YYYY-MM-DD`, UTC) from `first_day` on; days without any are absent."""
    rows = await db.fetchall("SELECT day, uploads FROM upload_days WHERE day >= ?",
                             (first_day,))
    return {row["day"]: int(row["uploads"]) for row in rows}


async def failing_webhooks(db: Database, limit: int = 100) -> list[Row]:
    """Endpoints with failed deliveries, the most failures first, with their owner's name, the
    number of failed deliveries and the newest failure's time and error."""
    return await db.fetchall(
        "SELECT w.id, w.user_id, u.username, w.url, w.is_active, w.delivery_count,"
        " f.failed, f.last_failed_at,"
        " (SELECT d.error FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'failed'"
        "  ORDER BY d.id DESC LIMIT 1) AS last_error"
        " FROM (SELECT webhook_id, COUNT(*) AS failed, MAX(created_at) AS last_failed_at"
        "       FROM deliveries WHERE status = 'failed' AND webhook_id IS NOT NULL"
        "       GROUP BY webhook_id) f"
        " JOIN webhooks w ON w.id = f.webhook_id JOIN users u ON u.id = w.user_id"
        " ORDER BY f.failed DESC, w.id LIMIT ?", (limit,))
