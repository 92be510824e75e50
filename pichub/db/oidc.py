"""SQL for single sign-on: provider identities (issuer, sub) and the users' e-mail column."""

from __future__ import annotations

from pichub.db.database import Conn, Database, Row
from pichub.timeutil import iso


async def find_identity(db: Database, issuer: str, subject: str) -> Row | None:
    """The identity joined with its user (`username`, `is_admin`, `is_active`)."""
    return await db.fetchone(
        "SELECT i.user_id, u.username, u.is_admin, u.is_active FROM oidc_identities i"
        " JOIN users u ON u.id = i.user_id WHERE i.issuer = ? AND i.subject = ?",
        (issuer, subject))


async def add_identity(conn: Conn, issuer: str, subject: str, user_id: int, email: str) -> None:
    moment = iso()
    await conn.execute(
        "INSERT INTO oidc_identities (issuer, subject, user_id, email, created_at, last_login_at)"
        " VALUES (?, ?, ?, ?, ?, ?)", (issuer, subject, user_id, email, moment, moment))


async def touch_identity(conn: Conn, issuer: str, subject: str, email: str) -> None:
    await conn.execute(
        "UPDATE oidc_identities SET last_login_at = ?, email = ? WHERE issuer = ? AND subject = ?",
        (iso(), email, issuer, subject))


#: "`email` is this address in any case", read from the unique index `users_email`
#: (`email COLLATE NOCASE` on SQLite, `lower(email)` on PostgreSQL).
_SAME_EMAIL = {"sqlite": "email = ? COLLATE NOCASE", "postgresql": "lower(email) = lower(?)"}


async def user_by_email(db: Database, email: str) -> Row | None:
    return await db.fetchone(f"SELECT * FROM users WHERE {_SAME_EMAIL[db.dialect]}", (email,))


async def email_owner_in(conn: Conn, email: str) -> int | None:
    """The id of the account with this e-mail (any case), read inside a transaction."""
    async with conn.execute(f"SELECT id FROM users WHERE {_SAME_EMAIL[conn.dialect]}",
                            (email,)) as cur:
        row = await cur.fetchone()
    return None if row is None else int(row[0])


async def set_email(conn: Conn, user_id: int, email: str | None) -> bool:
    cur = await conn.execute("UPDATE users SET email = ? WHERE id = ?", (email, user_id))
    return cur.rowcount > 0


async def set_admin(conn: Conn, user_id: int, is_admin: bool) -> None:
    await conn.execute("UPDATE users SET is_admin = ? WHERE id = ?", (int(is_admin), user_id))


async def username_taken(db: Database, username: str) -> bool:
    return await db.fetchone("SELECT 1 FROM users WHERE lower(username) = lower(?)",
                             (username,)) is not None
