"""SQL for webhook endpoints, their deliveries, and draining the `events` outbox.

Endpoints are scoped by owner: another user's webhook does not exist.

Deliveries: `dispatch_pending` fans each undispatched event out into one
`deliveries` row per matching active endpoint of the event's user (`events`
NULL = every type), plus one row with `webhook_id` NULL for the global
endpoint of the config, and marks the events dispatched, in one transaction.
`ping` events are never fanned out: `create_ping` writes the event (already
dispatched) and its single delivery to the tested endpoint in the caller's
transaction, so a test ping reaches only that endpoint (even a paused one;
other deliveries of a paused endpoint wait until it is active again).

`next_attempt_at` is stored with milliseconds (`2026-11-27T06:50:33.250Z`, see
`stamp`) so sub-second backoffs work; every value in that column is written
here in that one format, so string comparison orders them correctly. A claim
is a lease, not an "in flight" status: `claim_due` pushes `next_attempt_at`
past the attempt's timeout, so a delivery whose worker died (kill -9) becomes
due again by itself, and a restarted worker resumes it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

from pichub.db.database import Conn, Database, Row
from pichub.timeutil import iso

GLOBAL_ENDPOINT = 0  # endpoint key of the config's global webhook (webhook ids start at 1)

_ENDPOINT_KEY = "IFNULL(d.webhook_id, 0)"


def stamp(moment: datetime) -> str:
    """UTC with milliseconds, the format of `next_attempt_at`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


async def _fetchone(db: Database | Conn, sql: str, params: tuple[Any, ...]) -> Row | None:
    if isinstance(db, Database):
        return await db.fetchone(sql, params)
    async with db.execute(sql, params) as cur:
        row: Row | None = await cur.fetchone()
        return row


# --- endpoints ----------------------------------------------------------------------------


