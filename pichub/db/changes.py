"""SQL for the change feed (services/changefeed.py): the outbox read as a log of what
other processes changed. Only reads; the rows are written by `events.record`."""

from __future__ import annotations

from collections.abc import Collection

from pichub.db.database import Database, Row


async def last_seq(db: Database) -> int:
    """The newest event's `seq` (0 when there is none): a primary-key lookup."""
    return int(await db.fetchval("SELECT COALESCE(MAX(seq), 0) FROM events") or 0)


async def between(db: Database, after: int, upto: int, types: Collection[str]) -> list[Row]:
    """(seq, type, payload) of the events of `types` with `after < seq <= upto`, oldest
    first: a range of the primary key."""
    marks = ", ".join("?" for _ in types)
    return await db.fetchall(
        f"SELECT seq, type, payload FROM events WHERE seq > ? AND seq <= ? AND type IN ({marks})"
        " ORDER BY seq", (after, upto, *types))
