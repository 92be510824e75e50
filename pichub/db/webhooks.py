"""SQL for webhook endpoints. Scoped by owner: another user's webhook does not exist."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pichub.db.database import Conn, Database, Row, fetch_one, insert_id, set_clause
from pichub.timeutil import iso

_UPDATABLE = frozenset({"url", "events", "description", "is_active"})


async def create(conn: Conn, user_id: int, url: str, secret: str, events: Sequence[str] | None,
                 description: str = "", is_active: bool = True) -> int:
    """Insert an endpoint; `events` None means every event type."""
    now = iso()
    return await insert_id(conn,
        "INSERT INTO webhooks (user_id, url, secret, events, description, is_active,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (user_id, url, secret, _events_json(events), description, int(is_active), now, now))


def _events_json(events: Sequence[str] | None) -> str | None:
    return None if events is None else json.dumps(list(events))


async def get(db: Database | Conn, user_id: int, webhook_id: int) -> Row | None:
    """The endpoint if `user_id` owns it, else None."""
    return await fetch_one(
        db, "SELECT * FROM webhooks WHERE id = ? AND user_id = ?", (webhook_id, user_id)
    )


async def list_for_user(db: Database, user_id: int) -> list[Row]:
    """The user's endpoints, newest first."""
    return await db.fetchall(
        "SELECT * FROM webhooks WHERE user_id = ? ORDER BY created_at DESC, id DESC", (user_id,)
    )


async def update(conn: Conn, user_id: int, webhook_id: int, changes: dict[str, Any]) -> bool:
    """Apply `changes` (keys: url, events, description, is_active); False when not the user's."""
    values = {key: _column_value(key, value) for key, value in changes.items()}
    if not values:
        return await get(conn, user_id, webhook_id) is not None
    columns, params = set_clause(values, _UPDATABLE)
    cur = await conn.execute(
        f"UPDATE webhooks SET {columns}, updated_at = ? WHERE id = ? AND user_id = ?",
        (*params, iso(), webhook_id, user_id),
    )
    return cur.rowcount > 0


def _column_value(key: str, value: Any) -> Any:
    if key == "events":
        return _events_json(value)
    if key == "is_active":
        return int(bool(value))
    return value


async def delete(conn: Conn, user_id: int, webhook_id: int) -> bool:
    """Delete the endpoint; its deliveries go with it (foreign key cascade)."""
    cur = await conn.execute(
        "DELETE FROM webhooks WHERE id = ? AND user_id = ?", (webhook_id, user_id)
    )
    return cur.rowcount > 0


