"""SQL for two-factor sign-in: each user's sealed TOTP secret and their recovery codes."""

from __future__ import annotations

from collections.abc import Iterable

from pichub.db.database import Conn, Database, Row
from pichub.timeutil import iso


async def get(db: Database, user_id: int) -> Row | None:
    return await db.fetchone("SELECT * FROM totp WHERE user_id = ?", (user_id,))


async def start(conn: Conn, user_id: int, sealed_secret: str) -> None:
    """A new, unconfirmed secret (replacing an unconfirmed one; never a confirmed one)."""
    await conn.execute("DELETE FROM totp WHERE user_id = ? AND confirmed_at IS NULL", (user_id,))
    await conn.execute(
        "INSERT INTO totp (user_id, secret, created_at) VALUES (?, ?, ?)",
        (user_id, sealed_secret, iso()),
    )


async def confirm(conn: Conn, user_id: int, step: int, code_hashes: list[str]) -> bool:
    """Turn the pending secret on, with `step` used and fresh recovery codes; False when there
    was no pending secret."""
    cur = await conn.execute(
        "UPDATE totp SET confirmed_at = ?, last_step = ? WHERE user_id = ?"
        " AND confirmed_at IS NULL", (iso(), step, user_id))
    if cur.rowcount == 0:
        return False
    await conn.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
    await conn.executemany(
        "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)",
        [(user_id, code_hash) for code_hash in code_hashes])
    return True


async def use_step(conn: Conn, user_id: int, step: int) -> bool:
    """Record `step` as used; False when it (or a later one) was used already."""
    cur = await conn.execute(
        "UPDATE totp SET last_step = ? WHERE user_id = ? AND confirmed_at IS NOT NULL"
        " AND last_step < ?", (step, user_id, step))
    return cur.rowcount > 0


async def unused_codes(db: Database, user_id: int) -> list[Row]:
    return await db.fetchall(
        "SELECT id, code_hash FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        (user_id,))


async def count_unused(db: Database, user_id: int) -> int:
    return int(await db.fetchval(
        "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        (user_id,)))


async def use_code(conn: Conn, code_id: int) -> bool:
    """Spend a recovery code; False when it was spent meanwhile."""
    cur = await conn.execute(
        "UPDATE recovery_codes SET used_at = ? WHERE id = ? AND used_at IS NULL",
        (iso(), code_id))
    return cur.rowcount > 0


async def remove(conn: Conn, user_id: int) -> None:
    await conn.execute("DELETE FROM recovery_codes WHERE user_id = ?", (user_id,))
    await conn.execute("DELETE FROM totp WHERE user_id = ?", (user_id,))


async def enabled_among(db: Database, user_ids: Iterable[int]) -> set[int]:
    """Which of `user_ids` have two-factor sign-in on (a confirmed secret)."""
    wanted = tuple(set(user_ids))
    if not wanted:
        return set()
    marks = ", ".join("?" * len(wanted))
    rows = await db.fetchall(f"SELECT user_id FROM totp WHERE confirmed_at IS NOT NULL"
                             f" AND user_id IN ({marks})", wanted)
    return {row["user_id"] for row in rows}
