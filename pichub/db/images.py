"""SQL for images. Lists are newest first, ties broken by insertion sequence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pichub.db.database import Conn, Database, Row, fetch_one, set_clause
from pichub.timeutil import iso

_ORDER = "ORDER BY created_at DESC, seq DESC"


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
    is_public: bool


async def insert(conn: Conn, image: NewImage) -> None:
    await conn.execute(
        "INSERT INTO images (id, user_id, album_id, filename, original_name, description, format,"
        " width, height, frames, size, sha256, is_public, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            image.id, image.user_id, image.album_id, image.filename, image.original_name,
            image.description, image.format, image.width, image.height, image.frames, image.size,
            image.sha256, int(image.is_public), iso(),
        ),
    )


async def get(db: Database | Conn, image_id: str, user_id: int | None = None) -> Row | None:
    """One image; with `user_id`, only if that user owns it."""
    if user_id is None:
        return await fetch_one(db, "SELECT * FROM images WHERE id = ?", (image_id,))
    return await fetch_one(db, "SELECT * FROM images WHERE id = ? AND user_id = ?",
                           (image_id, user_id))


async def page(
    db: Database, *, user_id: int | None, album_id: int | None, public_only: bool,
    limit: int, offset: int,
) -> tuple[list[Row], int]:
    where, params = [], []
    if user_id is not None:
        where.append("user_id = ?")
        params.append(user_id)
    if album_id is not None:
        where.append("album_id = ?")
        params.append(album_id)
    if public_only:
        where.append("is_public = 1")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = await db.fetchall(
        f"SELECT * FROM images {clause} {_ORDER} LIMIT ? OFFSET ?", (*params, limit, offset)
    )
    total = await db.fetchval(f"SELECT COUNT(*) FROM images {clause}", params)
    return rows, int(total)


_UNSET: Any = object()
_UPDATABLE = frozenset({"album_id", "is_public", "description"})


async def update(conn: Conn, image_id: str, user_id: int, *, album_id: int | None = _UNSET,
                 is_public: bool | None = None, description: str | None = None) -> bool:
    """Change the given fields (`album_id` None = out of any album; the others None =
    unchanged); False when the user has no such image."""
    changes: dict[str, Any] = {} if album_id is _UNSET else {"album_id": album_id}
    if is_public is not None:
        changes["is_public"] = int(is_public)
    if description is not None:
        changes["description"] = description
    if not changes:
        return await get(conn, image_id, user_id) is not None
    columns, values = set_clause(changes, _UPDATABLE)
    cur = await conn.execute(f"UPDATE images SET {columns} WHERE id = ? AND user_id = ?",
                             (*values, image_id, user_id))
    return cur.rowcount > 0


async def delete(conn: Conn, image_id: str) -> None:
    await conn.execute("DELETE FROM images WHERE id = ?", (image_id,))


async def stills_after(db: Database, after_seq: int, limit: int) -> list[Row]:
    """Still images (one frame) in insertion order after `after_seq`: for back-fills that
    resume where they stopped."""
    return await db.fetchall(
        "SELECT seq, id, format, width, height FROM images WHERE frames = 1 AND seq > ?"
        " ORDER BY seq LIMIT ?", (after_seq, limit))


async def count_stills(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM images WHERE frames = 1"))


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
