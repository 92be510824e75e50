"""SQL for the delivery queue: draining the `events` outbox into deliveries, leasing them,
recording attempts, and pruning what is finished.

`dispatch_pending` fans each undispatched event out into one `deliveries` row
per matching active endpoint of the event's user (`events` NULL = every type),
plus one row with `webhook_id` NULL for the global endpoint of the config,
and marks the events dispatched, in one transaction. `ping` events are never
fanned out: `create_ping` writes the event (already dispatched) and its
single delivery to the tested endpoint in the caller's transaction, so a test
ping reaches only that endpoint (even a paused one; other deliveries of a
paused endpoint wait until it is active again).

`next_attempt_at` is stored with milliseconds (`2026-11-27T06:50:33.250Z`, see
`stamp`) so sub-second backoffs work; every value in that column is written
here in that one format, so string comparison orders them correctly. A claim
is a lease, not an "in flight" status: `claim_due` pushes `next_attempt_at`
past the attempt's timeout, so a delivery whose worker died (kill -9) becomes
due again by itself, and a restarted worker resumes it. Claimed rows carry
`endpoint`: the webhook id, or 0 for the global endpoint (ids start at 1).

Several processes on one PostgreSQL database each run a worker: a claim locks
the rows it leases (`FOR UPDATE SKIP LOCKED`, outside the writer lock), so each
delivery is leased by one process and each attempt made once. A process sends
one delivery per endpoint at a time; two processes may each have one in flight
to the same endpoint.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

from pichub.db import events as events_db
from pichub.db import webhooks as webhooks_db
from pichub.db.database import Conn, Database, Row, fetch_one
from pichub.db.keyset import Listing
from pichub.timeutil import iso

_ENDPOINT_KEY = "COALESCE(d.webhook_id, 0)"

#: "The endpoint `w` takes events of type `e.type`": its `events` is a JSON list.
_WANTS_TYPE = {
    "sqlite": "EXISTS (SELECT 1 FROM json_each(w.events) j WHERE j.value = e.type)",
    "postgresql": "EXISTS (SELECT 1 FROM json_array_elements_text(w.events::json) j"
                  " WHERE j = e.type)",
}


def stamp(moment: datetime) -> str:
    """UTC with milliseconds, the format of `next_attempt_at`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


async def create_ping(conn: Conn, user_id: int, webhook_id: int) -> Row | None:
    """A `ping` event for one endpoint and its delivery; None when not the user's endpoint."""
    if await webhooks_db.get(conn, user_id, webhook_id) is None:
        return None
    data = {"webhook_id": webhook_id, "message": "PicHub webhook test"}
    event = await events_db.record(conn, user_id, "ping", data, dispatched=True)
    return await fetch_one(
        conn,
        "INSERT INTO deliveries (webhook_id, event_id, type, payload, created_at, next_attempt_at)"
        " VALUES (?, ?, 'ping', ?, ?, ?) RETURNING *",
        (webhook_id, event.id, event.payload, event.created_at, stamp(datetime.now(UTC))),
    )


async def has_undispatched(db: Database) -> bool:
    return await db.fetchval("SELECT 1 FROM events WHERE dispatched = 0 LIMIT 1") is not None


async def dispatch_pending(conn: Conn, global_endpoint: bool, batch: int = 500) -> int:
    """Fan up to `batch` undispatched events into deliveries; returns how many were created."""
    async with conn.execute(
        "SELECT MAX(seq) FROM (SELECT seq FROM events WHERE dispatched = 0 ORDER BY seq LIMIT ?)"
        " AS batch",
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
        f"  OR {_WANTS_TYPE[conn.dialect]})"
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
        " AND (w.is_active = 1 OR d.type = 'ping' OR (d.webhook_id IS NULL AND ? = 1))"
    )
    if busy:  # PostgreSQL has no empty `NOT IN ()`
        sql += f" AND {_ENDPOINT_KEY} NOT IN ({', '.join('?' * len(busy))})"
    return sql, [int(global_endpoint), *busy]


#: Claims run outside the writer lock on PostgreSQL (`transaction(serial=False)`): each
#: process locks the rows it leases and skips those another process is leasing right now.
#: The outer query repeats the due test, which PostgreSQL checks again on the newest
#: version of a row it waited for, so a row leased meanwhile is no longer due.
_SKIP_CLAIMED = " FOR UPDATE OF d SKIP LOCKED"


async def claim_due(conn: Conn, now: datetime, lease_until: datetime, limit: int,
                    busy: Collection[int] = (), global_endpoint: bool = False) -> list[Row]:
    """Lease up to `limit` due deliveries, the oldest of each endpoint not in `busy`.

    Rows carry the delivery's columns plus `url` and `secret` of its endpoint
    (NULL for the global one) and `endpoint` (webhook id, or 0 for the global one).
    Safe beside claims of other processes on PostgreSQL: a delivery is leased once.
    """
    where, params = _due_filter(busy, global_endpoint)
    due = [*params, stamp(now)]
    sql = (
        f"SELECT d.*, w.url AS url, w.secret AS secret, {_ENDPOINT_KEY} AS endpoint"
        " FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id"
        " WHERE d.id IN (SELECT MIN(d.id) FROM deliveries d"
        "  LEFT JOIN webhooks w ON w.id = d.webhook_id"
        f"  WHERE {where} AND d.next_attempt_at <= ? GROUP BY d.webhook_id)"
        f" AND {where} AND d.next_attempt_at <= ?"
        " ORDER BY d.next_attempt_at, d.id LIMIT ?"
    )
    if conn.dialect == "postgresql":
        sql += _SKIP_CLAIMED
    async with conn.execute(sql, (*due, *due, limit)) as cur:
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


#: The key of a delivery log, and its types (for cursors).
KEY = ("id",)
KEY_SHAPE = (int,)


def listing(webhook_id: int) -> Listing:
    """The deliveries of an endpoint, newest first (the caller checked its owner)."""
    return Listing("deliveries", KEY, ("webhook_id = ?",), (webhook_id,))


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
