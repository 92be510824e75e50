"""SQL for the instance's own secrets (migration 0007): made once, kept by backups."""

from __future__ import annotations

from pichub.db.database import Database


async def get(db: Database, name: str) -> str:
    """The secret `name` (hex); every one is created by a migration."""
    value = await db.fetchval("SELECT value FROM secrets WHERE name = ?", (name,))
    if value is None:
        raise LookupError(f"no secret {name!r}: the database was not migrated")
    return str(value)
