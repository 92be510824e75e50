"""SQL for the outbox: one row per change, written in the change's own transaction.

`record` is the one place an event body is built: `{"id": "evt_…", "type",
"created_at", "data"}`, stored as the JSON that every delivery sends.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from pichub.db.database import Conn
from pichub.timeutil import iso


@dataclass(frozen=True)
class Recorded:
    """An event as written: its `evt_…` id (the webhook-id of every attempt) and body."""

    id: str
    payload: str
    created_at: str


async def record(conn: Conn, user_id: int | None, type_: str, data: dict[str, Any], *,
                 dispatched: bool = False) -> Recorded:
    """Insert an event; `dispatched` for one that is not fanned out (a test ping)."""
    event_id = f"evt_{secrets.token_urlsafe(16)}"
    created = iso()
    body = json.dumps({"id": event_id, "type": type_, "created_at": created, "data": data},
                      separators=(",", ":"))
    await conn.execute(
        "INSERT INTO events (id, user_id, type, payload, created_at, dispatched)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (event_id, user_id, type_, body, created, int(dispatched)),
    )
    return Recorded(event_id, body, created)
