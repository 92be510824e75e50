"""The webhook worker against a real receiver on 127.0.0.1 and a real SQLite file.

Events are written the way the app writes them (`pichub.db.events.record` in a
transaction); the receiver records every request and can fail, or hang until
released. Waits have a generous safety timeout; the assertions are about
order and recorded state, never about elapsed time.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks.webhooks import Webhook as Verifier

from pichub.config import WebhookSettings
from pichub.db import deliveries as deliveries_db
from pichub.db import events as events_db
from pichub.db import webhooks as webhooks_db
from pichub.db.database import Database, Row, insert_id
from pichub.errors import ValidationError
from pichub.models.base import validate
from pichub.models.webhooks import (
    EVENT_TYPES,
    Delivery,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookUpdate,
)
from pichub.webhooks import signing, ssrf
from pichub.webhooks.worker import WebhookWorker, backoff_s
from tests.support import backends
from tests.support.dns import FakeDNS


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """Records every POST; answers from `statuses[path]` (the last one sticks, default 200)."""

    server: TestServer | None = None
    requests: list[Received] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=dict)
    hanging: set[str] = field(default_factory=set)  # paths that wait for `release`
    release: asyncio.Event = field(default_factory=asyncio.Event)
    queues: defaultdict[str, asyncio.Queue[Received]] = field(
        default_factory=lambda: defaultdict(asyncio.Queue))

    async def handle(self, request: web.Request) -> web.Response:
        got = Received(request.path, {k.lower(): v for k, v in request.headers.items()},
                       await request.read())
        self.requests.append(got)
        self.queues[got.path].put_nowait(got)
        if got.path in self.hanging:
            await self.release.wait()
        plan = self.statuses.get(got.path, [200])
        return web.Response(status=plan.pop(0) if len(plan) > 1 else plan[0])

    async def next(self, path: str) -> Received:
        return await asyncio.wait_for(self.queues[path].get(), 5)

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@pytest.fixture
async def receiver(aiohttp_server: Any) -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    rec.server = await aiohttp_server(app)
    yield rec
    rec.release.set()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(backends.database(tmp_path))
    yield database
    await database.close()


def settings(**overrides: Any) -> WebhookSettings:
    base: dict[str, Any] = {"allow_private_networks": True, "backoff_base_s": 0.05,
                            "timeout_s": 5, "max_attempts": 4}
    return WebhookSettings(**{**base, **overrides})


MakeWorker = Callable[..., WebhookWorker]


@pytest.fixture
async def make_worker(db: Database) -> AsyncIterator[MakeWorker]:
    started: list[WebhookWorker] = []

    def make(**overrides: Any) -> WebhookWorker:
        resolver = overrides.pop("resolver", None)
        worker = WebhookWorker(db, settings(**overrides), resolver=resolver)
        worker.start()
        started.append(worker)
        return worker

    yield make
    for worker in started:
        await worker.stop()


async def add_user(db: Database, name: str) -> int:
    async with db.transaction() as conn:
        return await insert_id(
            conn, "INSERT INTO users (username, password_hash, created_at) VALUES (?, 'x', ?)",
            (name, "2026-01-01T00:00:00Z"),
        )


async def add_webhook(db: Database, user_id: int, url: str, events: list[str] | None = None,
                      is_active: bool = True) -> tuple[int, str]:
    secret = signing.new_secret()
    async with db.transaction() as conn:
        webhook_id = await webhooks_db.create(conn, user_id, url, secret, events, "", is_active)
    return webhook_id, secret


async def add_event(db: Database, user_id: int, type_: str, **data: Any) -> str:
    async with db.transaction() as conn:
        return (await events_db.record(conn, user_id, type_, {"id": 1, **data})).id


async def deliveries(db: Database, webhook_id: int | None) -> list[Row]:
    return await db.fetchall(
        "SELECT * FROM deliveries WHERE webhook_id IS NOT DISTINCT FROM ? ORDER BY id",
        (webhook_id,))


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(250):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def one_status(db: Database, webhook_id: int | None, status: str) -> bool:
    rows = await deliveries(db, webhook_id)
    return len(rows) == 1 and rows[0]["status"] == status


async def test_each_event_type_arrives_signed_with_the_stored_body(
    db: Database, receiver: Receiver, make_worker: MakeWorker,
) -> None:
    alice = await add_user(db, "alice")
    hook_id, secret = await add_webhook(db, alice, receiver.url("/hook"))
    worker = make_worker()
    sent = [await add_event(db, alice, t, n=i) for i, t in enumerate(EVENT_TYPES)]
    worker.wake()
    got = [await receiver.next("/hook") for _ in EVENT_TYPES]
    assert [r.event_id for r in got] == sent  # one endpoint: in event order
    for received, type_ in zip(got, EVENT_TYPES, strict=True):
        stored = await db.fetchval("SELECT payload FROM events WHERE id = ?", (received.event_id,))
        assert received.body == stored.encode()
        body = Verifier(secret).verify(received.body, received.headers)
        assert body["type"] == type_ and body["id"] == received.event_id
        assert set(body) == {"id", "type", "created_at", "data"}
        assert received.headers["x-pichub-event"] == type_
        assert received.headers["content-type"] == "application/json"
    await eventually(lambda: _all_delivered(db, hook_id, 5), "5 delivered")
    assert worker.delivered_total == 5 and await worker.queue_depth() == 0


async def _all_delivered(db: Database, webhook_id: int | None, count: int) -> bool:
    rows = await deliveries(db, webhook_id)
    return len(rows) == count and all(
        r["status"] == "delivered" and r["attempt"] == 1 and r["response_status"] == 200
        for r in rows
    )


async def test_fan_out_respects_owner_filter_active_flag_and_global_endpoint(
    db: Database, receiver: Receiver, make_worker: MakeWorker,
) -> None:
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    albums_only, _ = await add_webhook(db, alice, receiver.url("/albums"), ["album.deleted"])
    await add_webhook(db, alice, receiver.url("/off"), is_active=False)
    await add_webhook(db, bob, receiver.url("/bob"))
    global_secret = signing.new_secret()
    worker = make_worker(url=receiver.url("/global"), secret=global_secret)
    uploaded = await add_event(db, alice, "image.uploaded")
    deleted = await add_event(db, alice, "album.deleted")
    bobs = await add_event(db, bob, "album.created")
    worker.wake()
    assert (await receiver.next("/albums")).event_id == deleted
    assert (await receiver.next("/bob")).event_id == bobs
    on_global = [await receiver.next("/global") for _ in range(3)]
    assert [r.event_id for r in on_global] == [uploaded, deleted, bobs]
    for received in on_global:
        Verifier(global_secret).verify(received.body, received.headers)
    await eventually(lambda: one_status(db, albums_only, "delivered"), "filtered delivery")
    # Everything else arrived after the only possible wrong deliveries would have been made.
    assert sorted(receiver.paths()) == ["/albums", "/bob", "/global", "/global", "/global"]


async def test_ping_goes_only_to_its_own_endpoint_even_when_paused(
    db: Database, receiver: Receiver, make_worker: MakeWorker,
) -> None:
    alice = await add_user(db, "alice")
    target, secret = await add_webhook(db, alice, receiver.url("/a"), is_active=False)
    await add_webhook(db, alice, receiver.url("/b"))
    worker = make_worker(url=receiver.url("/global"))
    async with db.transaction() as conn:
        ping = await deliveries_db.create_ping(conn, alice, target)
        assert await deliveries_db.create_ping(conn, alice + 1, target) is None
    assert ping is not None
    later = await add_event(db, alice, "album.created")
    worker.wake()
    first = await receiver.next("/a")
    assert first.event_id == ping["event_id"] and first.headers["x-pichub-event"] == "ping"
    assert Verifier(secret).verify(first.body, first.headers)["data"]["webhook_id"] == target
    # The other endpoints' first request is the later event, not the ping.
    assert (await receiver.next("/b")).event_id == later
    assert (await receiver.next("/global")).event_id == later


async def test_fails_twice_then_succeeds_with_the_same_webhook_id(
    db: Database, receiver: Receiver, make_worker: MakeWorker,
) -> None:
    alice = await add_user(db, "alice")
    hook_id, secret = await add_webhook(db, alice, receiver.url("/flaky"))
    receiver.statuses["/flaky"] = [500, 502, 204]
    event_id = await add_event(db, alice, "image.uploaded")
    worker = make_worker()
    attempts = [await receiver.next("/flaky") for _ in range(3)]
    assert [a.event_id for a in attempts] == [event_id] * 3
    for attempt in attempts:
        Verifier(secret).verify(attempt.body, attempt.headers)
    await eventually(lambda: one_status(db, hook_id, "delivered"), "delivered")
    row = (await deliveries(db, hook_id))[0]
    assert (row["attempt"], row["response_status"], row["error"]) == (3, 204, None)
    assert row["next_attempt_at"] is None and row["delivered_at"] is not None
    assert (worker.failures_total, worker.delivered_total) == (2, 1)


async def test_gives_up_after_max_attempts(
    db: Database, receiver: Receiver, make_worker: MakeWorker,
) -> None:
    alice = await add_user(db, "alice")
    hook_id, _ = await add_webhook(db, alice, receiver.url("/down"))
    receiver.statuses["/down"] = [503]
    await add_event(db, alice, "album.created")
    worker = make_worker(max_attempts=3)
    await eventually(lambda: one_status(db, hook_id, "failed"), "failed")
    row = (await deliveries(db, hook_id))[0]
    assert (row["attempt"], row["response_status"], row["next_attempt_at"]) == (3, 503, None)
    assert row["error"] == "HTTP 503 Service Unavailable"
    assert receiver.paths() == ["/down"] * 3
    assert (worker.failures_total, worker.exhausted_total, worker.delivered_total) == (3, 1, 0)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_and_timeout_are_recorded(
    db: Database, receiver: Receiver, make_worker: MakeWorker,
) -> None:
    alice = await add_user(db, "alice")
    closed, _ = await add_webhook(db, alice, f"http://127.0.0.1:{_closed_port()}/x")
    slow, _ = await add_webhook(db, alice, receiver.url("/hang"))
    receiver.hanging.add("/hang")
    await add_event(db, alice, "album.created")
    make_worker(max_attempts=1, timeout_s=0.3)
    await eventually(lambda: one_status(db, closed, "failed"), "closed port failed")
    await eventually(lambda: one_status(db, slow, "failed"), "hanging endpoint failed")
    assert (await deliveries(db, closed))[0]["error"].startswith("connection error")
    assert (await deliveries(db, slow))[0]["error"] == "timeout after 0.3s"


async def test_hanging_endpoint_does_not_delay_other_endpoints(
    db: Database, receiver: Receiver, make_worker: MakeWorker,
) -> None:
    alice = await add_user(db, "alice")
    slow, _ = await add_webhook(db, alice, receiver.url("/slow"))
    fast, _ = await add_webhook(db, alice, receiver.url("/fast"))
    receiver.hanging.add("/slow")
    sent = [await add_event(db, alice, "image.uploaded") for _ in range(3)]
    make_worker(concurrency=2, timeout_s=30)
    assert [(await receiver.next("/fast")).event_id for _ in sent] == sent
    # All of the fast endpoint's events arrived while the slow endpoint still
    # holds its first request: nothing of it has been answered or retried.
    assert receiver.paths().count("/slow") == 1 and not receiver.release.is_set()
    assert [r["attempt"] for r in await deliveries(db, slow)] == [0, 0, 0]
    await eventually(lambda: _all_delivered(db, fast, 3), "fast delivered")
    receiver.release.set()
    await eventually(lambda: _all_delivered(db, slow, 3), "slow delivered once released")


async def test_private_target_refused_at_delivery_time(
    db: Database, receiver: Receiver, make_worker: MakeWorker,
) -> None:
    alice = await add_user(db, "alice")
    # Written straight to the DB: the creation check is the API's; this is the second line.
    literal, _ = await add_webhook(db, alice, receiver.url("/literal"))
    assert receiver.server is not None
    named, _ = await add_webhook(db, alice, f"http://localhost:{receiver.server.port}/named")
    await add_event(db, alice, "album.created")
    # The operator's global endpoint is trusted config: it may be on loopback.
    make_worker(allow_private_networks=False, max_attempts=1, url=receiver.url("/global"))
    await eventually(lambda: one_status(db, literal, "failed"), "literal refused")
    await eventually(lambda: one_status(db, named, "failed"), "name refused")
    for hook_id in (literal, named):
        row = (await deliveries(db, hook_id))[0]
        assert row["error"].startswith("refused:") and row["response_status"] is None
    await eventually(lambda: one_status(db, None, "delivered"), "global delivered")
    assert receiver.paths() == ["/global"]


async def test_dns_rebinding_after_creation_is_refused_at_delivery(
    db: Database, receiver: Receiver, make_worker: MakeWorker,
) -> None:
    assert receiver.server is not None
    dns = FakeDNS({"rebind.example": ["93.184.216.34", "127.0.0.1"]})
    url = f"http://rebind.example:{receiver.server.port}/r"
    await ssrf.check_url(url, False, dns)  # passes at creation: a public answer
    alice = await add_user(db, "alice")
    hook_id, _ = await add_webhook(db, alice, url)
    await add_event(db, alice, "album.created")
    make_worker(allow_private_networks=False, max_attempts=1, resolver=dns)
    await eventually(lambda: one_status(db, hook_id, "failed"), "refused")
    assert "127.0.0.1" in (await deliveries(db, hook_id))[0]["error"]
    assert receiver.requests == [] and dns.lookups == ["rebind.example"] * 2


async def test_a_new_worker_on_the_same_file_resumes_after_stop(
    db: Database, receiver: Receiver, make_worker: MakeWorker,
) -> None:
    alice = await add_user(db, "alice")
    hook_id, _ = await add_webhook(db, alice, receiver.url("/slow"))
    receiver.hanging.add("/slow")
    event_id = await add_event(db, alice, "image.deleted")
    first_worker = make_worker(timeout_s=30)
    first = await receiver.next("/slow")  # the attempt is in flight ...
    await first_worker.stop()  # ... and abandoned: its lease is given back
    row = (await deliveries(db, hook_id))[0]
    assert (row["status"], row["attempt"]) == ("pending", 0)
    receiver.hanging.clear()
    reopened = await Database.open(db.target)
    second_worker = WebhookWorker(reopened, settings())
    second_worker.start()
    try:
        second = await receiver.next("/slow")
        await eventually(lambda: one_status(reopened, hook_id, "delivered"), "delivered")
    finally:
        await second_worker.stop()
        await reopened.close()
    assert first.event_id == second.event_id == event_id


async def test_a_claim_whose_worker_died_is_picked_up_when_its_lease_expires(
    db: Database, receiver: Receiver, make_worker: MakeWorker,
) -> None:
    alice = await add_user(db, "alice")
    hook_id, _ = await add_webhook(db, alice, receiver.url("/hook"))
    event_id = await add_event(db, alice, "album.updated")
    async with db.transaction() as conn:  # what a worker killed mid-attempt left behind
        assert await deliveries_db.dispatch_pending(conn, global_endpoint=False) == 1
        now = datetime.now(UTC)
        claimed = await deliveries_db.claim_due(conn, now, now + timedelta(seconds=0.3), 10)
    assert [r["event_id"] for r in claimed] == [event_id]
    make_worker()
    assert (await receiver.next("/hook")).event_id == event_id
    await eventually(lambda: one_status(db, hook_id, "delivered"), "delivered")


async def test_worker_prunes_finished_rows_past_retention(
    db: Database, make_worker: MakeWorker,
) -> None:
    alice = await add_user(db, "alice")
    hook_id, _ = await add_webhook(db, alice, "http://127.0.0.1:9/")
    await _insert_delivery(db, hook_id, "delivered", "2020-01-01T00:00:00Z")
    keep = await _insert_delivery(db, hook_id, "failed", datetime_iso(days_ago=0))
    make_worker(retention_days=1)

    async def pruned() -> bool:
        return [r["id"] for r in await deliveries(db, hook_id)] == [keep]

    await eventually(pruned, "old delivery pruned")


def datetime_iso(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _insert_delivery(db: Database, webhook_id: int, status: str, created_at: str) -> int:
    async with db.transaction() as conn:
        return await insert_id(
            conn,
            "INSERT INTO deliveries (webhook_id, event_id, type, payload, status, created_at,"
            " next_attempt_at) VALUES (?, 'evt_x', 'album.created', '{}', ?, ?, ?)",
            (webhook_id, status, created_at,
             "2020-01-01T00:00:00.000Z" if status == "pending" else None),
        )


async def test_prune_keeps_pending_work_and_recent_rows(db: Database) -> None:
    alice = await add_user(db, "alice")
    hook_id, _ = await add_webhook(db, alice, "http://127.0.0.1:9/", is_active=False)
    old, new = datetime_iso(days_ago=40), datetime_iso(days_ago=1)
    kept = [await _insert_delivery(db, hook_id, "pending", old),
            await _insert_delivery(db, hook_id, "delivered", new)]
    for status in ("delivered", "failed"):
        await _insert_delivery(db, hook_id, status, old)
    async with db.transaction() as conn:
        for seq, (dispatched, created) in enumerate([(1, old), (0, old), (1, new)]):
            await conn.execute(
                "INSERT INTO events (id, user_id, type, payload, created_at, dispatched)"
                " VALUES (?, ?, 'album.created', '{}', ?, ?)",
                (f"evt_{seq}", alice, created, dispatched),
            )
    worker = WebhookWorker(db, settings(retention_days=30))  # not started: prune only
    assert await worker.prune() == (2, 1)
    assert [r["id"] for r in await deliveries(db, hook_id)] == kept
    events = await db.fetchall("SELECT id FROM events ORDER BY seq")
    assert [r["id"] for r in events] == ["evt_1", "evt_2"]
    assert await worker.queue_depth() == 1


async def test_event_payload_is_sent_byte_for_byte(
    db: Database, receiver: Receiver, make_worker: MakeWorker,
) -> None:
    alice = await add_user(db, "alice")
    await add_webhook(db, alice, receiver.url("/hook"))
    event_id = await add_event(db, alice, "album.created", name="Ferien ☀ \"quoted\"")
    make_worker()
    got = await receiver.next("/hook")
    assert json.loads(got.body)["data"]["name"] == "Ferien ☀ \"quoted\""
    assert got.body == (await db.fetchval(
        "SELECT payload FROM events WHERE id = ?", (event_id,))).encode()


# --- endpoint SQL and API shapes (what the lead's views call) ------------------------------


async def test_endpoints_are_scoped_to_their_owner(db: Database) -> None:
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    first, _ = await add_webhook(db, alice, "https://a.example/1")
    second, secret = await add_webhook(db, alice, "https://a.example/2", ["album.created"])
    assert [r["id"] for r in await webhooks_db.list_for_user(db, alice)] == [second, first]
    assert await webhooks_db.list_for_user(db, bob) == []
    assert await webhooks_db.get(db, bob, first) is None
    async with db.transaction() as conn:
        assert not await webhooks_db.update(conn, bob, first, {"description": "x"})
        assert not await webhooks_db.delete(conn, bob, first)
        assert await webhooks_db.update(conn, alice, second, {"events": None, "is_active": False})
    row = await webhooks_db.get(db, alice, second)
    assert row is not None
    obj = Webhook.from_row(row).model_dump()
    assert obj["events"] == list(EVENT_TYPES) and obj["is_active"] is False
    assert "secret" not in obj and WebhookCreated.from_row(row).model_dump()["secret"] == secret


async def test_deleting_an_endpoint_deletes_its_deliveries(db: Database) -> None:
    alice = await add_user(db, "alice")
    hook_id, _ = await add_webhook(db, alice, "https://a.example/")
    await _insert_delivery(db, hook_id, "failed", datetime_iso(days_ago=0))
    async with db.transaction() as conn:
        assert await webhooks_db.delete(conn, alice, hook_id)
    assert await db.fetchval("SELECT COUNT(*) FROM deliveries") == 0


async def test_deliveries_page_is_newest_first_and_owner_scoped(db: Database) -> None:
    alice, bob = await add_user(db, "alice"), await add_user(db, "bob")
    hook_id, _ = await add_webhook(db, alice, "https://a.example/")
    ids = [await _insert_delivery(db, hook_id, s, datetime_iso(days_ago=0))
           for s in ("delivered", "failed", "pending")]
    window = await deliveries_db.listing(hook_id).window(db, 2)
    rows = window.rows
    assert [r["id"] for r in rows] == ids[::-1][:2] and window.older and not window.newer
    hook = await webhooks_db.get(db, alice, hook_id)
    assert hook is not None and hook["delivery_count"] == 3  # the stored counter
    assert await webhooks_db.get(db, bob, hook_id) is None  # the service's owner check
    obj = Delivery.from_row(rows[0]).model_dump()
    assert set(obj) == {"id", "event_id", "type", "attempt", "status", "response_status",
                        "error", "created_at", "next_attempt_at", "delivered_at"}
    assert obj["status"] == "pending" and obj["next_attempt_at"] == "2020-01-01T00:00:00Z"


def test_webhook_bodies_are_accepted_and_normalised() -> None:
    full = validate(WebhookCreate, {"url": " https://a.example/h ", "description": "mine",
                                    "events": ["album.created", "album.created"]})
    assert full.model_dump(exclude_unset=True) == {
        "url": "https://a.example/h", "events": ["album.created"], "description": "mine"}
    assert validate(WebhookCreate, {"url": "http://x"}).model_dump(exclude_unset=True) == {
        "url": "http://x"}
    patch = validate(WebhookUpdate, {"events": None, "is_active": False})
    assert patch.model_dump(exclude_unset=True) == {"events": None, "is_active": False}


@pytest.mark.parametrize(("body", "partial", "fields"), [
    ({}, False, ["url"]),
    ({"url": "ftp://x"}, False, ["url"]),
    ({"url": 5, "events": ["nope"]}, False, ["url", "events"]),
    ({"url": "http://x", "events": []}, False, ["events"]),
    ({"url": "http://x", "events": "album.created"}, False, ["events"]),
    ({"events": ["ping"]}, True, ["events"]),
    ({"is_active": "yes"}, True, ["is_active"]),
    ({"is_active": None}, True, ["is_active"]),
    ({"description": "x" * 1001}, True, ["description"]),
])
def test_webhook_bodies_list_each_bad_field(body: Any, partial: bool, fields: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        validate(WebhookUpdate if partial else WebhookCreate, body)
    assert info.value.status == 422
    assert [d["field"] for d in info.value.details] == fields


def test_backoff_grows_with_bounded_jitter_and_spans_about_a_day() -> None:
    for attempt in range(1, 9):
        nominal = min(30 * 4 ** (attempt - 1), 12 * 3600)
        samples = {backoff_s(30, attempt) for _ in range(50)}
        assert all(0.8 * nominal <= s <= 1.2 * nominal for s in samples)
        assert len(samples) > 1  # jittered, so retries of many deliveries spread out
    span = sum(min(30 * 4 ** (n - 1), 12 * 3600) for n in range(1, 8))  # 7 waits, 8 attempts
    assert 20 * 3600 < span < 28 * 3600
