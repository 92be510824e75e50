"""SQL for delete links: the hash of each image's delete token, and the image it deletes."""

from __future__ import annotations

from pichub.db.database import Conn, Database, Row
from pichub.timeutil import iso


async def insert(conn: Conn, image_id: str, token_hash: str) -> None:
    """Record the link of a new image, in the transaction that inserts the image."""
    await conn.execute(
        "INSERT INTO delete_links (image_id, token_hash, created_at) VALUES (?, ?, ?)",
        (image_id, token_hash, iso()))


async def find_image(db: Database, token_hash: str) -> Row | None:
    """The image a delete link deletes, as stored; None once it is gone (the link with it)."""
    return await db.fetchone(
        "SELECT i.* FROM delete_links d JOIN images i ON i.id = d.image_id"
        " WHERE d.token_hash = ?", (token_hash,))