async def create(conn: Conn, user_id: int, url: str, secret: str, events: list[str] | None,
                 description: str = "", is_active: bool = True) -> int:
    """Insert an endpoint; `events` None means every event type."""
    now = iso()
    cur = await conn.execute(
        "INSERT INTO webhooks (user_id, url, secret, events, description, is_active,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (user_id, url, secret, _events_json(events), description, int(is_active), now, now),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def _events_json(events: list[str] | None) -> str | None:
    return None if events is None else json.dumps(events)


async def get(db: Database | Conn, user_id: int, webhook_id: int) -> Row | None:
    """The endpoint if `user_id` owns it, else None."""
    return await _fetchone(
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
    columns = ", ".join(f"{name} = ?" for name in values)
    cur = await conn.execute(
        f"UPDATE webhooks SET {columns}, updated_at = ? WHERE id = ? AND user_id = ?",
        (*values.values(), iso(), webhook_id, user_id),
    )
    return cur.rowcount > 0


def _column_value(key: str, value: Any) -> Any:
    if key == "events":
        return _events_json(value)
    if key == "is_active":
        return int(bool(value))
    if key in ("url", "description"):
        return value
    raise ValueError(f"not an updatable webhook field: {key}")


async def delete(conn: Conn, user_id: int, webhook_id: int) -> bool:
    """Delete the endpoint; its deliveries go with it (foreign key cascade)."""
    cur = await conn.execute(
        "DELETE FROM webhooks WHERE id = ? AND user_id = ?", (webhook_id, user_id)
    )
    return cur.rowcount > 0


# --- outbox → deliveries --------------------------------------------------------------------


async def create_ping(conn: Conn, user_id: int, webhook_id: int) -> Row | None:
    """A `ping` event for one endpoint and its delivery; None when not the user's endpoint."""
    if await get(conn, user_id, webhook_id) is None:
        return None
    event_id = f"evt_{secrets.token_urlsafe(16)}"
    created = iso()
    data = {"webhook_id": webhook_id, "message": "PicHub webhook test"}
    body = json.dumps({"id": event_id, "type": "ping", "created_at": created, "data": data},
                      separators=(",", ":"))
    await conn.execute(
        "INSERT INTO events (id, user_id, type, payload, created_at, dispatched)"
        " VALUES (?, ?, 'ping', ?, ?, 1)",
        (event_id, user_id, body, created),
    )
    cur = await conn.execute(
        "INSERT INTO deliveries (webhook_id, event_id, type, payload, created_at, next_attempt_at)"
        " VALUES (?, ?, 'ping', ?, ?, ?)",
        (webhook_id, event_id, body, created, stamp(datetime.now(UTC))),
    )
    return await _fetchone(conn, "SELECT * FROM deliveries WHERE id = ?", (cur.lastrowid,))


async def has_undispatched(db: Database) -> bool:
    return await db.fetchval("SELECT 1 FROM events WHERE dispatched = 0 LIMIT 1") is not None


async def dispatch_pending(conn: Conn, global_endpoint: bool, batch: int = 500) -> int:
    """Fan up to `batch` undispatched events into deliveries; returns how many were created."""
    async with conn.execute(
        "SELECT MAX(seq) FROM (SELECT seq FROM events WHERE dispatched = 0 ORDER BY seq LIMIT ?)",
        (batch,),
    ) as cur:
        row = await cur.fetchone()
    last_seq = row[0] if row else None
    if last_seq is None:
        return 0
    created, due = iso(), stamp(datetime.now(UTC))
    cur = await conn.execute(
        "INSERT INTO deliveries (webhook_id, event_id, type, payload, created_at, next_attempt_at)"
        " SELECT w.id, e.id, e.type, e.payload, ?, ? FROM events e"
        " JOIN webhooks w ON w.user_id = e.user_id AND w.is_active = 1"
        " WHERE e.dispatched = 0 AND e.seq <= ? AND e.type != 'ping' AND (w.events IS NULL"
        "  OR EXISTS (SELECT 1 FROM json_each(w.events) j WHERE j.value = e.type))"
        " ORDER BY e.seq, w.id",
        (created, due, last_seq),
    )
    count = cur.rowcount
    if global_endpoint:
        cur = await conn.execute(
            "INSERT INTO deliveries (webhook_id, event_id, type, payload, created_at,"
            " next_attempt_at) SELECT NULL, e.id, e.type, e.payload, ?, ? FROM events e"
            " WHERE e.dispatched = 0 AND e.seq <= ? AND e.type != 'ping' ORDER BY e.seq",
            (created, due, last_seq),
        )
        count += cur.rowcount
    await conn.execute(
        "UPDATE events SET dispatched = 1 WHERE dispatched = 0 AND seq <= ?", (last_seq,)
    )
    return count


# --- claiming and recording attempts -------------------------------------------------------


def _due_filter(busy: Collection[int], global_endpoint: bool) -> tuple[str, list[Any]]:
    """WHERE clause (over `d` joined with `w`) of pending deliveries that may be sent now."""
    sql = (
        "d.status = 'pending'"
        " AND (w.is_active = 1 OR d.type = 'ping' OR (d.webhook_id IS NULL AND ?))"
        f" AND {_ENDPOINT_KEY} NOT IN ({', '.join('?' * len(busy))})"
    )
    return sql, [int(global_endpoint), *busy]


async def claim_due(conn: Conn, now: datetime, lease_until: datetime, limit: int,
                    busy: Collection[int] = (), global_endpoint: bool = False) -> list[Row]:
    """Lease up to `limit` due deliveries, the oldest of each endpoint not in `busy`.

    Rows carry the delivery's columns plus `url` and `secret` of its endpoint
    (NULL for the global one) and `endpoint` (webhook id, or GLOBAL_ENDPOINT).
    """
    where, params = _due_filter(busy, global_endpoint)
    sql = (
        f"SELECT d.*, w.url AS url, w.secret AS secret, {_ENDPOINT_KEY} AS endpoint"
        " FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id"
        " WHERE d.id IN (SELECT MIN(d.id) FROM deliveries d"
        "  LEFT JOIN webhooks w ON w.id = d.webhook_id"
        f"  WHERE {where} AND d.next_attempt_at <= ? GROUP BY d.webhook_id)"
        " ORDER BY d.next_attempt_at, d.id LIMIT ?"
    )
    async with conn.execute(sql, (*params, stamp(now), limit)) as cur:
        rows = list(await cur.fetchall())
    await _set_due(conn, (row["id"] for row in rows), lease_until)
    return rows


async def _set_due(conn: Conn, ids: Iterable[int], when: datetime) -> None:
    await conn.executemany(
        "UPDATE deliveries SET next_attempt_at = ? WHERE id = ? AND status = 'pending'",
        [(stamp(when), delivery_id) for delivery_id in ids],
    )


async def release(conn: Conn, ids: Iterable[int], now: datetime) -> None:
    """Give back leases of attempts that were abandoned (worker stopping): due again at once."""
    await _set_due(conn, ids, now)


async def next_due(db: Database, busy: Collection[int] = (),
                   global_endpoint: bool = False) -> datetime | None:
    """When the earliest sendable pending delivery is due (None when there is none)."""
    where, params = _due_filter(busy, global_endpoint)
    value = await db.fetchval(
        "SELECT MIN(d.next_attempt_at) FROM deliveries d"
        f" LEFT JOIN webhooks w ON w.id = d.webhook_id WHERE {where}",
        params,
    )
    return None if value is None else parse_stamp(value)


async def record_delivered(conn: Conn, delivery_id: int, attempt: int,
                           response_status: int) -> None:
    await conn.execute(
        "UPDATE deliveries SET status = 'delivered', attempt = ?, response_status = ?,"
        " error = NULL, next_attempt_at = NULL, delivered_at = ? WHERE id = ?",
        (attempt, response_status, iso(), delivery_id),
    )


async def record_failure(conn: Conn, delivery_id: int, attempt: int, response_status: int | None,
                         error: str, retry_at: datetime | None) -> None:
    """A failed attempt: pending again at `retry_at`, or `failed` when it is None."""
    status = "pending" if retry_at is not None else "failed"
    await conn.execute(
        "UPDATE deliveries SET status = ?, attempt = ?, response_status = ?, error = ?,"
        " next_attempt_at = ? WHERE id = ?",
        (status, attempt, response_status, error,
         None if retry_at is None else stamp(retry_at), delivery_id),
    )


# --- reads for the API and metrics; retention --------------------------------------------------


async def deliveries_page(db: Database, user_id: int, webhook_id: int, limit: int,
                          offset: int = 0) -> tuple[list[Row], int]:
    """Deliveries of the user's endpoint, newest first, and their total."""
    rows = await db.fetchall(
        "SELECT d.* FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id"
        " WHERE d.webhook_id = ? AND w.user_id = ? ORDER BY d.id DESC LIMIT ? OFFSET ?",
        (webhook_id, user_id, limit, offset),
    )
    total = await db.fetchval(
        "SELECT COUNT(*) FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id"
        " WHERE d.webhook_id = ? AND w.user_id = ?",
        (webhook_id, user_id),
    )
    return rows, int(total)


async def get_delivery(db: Database, delivery_id: int) -> Row | None:
    return await db.fetchone("SELECT * FROM deliveries WHERE id = ?", (delivery_id,))


async def pending_count(db: Database) -> int:
    return int(await db.fetchval("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'"))


async def prune(conn: Conn, before: datetime) -> tuple[int, int]:
    """Delete finished deliveries and dispatched events created before `before`.

    Returns (deliveries, events) removed. Pending deliveries and undispatched
    events are never pruned.
    """
    cutoff = iso(before.astimezone(UTC))
    cur = await conn.execute(
        "DELETE FROM deliveries WHERE status IN ('delivered', 'failed') AND created_at < ?",
        (cutoff,),
    )
    deliveries = cur.rowcount
    cur = await conn.execute(
        "DELETE FROM events WHERE dispatched = 1 AND created_at < ?", (cutoff,)
    )
    return deliveries, cur.rowcount
