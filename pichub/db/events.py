"""SQL for the outbox: one row per change, written in the change's own transaction."""

from __future__ import annotations

import json
import secrets
from typing import Any

from pichub.db.database import Conn
from pichub.timeutil import iso


async def record(conn: Conn, user_id: int | None, type_: str, data: dict[str, Any]) -> str:
    """Insert an event; returns its `evt_…` id (the webhook-id of every delivery attempt)."""
    event_id = f"evt_{secrets.token_urlsafe(16)}"
    created = iso()
    body = {"id": event_id, "type": type_, "created_at": created, "data": data}
    await conn.execute(
        "INSERT INTO events (id, user_id, type, payload, created_at) VALUES (?, ?, ?, ?, ?)",
        (event_id, user_id, type_, json.dumps(body, separators=(",", ":")), created),
    )
    return event_id
